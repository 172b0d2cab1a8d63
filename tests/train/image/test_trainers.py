"""``train_clip`` (and ``train_simclr``) end to end with a one-layer ViT at 32 px on the colour toy: it learns,
it is reproducible, a resumed run equals an uninterrupted one, a locked text tower is run once per caption and
never in a step, and the output is an encoder embedsearch loads by path."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embedsearch.encoders import get_encoder
from embedsearch.encoders.open_clip_model import pad_id, trim_padding
from embedsearch.errors import InvalidInputError, OutputExistsError
from embedsearch.train import ClipTrainConfig, SimclrTrainConfig, train_clip, train_simclr
from embedsearch.train.image.clip.model import build_clip_model, tokenizer_of
from tests.train.float64 import ATOL, RTOL
from tests.train.interrupt import Interrupt, StepRecorder, stop_at

FAST = {
    "batch_size": 8,
    "lr": 2e-3,
    "warmup": 0.0,
    "val_fraction": 0.25,
    "quiet": True,
    "text_tower": "open_clip",
    "mixup": 0.0,  # open_clip's ClipLoss; mixup's soft targets keep the loss from falling as far
}


# |norm - 1| of a float32 vector of 32 that the encoder normalised: each coordinate is rounded once when divided
# by the norm, and the norm of the result is a float32 sum of 32 squares: at most about 32 float32 roundoffs
NORM_ATOL = 32 * float(np.finfo(np.float32).eps)


def weights(directory) -> dict[str, torch.Tensor]:
    return load_file(directory / "open_clip_model.safetensors")


@pytest.fixture(scope="module")
def trained(colour_pairs, tiny_image_model, tmp_path_factory):
    config = ClipTrainConfig(
        pairs=colour_pairs,
        out=tmp_path_factory.mktemp("clip") / "model",
        model=tiny_image_model,
        max_steps=40,
        eval_every=20,
        **FAST,
    )
    return config, train_clip(config)


def test_training_lowers_the_loss_and_raises_validation_recall(trained):
    _, result = trained
    losses = result.card["losses"]
    assert len(losses) == result.steps == 40
    # claims about learning with wide margins, not tolerances on rounding (here the loss falls to 45% of its
    # start and mean recall goes from 0.24 to 0.75)
    assert np.mean(losses[-5:]) < 0.6 * np.mean(losses[:5])
    recall = {e["step"]: e["metrics"]["mean_recall"] for e in result.evaluations}
    assert list(recall) == [0, 20, 40] and max(recall.values()) > recall[0] + 0.1
    assert result.best_step == max(recall, key=recall.get) and result.best_metrics["mean_recall"] == max(
        recall.values()
    )
    assert set(result.best_metrics) >= {f"{w}_R@{k}" for w in ("image_to_text", "text_to_image") for k in (1, 5, 10)}


def test_training_with_mixup_and_every_caption_as_a_negative_raises_validation_recall(
    colour_pairs, tiny_image_model, tiny_model, tmp_path
):
    settings = {**FAST, "text_tower": str(tiny_model), "mixup": 0.4, "negatives": "all"}
    config = ClipTrainConfig(
        pairs=colour_pairs, out=tmp_path / "mixup", model=tiny_image_model, max_steps=40, eval_every=20, **settings
    )
    result = train_clip(config)
    recall = {e["step"]: e["metrics"]["mean_recall"] for e in result.evaluations}
    assert max(recall.values()) > recall[0] + 0.1, recall  # a wide margin: 0.20 to 0.80 here
    assert result.card["data"]["loss"] == {"kind": "clip", "mixup": 0.4, "negatives": "every training caption"}


def test_the_output_is_an_encoder_with_its_card_and_curves(trained):
    config, result = trained
    out = config.out
    names = {p.name for p in out.iterdir()}
    assert {"open_clip_config.json", "open_clip_model.safetensors", "embedsearch_encoder.json"} <= names
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not out.with_name("model.tmp-train").exists()
    card = json.loads((out / "training_card.json").read_text())
    assert card["kind"] == "clip" and card["best"]["step"] == result.best_step and len(card["evaluations"]) == 3
    assert card["data"]["train"]["images"] + card["data"]["val"]["images"] == 90
    assert card["settings"]["batch_size"] == 8 and card["model"]["model_cfg"]["embed_dim"] == 32
    encoder = get_encoder(str(out))
    folder = config.pairs.parent / "images"
    images = encoder.encode_image([folder / "red-green-a.png", folder / "red-green-c.gif"])
    texts = encoder.encode_text(["red green", "flag of red and green"])
    assert images.shape == texts.shape == (2, 32)
    assert np.allclose(np.linalg.norm(images, axis=1), 1, rtol=0, atol=NORM_ATOL)


def test_an_image_query_is_made_rgb_once(trained, monkeypatch):
    """Decoding flattens an image to RGB (transparency on white); the encoder's transform then converts nothing
    again (a second ``convert("RGB")`` copied every query image)."""
    from PIL import Image

    config, _ = trained
    encoder, folder = get_encoder(str(config.out)), config.pairs.parent / "images"
    conversions, convert = [], Image.Image.convert
    monkeypatch.setattr(
        Image.Image, "convert", lambda self, *a, **k: conversions.append(a[:1]) or convert(self, *a, **k)
    )
    for name in ("red-green-a.png", "red-green-b.png"):  # RGB, and RGBA with a transparent margin
        conversions.clear()
        assert encoder.encode_image([folder / name]).shape == (1, 32)
        assert conversions.count(("RGB",)) <= 1, (name, conversions)


def test_seeded_runs_are_identical(colour_pairs, tiny_image_model, tmp_path):
    config = ClipTrainConfig(
        pairs=colour_pairs, out=tmp_path / "a", model=tiny_image_model, max_steps=3, loss="siglip", **FAST
    )
    first, second = train_clip(config), train_clip(replace(config, out=tmp_path / "b"))
    other = train_clip(replace(config, out=tmp_path / "c", seed=7))
    assert first.card["losses"] == second.card["losses"] != other.card["losses"]
    a, b = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert "logit_bias" in a and all(torch.equal(a[k], b[k]) for k in a)


def _resumable(kind: str, pairs, model: str, out):
    """A CLIP run (mixup on, so the mixing plan is part of what must continue) or a SimCLR run on the flags."""
    steps = {"max_steps": 5, "eval_every": 2, "save_every": 2}
    if kind == "simclr":
        return train_simclr, SimclrTrainConfig(
            images=pairs.parent / "images", out=out, model=model, batch_size=8, val_fraction=0.25, quiet=True, **steps
        )
    return train_clip, ClipTrainConfig(pairs=pairs, out=out, model=model, **{**FAST, "mixup": 0.4}, **steps)


@pytest.mark.parametrize("kind", ["clip", "simclr"])
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(colour_pairs, tiny_image_model, tmp_path, kind):
    """Exactly, RNG included: the checkpoint holds every piece of state, so the resumed run does the same float
    operations in the same order as the uninterrupted one and its losses, RNG states after each step and
    weights are bit for bit the same, on any CPU and at any thread count (both runs use the same)."""
    train, config = _resumable(kind, colour_pairs, tiny_image_model, tmp_path / "whole")
    whole_steps = StepRecorder()
    whole = train(config, on_step=whole_steps)
    broken = replace(config, out=tmp_path / "resumed")
    with pytest.raises(Interrupt):
        train(broken, on_step=stop_at(3))  # the last checkpoint is at step 2
    assert not broken.out.exists() and (tmp_path / "resumed.tmp-train" / "checkpoint.pt").is_file()
    with pytest.raises(OutputExistsError, match="interrupted run"):
        train(broken)
    resumed_steps = StepRecorder()
    resumed = train(replace(broken, resume=True), on_step=resumed_steps)
    assert list(resumed_steps.steps) == [3, 4, 5] and resumed_steps.steps == whole_steps.after(2)
    assert resumed.card["losses"] == whole.card["losses"]
    assert [e["step"] for e in resumed.evaluations] == [0, 2, 4, 5]
    expected, got = weights(config.out), weights(broken.out)
    assert expected.keys() == got.keys() and all(torch.equal(got[k], expected[k]) for k in expected)


def test_a_locked_text_tower_embeds_each_caption_once_and_never_in_a_step(
    colour_pairs, tiny_image_model, tiny_model, tmp_path, monkeypatch
):
    from open_clip.hf_model import HFTextEncoder

    calls = []
    original = HFTextEncoder.forward
    monkeypatch.setattr(HFTextEncoder, "forward", lambda self, x: calls.append(len(x)) or original(self, x))
    settings = {**FAST, "text_tower": str(tiny_model)}
    config = ClipTrainConfig(pairs=colour_pairs, out=tmp_path / "lit", model=tiny_image_model, max_steps=4, **settings)
    result = train_clip(config)
    assert calls == [60]  # every distinct caption, in one batch, before the first step; evaluations reuse them
    text = result.card["data"]["text_tower"]
    assert text["locked"] and text["features_cached"] and result.card["model"]["model_cfg"]["embed_dim"] == 32
    trained, base = weights(tmp_path / "lit"), load_file(tiny_model / "model.safetensors")
    assert torch.equal(
        trained["text.transformer.embeddings.word_embeddings.weight"], base["embeddings.word_embeddings.weight"]
    )
    encoder = get_encoder(str(tmp_path / "lit"))
    assert encoder.encode_text(["red green"]).shape == (1, 32)


def test_too_few_images_for_a_batch_fail_before_anything_is_written(colour_pairs, tiny_image_model, tmp_path):
    config = ClipTrainConfig(
        pairs=colour_pairs, out=tmp_path / "m", model=tiny_image_model, **{**FAST, "batch_size": 96}
    )
    with pytest.raises(InvalidInputError, match="too few training examples for one batch: 59 images"):
        train_clip(config)
    assert list(tmp_path.iterdir()) == []


def test_cutting_padding_leaves_a_hugging_face_towers_features_unchanged(tiny_image_model, tiny_model):
    """Exact in arithmetic (padded positions are masked out of attention and pooling); in float64, so that the
    rounding of kernels blocked for other sequence lengths stays far below RTOL / ATOL on any CPU."""
    built = build_clip_model(tiny_image_model, None, str(tiny_model))
    model = built.model.eval().double()
    tokens = tokenizer_of(built.model_cfg)(["red green", "flag of red and green", "a much longer caption of a flag"])
    short = trim_padding(tokens, pad_id(model))
    assert tokens.shape[1] == 64 and short.shape[1] < 16  # the tiny BERT has 64 positions
    with torch.inference_mode():
        features = model.encode_text(short)
        assert features.dtype == torch.float64
        torch.testing.assert_close(features, model.encode_text(tokens), rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_emoji_with_a_locked_minilm_trains_an_encoder_whose_captions_are_minilms(
    shared_data, minilm, tmp_path, monkeypatch
):
    """The default recipe (es-resnet-32 at 32 px, MiniLM locked) for two steps on 300 emoji images; its text
    tower embeds captions as MiniLM does, compared in float64 on both sides (MiniLM's encoder would otherwise
    run in bf16 on CPUs that have it, and in float32 elsewhere)."""
    from embedsearch.encoders.sentence_transformer import SentenceTransformerEncoder

    config = ClipTrainConfig(
        pairs=shared_data / "emoji" / "captions.jsonl",
        split="train",
        out=tmp_path / "emoji",
        limit=300,
        batch_size=32,
        max_steps=2,
        eval_every=2,
        quiet=True,
    )
    result = train_clip(config)
    assert [e["step"] for e in result.evaluations] == [0, 2] and result.card["data"]["text_tower"]["features_cached"]
    encoder = get_encoder(str(config.out))
    assert encoder.dim == minilm.dim == 384
    monkeypatch.delenv("EMBEDSEARCH_PRECISION", raising=False)
    reference = SentenceTransformerEncoder(minilm.path, precision="fp32")
    encoder.model.text.double(), reference.model.double()  # the open_clip model's text tower, and MiniLM
    captions = ["grinning face with big eyes", "red heart"]
    # both: float64 features (equal to ~1e-14), rounded to float32 and normalised in float32, which moves each
    # coordinate (|x| <= 1) by at most (dim + 2) float32 roundoffs u = eps / 2: 2 (dim + 2) u apart at most
    atol = (encoder.dim + 2) * float(np.finfo(np.float32).eps)
    np.testing.assert_allclose(encoder.encode_text(captions), reference.encode_text(captions), rtol=0, atol=atol)
    images = encoder.encode_image([shared_data / "emoji" / "images" / "google" / "1f603.png"])
    assert images.shape == (1, 384)
