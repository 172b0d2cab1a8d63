"""Reading image–caption pairs files: distinct images and captions, who belongs to whom, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from embedsearch.data import read_image_pairs
from embedsearch.errors import SourceError


def _pairs_file(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def images(tmp_path: Path) -> Path:
    folder = tmp_path / "data" / "images"
    folder.mkdir(parents=True)
    for name in ("a.png", "b.png", "c.png"):
        (folder / name).write_bytes(b"only existence is checked when reading")
    return folder


def test_several_captions_per_image_and_images_per_caption(tmp_path, images):
    file = _pairs_file(
        tmp_path / "data" / "pairs.jsonl",
        [
            {"image": "images/b.png", "text": "grinning face", "vendor": "apple"},
            {"image": "images/a.png", "text": " grinning face "},
            {"image": "images/a.png", "text": "smile"},
            {"image": str(images / "c.png"), "text": "cat"},
            {"image": "images/a.png", "text": "smile"},  # a repeated pair counts once
        ],
    )
    pairs = read_image_pairs(file)
    assert pairs.images == [images / "b.png", images / "a.png", images / "c.png"]
    assert pairs.captions == ["grinning face", "smile", "cat"]
    assert pairs.image_to_texts == [[0], [0, 1], [2]]
    assert pairs.text_to_images == [[0, 1], [1], [2]]
    assert pairs.pairs == 4


def test_images_root_and_split(tmp_path, images):
    file = _pairs_file(
        tmp_path / "elsewhere.jsonl",
        [{"image": "a.png", "text": "one", "split": "train"}, {"image": "b.png", "text": "two", "split": "test"}],
    )
    pairs = read_image_pairs(file, images_root=images, split="test")
    assert (pairs.images, pairs.captions) == ([images / "b.png"], ["two"])
    with pytest.raises(SourceError, match="no image-caption pairs with split 'dev'"):
        read_image_pairs(file, images_root=images, split="dev")


def test_missing_images_are_all_listed(tmp_path, images):
    file = _pairs_file(
        tmp_path / "data" / "pairs.jsonl",
        [
            {"image": "images/a.png", "text": "x"},
            {"image": "images/gone.png", "text": "y"},
            {"image": "z.png", "text": "z"},
        ],
    )
    with pytest.raises(SourceError, match=r"2 image file\(s\) named in .* do not exist, e.g. .*:2: ") as caught:
        read_image_pairs(file)
    assert caught.value.problems == [f"{file}:2: {images / 'gone.png'}", f"{file}:3: {file.parent / 'z.png'}"]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", ":2: not JSON"),
        ('["a.png", "x"]', ":2: expected a JSON object"),
        ('{"image": "images/a.png"}', ":2: a pair needs a non-empty 'image' path and a non-empty 'text'"),
        ('{"image": "", "text": "x"}', ":2: a pair needs"),
        ('{"image": "images/a.png", "text": 3}', ":2: a pair needs"),
    ],
)
def test_a_malformed_line_is_named(tmp_path, images, line, message):
    file = tmp_path / "data" / "pairs.jsonl"
    file.write_text('{"image": "images/a.png", "text": "x"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(SourceError, match=message):
        read_image_pairs(file)


def test_an_unreadable_or_empty_file(tmp_path):
    with pytest.raises(SourceError, match="cannot read"):
        read_image_pairs(tmp_path / "nope.jsonl")
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(SourceError, match="no image-caption pairs$"):
        read_image_pairs(tmp_path / "empty.jsonl")
