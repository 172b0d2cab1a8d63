"""``embedsearch train clip`` and ``train simclr`` as a user meets them (CliRunner, a one-layer ViT): the
summary line, models that ``index build --encoder DIR`` and search use, one-line errors with exit 2 (bad input)
or 1 and nothing written, and --help compared to tests/train/golden/ (``EMBEDSEARCH_REGEN_GOLDEN=1``)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.cli.golden_help import assert_help_matches
from tests.train.image.toys import write_colour_images, write_pairs
from tests.train.test_cli_train import GOLDEN, one_line_error, run

QUICK = ("--batch-size", "8", "--max-steps", "2", "--eval-every", "2", "--val-fraction", "0.25", "--quiet")


@pytest.fixture
def flags(tmp_path) -> Path:
    """The flag toy with one corrupt image among the pairs."""
    pairs = write_colour_images(tmp_path / "flags")
    (tmp_path / "flags" / "images" / "torn.png").write_bytes(b"\x89PNG\r\n\x1a\n torn off")
    return write_pairs(tmp_path / "flags" / "pairs.jsonl", [*pairs, {"image": "images/torn.png", "text": "torn"}])


def test_train_clip_prints_a_summary_and_writes_an_encoder_index_build_can_use(
    flags, tiny_image_model, tmp_path, home, caplog
):
    out = tmp_path / "model"
    args = (
        "--pairs",
        flags,
        "--out",
        out,
        "--model",
        tiny_image_model,
        "--text-tower",
        "open_clip",
        "--loss",
        "siglip",
    )
    result = run("train", "clip", *args, *QUICK)
    assert re.fullmatch(
        r"trained 2 steps in [\d.]+s \([\d.]+ samples/s\); best val mean recall [\d.]+ at step \d "
        r"\(image_to_text_R@1 [\d.]+, text_to_image_R@1 [\d.]+\); skipped 1 unreadable image\(s\); "
        rf"model written to {re.escape(str(out))}\n",
        result.stdout,
    ), result.stdout
    torn = flags.parent / "images" / "torn.png"
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [
        f"skipped {torn}: unreadable image (UnidentifiedImageError: cannot identify image file '{torn}')"
    ]
    card = json.loads((out / "training_card.json").read_text())
    assert card["kind"] == "siglip" and card["data"]["skipped_images"][0]["path"].endswith("torn.png")
    torn.unlink()
    build = run("index", "build", "flags", flags.parent / "images", "--encoder", out, "--home", home, "--quiet")
    assert "indexed 90 images" in build.stdout
    hits = json.loads(run("search", "flags", "red green", "--home", home, "--json").stdout)
    assert len(hits) == 10


def test_train_simclr_on_an_image_folder_writes_an_image_encoder(tiny_image_model, tmp_path, home):
    write_colour_images(tmp_path / "flags")
    out = tmp_path / "model"
    result = run("train", "simclr", "--images", tmp_path / "flags", "--out", out, "--model", tiny_image_model, *QUICK)
    assert re.match(r"trained 2 steps in .* best val mean recall [\d.]+ at step \d \(image_to_image_R@1", result.stdout)
    card = json.loads((out / "training_card.json").read_text())
    assert card["kind"] == "simclr" and card["data"]["train_images"] + card["data"]["val_images"] == 90
    marker = json.loads((out / "embedsearch_encoder.json").read_text())
    assert marker["modalities"] == ["image"] and not (out / "text_tower").exists()
    run("index", "build", "flags", tmp_path / "flags" / "images", "--encoder", out, "--home", home, "--quiet")
    query = tmp_path / "flags" / "images" / "red-green-a.png"
    hits = json.loads(run("search", "flags", "--image", query, "--home", home, "--json").stdout)
    assert hits[0]["id"] == "red-green-a.png"


def _pairs(tmp_path: Path, lines: list) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _flags(tmp_path: Path) -> Path:
    return write_pairs(tmp_path / "pairs.jsonl", write_colour_images(tmp_path))


ERRORS = {
    "malformed pairs": (
        lambda t: ["--pairs", _pairs(t, [{"image": "a.png", "text": "a"}, {"image": "b.png"}])],
        2,
        "Error: {t}/bad.jsonl:2: a pair needs a non-empty 'image' path and a non-empty 'text'",
    ),
    "empty pairs": (lambda t: ["--pairs", _pairs(t, [])], 2, "Error: {t}/bad.jsonl: no image-caption pairs"),
    "missing image": (
        lambda t: ["--pairs", _pairs(t, [{"image": "gone.png", "text": "gone"}])],
        2,
        "Error: 1 image file(s) named in {t}/bad.jsonl do not exist, e.g. {t}/bad.jsonl:1: {t}/gone.png",
    ),
    "too few": (
        lambda t: ["--pairs", _flags(t), "--batch-size", "64"],
        2,
        "Error: too few training examples for one batch: 87 images (after holding out 3 for validation) do not "
        "fill a batch of 64 with distinct images and captions",
    ),
    "unknown model": (
        lambda t: ["--pairs", _flags(t), "--model", "ViT-Nope"],
        2,
        "Error: unknown model 'ViT-Nope'; choose one of es-resnet-64, es-resnet-32, es-vit-64",
    ),
    "unknown text tower": (
        lambda t: ["--pairs", _flags(t), "--text-tower", "nowhere"],
        1,
        "Error: text tower 'nowhere' is not 'minilm', 'open_clip' or a Hugging Face",
    ),
    "locked scratch tower": (
        lambda t: ["--pairs", _flags(t), "--text-tower", "open_clip", "--lock-text"],
        2,
        "Error: --lock-text needs a pretrained text tower",
    ),
    "image size": (
        lambda t: ["--pairs", _flags(t), "--model", "es-resnet-64", "--image-size", "48"],
        2,
        "Error: image size 48 does not fit model 'es-resnet-64': it must be a multiple of 32",
    ),
    "nothing to resume": (lambda t: ["--pairs", _flags(t), "--resume"], 2, "Error: nothing to resume"),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_train_clip_errors_are_one_line_and_write_nothing(tmp_path, case):
    make_args, code, message = case
    args = ["train", "clip", "--out", tmp_path / "out", "--quiet", *make_args(tmp_path)]
    line = one_line_error(run(*args, code=code))
    assert line.startswith(message.format(t=tmp_path)), line
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp-train").exists()


def test_an_existing_output_directory_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    line = one_line_error(run("train", "clip", "--pairs", _flags(tmp_path), "--out", tmp_path / "out", code=1))
    assert line == f"Error: {tmp_path / 'out'} already exists; pass --overwrite to replace it"
    assert list((tmp_path / "out").iterdir()) == []


def test_simclr_refuses_a_folder_without_images(tmp_path):
    (tmp_path / "empty").mkdir()
    line = one_line_error(run("train", "simclr", "--images", tmp_path / "empty", "--out", tmp_path / "o", code=2))
    assert line.startswith(f"Error: {tmp_path / 'empty'} holds no image files") and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [("--loss", "triplet"), ("--crop-scale", "0.9", "0.5"), ("--hue", "0.7")])
def test_option_values_are_checked(tmp_path, args):
    result = run("train", "clip", "--pairs", _flags(tmp_path), "--out", tmp_path / "out", *args, code=2)
    assert (
        re.search(r"^Error: (Invalid value for|crop scale must)", result.stderr, re.M)
        and not (tmp_path / "out").exists()
    )


@pytest.mark.parametrize("path", [("train", "clip"), ("train", "simclr")], ids=" ".join)
def test_help_matches_the_saved_copy(path):
    assert_help_matches(path, GOLDEN)
