"""The pieces of image training that need no model: decoding every format once (alpha on white, corrupt files
skipped), the validation hold-out, batches without a caption twice, augmentation and NT-Xent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from embedsearch.errors import InvalidInputError, SourceError
from embedsearch.train import ClipTrainConfig, NTXentLoss
from embedsearch.train.batching import EpochPlan
from embedsearch.train.image.augment import TrainAugment, sample_seeds
from embedsearch.train.image.cache import decode_images, list_image_files
from embedsearch.train.image.clip.batches import caption_batches
from embedsearch.train.image.clip.data import load_clip_data
from embedsearch.train.image.simclr.trainer import image_batches
from tests.train.image.toys import COLOURS, FLAGS, write_colour_images, write_pairs


def config(pairs: Path, **settings) -> ClipTrainConfig:
    return ClipTrainConfig(pairs=pairs, out=pairs.parent / "out", quiet=True, **settings)


def test_images_of_every_format_decode_once_to_uint8_with_alpha_on_white(tmp_path):
    write_colour_images(tmp_path)
    (tmp_path / "images" / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    names = ["red-green-a.png", "red-green-b.png", "red-green-c.gif", "red-blue-c.jpg", "broken.jpg"]
    cache = decode_images([tmp_path / "images" / n for n in names], 16)
    assert cache.pixels.dtype == torch.uint8 and cache.pixels.shape == (4, 3, 16, 16)
    assert [p.name for p in cache.paths] == names[:4]
    assert [(p.name, "unreadable image" in reason) for p, reason in cache.skipped] == [("broken.jpg", True)]
    red, green = torch.tensor(COLOURS["red"]), torch.tensor(COLOURS["green"])
    assert cache.pixels[0, :, 8, 2].tolist() == red.tolist() and cache.pixels[0, :, 8, 13].tolist() == green.tolist()
    framed = cache.pixels[1]  # 24 x 18 with a transparent margin: white corners after the centre crop
    assert framed[:, 8, 4].tolist() == red.tolist() and framed[:, 0, 0].tolist() == [255, 255, 255]
    # the palette GIF: PIL quantises and resamples in integer arithmetic (the same on every CPU), and a
    # two-colour picture's adaptive palette holds both colours, so inside its red half it is red exactly
    assert cache.pixels[2, :, 4:12, 1:6].eq(red.view(3, 1, 1)).all()


def test_pairs_resolve_relative_paths_and_hold_out_whole_captions(tmp_path):
    pairs = write_colour_images(tmp_path / "data")
    pairs[0]["image"] = str((tmp_path / "data" / pairs[0]["image"]).resolve())  # absolute
    file = write_pairs(tmp_path / "data" / "pairs.jsonl", pairs)
    data = load_clip_data(config(file, val_fraction=0.25), 16)
    assert len(data.cache) == 90 and data.cache.skipped == []
    train_captions = {t for texts in data.train.image_to_texts for t in texts}
    assert not set(data.train.rows) & set(data.val.rows)
    assert not train_captions & set(data.val.captions) and len(data.val.captions) == 15
    assert len(data.train.rows) + len(data.val.rows) == 90
    moved = write_pairs(tmp_path / "elsewhere.jsonl", pairs)  # relative paths now start at --images-root
    again = load_clip_data(config(moved, val_fraction=0.25, images_root=tmp_path / "data"), 16)
    assert again.fingerprint != data.fingerprint and torch.equal(again.cache.pixels, data.cache.pixels)


def test_missing_images_are_an_error_naming_them(tmp_path):
    file = write_pairs(tmp_path / "pairs.jsonl", [{"image": "nowhere.png", "text": "a thing"}])
    with pytest.raises(SourceError, match=r"1 image file\(s\) named in .* do not exist, e\.g\. .*nowhere\.png"):
        load_clip_data(config(file), 16)


def test_a_batch_never_holds_a_caption_or_an_image_twice():
    # 30 images, each caption shared by three of them; images 0-9 have a second caption of their own
    image_to_texts = [[i % 10] + ([10 + i] if i < 10 else []) for i in range(30)]
    batches = caption_batches(image_to_texts, 8, seed=1, epoch=0)
    assert len(batches) >= 2 and all(len(b) == 8 for b in batches)
    for batch in batches:
        images, captions = zip(*batch, strict=True)
        assert len(set(images)) == 8 and len(set(captions)) == 8
        assert all(caption in image_to_texts[image] for image, caption in batch)
    assert caption_batches(image_to_texts, 8, seed=1, epoch=0) == batches
    assert caption_batches(image_to_texts, 8, seed=1, epoch=1) != batches
    picked = {c for e in range(20) for b in caption_batches(image_to_texts, 8, 1, e) for i, c in b if i == 0}
    assert picked == {0, 10}  # an image with two captions is trained on both


def test_epoch_plan_counts_steps_and_refuses_data_short_of_a_batch():
    plan = EpochPlan(lambda epoch: image_batches(10, 4, seed=0, epoch=epoch), epochs=3)
    assert plan.total_steps == 6 and plan.batch(2) == image_batches(10, 4, 0, 1)[0]
    assert EpochPlan(lambda e: image_batches(10, 4, 0, e), epochs=3, max_steps=9).total_steps == 9
    with pytest.raises(ValueError):
        EpochPlan(lambda e: image_batches(3, 4, 0, e), epochs=1)


def test_augmentation_is_a_function_of_the_seed_alone():
    pixels = torch.randint(0, 256, (4, 3, 24, 24), dtype=torch.uint8)
    augment = TrainAugment(16, [0.5] * 3, [0.25] * 3, crop_scale=(0.5, 1.0), jitter=0.3, grayscale=0.5)
    seeds = sample_seeds(7, step=3, count=4)
    out = augment(pixels, seeds)
    assert out.dtype == torch.float32 and out.shape == (4, 3, 16, 16)
    torch.manual_seed(0)
    assert torch.equal(augment(pixels, seeds), out)  # the global RNG does not matter ...
    assert torch.equal(augment(pixels[2:], seeds[2:]), out[2:])  # ... nor the other samples of the batch
    assert not torch.equal(augment(pixels, sample_seeds(7, step=4, count=4)), out)
    plain = TrainAugment(24, [0.5] * 3, [0.25] * 3, crop_scale=(1.0, 1.0))
    expected = (pixels.float() / 255 - 0.5) / 0.25
    # no crop, no flip, no jitter: only normalised, by the same elementwise float32 operations as ``expected``
    # (each correctly rounded by IEEE 754 on any CPU), so bit for bit
    assert torch.equal(plain(pixels, seeds), expected)


def test_nt_xent_matches_its_definition():
    # in float64 against Python floats: the same formula over 10 views, logits of order 2, so both agree to a
    # few hundred float64 roundoffs (1.1e-16); rel=1e-12 allows a thousand times that on any CPU
    torch.manual_seed(0)
    first, second = torch.randn(5, 8, dtype=torch.float64), torch.randn(5, 8, dtype=torch.float64)
    views = F.normalize(torch.cat([first, second]), dim=-1)
    similarity = views @ views.T / 0.5
    expected = 0.0
    for i in range(10):
        positive = (i + 5) % 10
        others = [math.exp(similarity[i, j]) for j in range(10) if j != i]
        expected += -math.log(math.exp(similarity[i, positive]) / sum(others)) / 10
    assert NTXentLoss(0.5)(first, second).item() == pytest.approx(expected, rel=1e-12)
    assert NTXentLoss(0.5)(first, first).item() < NTXentLoss(0.5)(first, second).item()


def test_an_image_folder_is_listed_recursively_and_an_empty_one_refused(tmp_path):
    write_colour_images(tmp_path / "pics")
    (tmp_path / "pics" / "notes.txt").write_text("not an image")
    assert len(list_image_files(tmp_path / "pics")) == 90
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInputError, match="holds no image files"):
        list_image_files(tmp_path / "empty")


def test_settings_out_of_range_fail_with_the_setting_named(tmp_path):
    with pytest.raises(InvalidInputError, match="unknown loss 'triplet'"):
        config(tmp_path / "p.jsonl", loss="triplet")
    with pytest.raises(InvalidInputError, match="crop scale"):
        config(tmp_path / "p.jsonl", crop_scale=(0.8, 0.5))
    with pytest.raises(InvalidInputError, match="--lock-text needs a pretrained text tower"):
        config(tmp_path / "p.jsonl", text_tower="open_clip", lock_text=True)
    locked = config(tmp_path / "p.jsonl")
    assert locked.text_locked and locked.text_frozen and locked.initial_temperature == 0.07
    assert not config(tmp_path / "p.jsonl", unlocked_layers=2).text_frozen
    assert config(tmp_path / "p.jsonl", loss="siglip").initial_temperature == 0.1  # a constant, not a computation


def test_a_separate_validation_file_and_a_limit(tmp_path):
    pairs = write_colour_images(tmp_path)
    train_file = write_pairs(tmp_path / "train.jsonl", pairs[:80])
    val_file = write_pairs(tmp_path / "val.jsonl", pairs[76:])  # flags 19-29: flag 19 is in both files
    data = load_clip_data(config(train_file, val=val_file), 16)
    assert len(data.cache) == 90 and len(data.train.rows) == 60 and len(data.val.rows) == 33
    assert len(data.captions) == 60 and len(set(data.train.rows) & set(data.val.rows)) == 3  # stored once
    left, right = FLAGS[19]
    assert [data.captions[t] for t in data.val.image_to_texts[0]] == [f"{left} {right}", f"flag of {left} and {right}"]
    limited = load_clip_data(config(train_file, limit=5, val_fraction=0), 16)
    assert len(limited.cache) == 5 and limited.val is None and len(limited.captions) == 4
