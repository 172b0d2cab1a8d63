"""Shared fixtures: the fake encoder (registered through the real registry), small corpora, the real MiniLM
model as one session fixture, and the ``slow`` marker (off unless ``--run-slow``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import tests.fake_encoder  # noqa: F401 (registers "fake" and "fake-other")

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("EMBEDSEARCH_DATA", REPO.parent / "shared" / "data"))

ANIMALS = [
    {
        "_id": "cat",
        "title": "Cats",
        "text": "The cat is a small domestic feline that purrs and hunts mice.",
        "kind": "pet",
    },
    {
        "_id": "dog",
        "title": "Dogs",
        "text": "The dog is a loyal domestic animal that barks and fetches sticks.",
        "kind": "pet",
    },
    {"_id": "eagle", "text": "The eagle is a large bird of prey with keen eyesight that soars high.", "kind": "wild"},
    {"_id": "shark", "text": "The shark is a fish of the ocean with many rows of sharp teeth.", "kind": "wild"},
    {"_id": "long", "text": " ".join(f"word{i}" for i in range(40)) + " mice cat purrs", "kind": "wild"},
]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", help="also run tests marked slow (real model, ../shared data)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: loads the real model or ../shared data; run with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "indexes"


@pytest.fixture
def animals_file(tmp_path: Path) -> Path:
    path = tmp_path / "animals.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in ANIMALS), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "scifact" / "corpus.jsonl").exists():
        pytest.skip(f"real datasets not found at {SHARED_DATA} (set EMBEDSEARCH_DATA to their folder)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def minilm():
    """The real all-MiniLM-L6-v2 encoder, loaded once per session (slow tests only)."""
    from embedsearch.encoders import get_encoder

    return get_encoder("minilm")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """Images in the colours ``fake-clip`` knows (one in a subfolder, one RGBA whose transparent pixels hide red
    and whose visible part is yellow, so it is yellow only when composited on white), one corrupt file and one
    text file."""
    from PIL import Image

    from tests.fake_encoder import COLOURS

    folder = tmp_path / "pictures"
    (folder / "alpha").mkdir(parents=True)
    Image.new("RGB", (16, 16), COLOURS["red"]).save(folder / "red.png")
    Image.new("RGB", (16, 16), COLOURS["green"]).save(folder / "green.jpg")
    Image.new("RGB", (16, 16), COLOURS["blue"]).save(folder / "alpha" / "blue.webp")
    hidden_red = Image.new("RGBA", (10, 10), COLOURS["red"] + (0,))
    hidden_red.paste(Image.new("RGBA", (10, 4), COLOURS["yellow"] + (255,)))
    hidden_red.save(folder / "alpha" / "yellow.png")
    (folder / "broken.gif").write_bytes(b"GIF89a but then nothing")
    (folder / "notes.txt").write_text("a note about the colour red", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real open_clip model directory (tiny, random weights) that embeds images and text."""
    from tests.open_clip_tiny import make_tiny_open_clip_dir

    return make_tiny_open_clip_dir(tmp_path_factory.mktemp("models") / "tiny-clip")
