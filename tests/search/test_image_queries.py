"""Image queries and mixed batches with ``fake-clip`` (an image is the word of its nearest primary colour):
image to image on an image index, image to text on a caption index, and the errors when a tower is missing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import embedsearch.index.identity
from embedsearch import build_index, load_index
from embedsearch.data import Document, read_documents
from embedsearch.errors import InvalidInputError, UnsupportedModalityError
from embedsearch.search import Searcher
from tests.encoders.tolerances import HIT_ROUNDING, cosine_error
from tests.fake_encoder import COLOURS, DIM

CAPTIONS = {"c-red": "a red sign", "c-green": "green grass", "c-blue": "the blue sea", "c-yellow": "yellow sun"}
# a Hit's score is a float32 cosine of two vectors normalised in float32, off the exact one by cosine_error(DIM) at
# worst on any CPU, then rounded to 6 decimals
SCORE_ERROR = cosine_error(DIM) + HIT_ROUNDING


@pytest.fixture
def pictures(image_folder: Path) -> Path:
    (image_folder / "broken.gif").unlink()
    return image_folder


@pytest.fixture
def image_index(home, pictures) -> Searcher:
    build_index("pics", read_documents([pictures], embeds={"text", "image"}).documents, "fake-clip", home=home)
    return load_index("pics", home)


@pytest.fixture
def caption_index(home) -> Searcher:
    build_index("captions", [Document(i, text) for i, text in CAPTIONS.items()], "fake-clip", home=home)
    return load_index("captions", home)


def _ids(rows) -> list[list[str]]:
    return [[hit.id for hit in row] for row in rows]


def test_image_to_image(image_index, pictures):
    rows = image_index.search_images([pictures / "red.png", pictures / "alpha" / "blue.webp"], k=2)
    assert [row[0] for row in _ids(rows)] == ["red.png", "alpha/blue.webp"]
    assert rows[0][0].score == pytest.approx(1.0, abs=SCORE_ERROR)  # the same picture: cosine 1


def test_image_to_text_on_a_caption_index(caption_index, pictures):
    from PIL import Image

    query = pictures / "green.jpg"
    as_path, as_bytes, as_picture = (
        caption_index.search_images([q], k=4)[0]
        for q in (query, query.read_bytes(), Image.new("RGB", (8, 8), COLOURS["green"]))
    )
    assert as_path[0].id == "c-green" and as_path[0].snippet == "green grass"
    assert as_path == as_bytes == as_picture


def test_transparent_query_pixels_are_composited_on_white(caption_index, pictures):
    assert caption_index.search_images([pictures / "alpha" / "yellow.png"], k=1)[0][0].id == "c-yellow"


def test_a_mixed_batch_equals_its_queries_one_by_one(caption_index, pictures):
    queries = ["blue sea", pictures / "red.png", "grass", pictures / "alpha" / "blue.webp"]
    mixed = caption_index.search_mixed(queries, k=3)
    single = [
        caption_index.search(q, k=3) if isinstance(q, str) else caption_index.search_images([q], k=3)[0]
        for q in queries
    ]
    # the same cosines computed twice, each within SCORE_ERROR of the exact value
    scores = [[h.score for h in row] for row in mixed], [[h.score for h in row] for row in single]
    np.testing.assert_allclose(*scores, rtol=0, atol=2 * SCORE_ERROR)
    # equal rankings (the top 3 of 4 captions) follow on any CPU only if no two captions score that close
    every = np.array([[h.score for h in row] for row in caption_index.search_mixed(queries, k=len(CAPTIONS))])
    assert np.all(-np.diff(every, axis=1) > 2 * SCORE_ERROR)
    assert _ids(mixed) == _ids(single)
    assert _ids(caption_index.search_mixed(["grass"], k=1)) == [["c-green"]]


def test_an_unreadable_query_image_is_named(caption_index, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG truncated")
    with pytest.raises(InvalidInputError, match=f"query image {broken}: unreadable image"):
        caption_index.search_images([broken])
    with pytest.raises(InvalidInputError, match="query image a bytes image: unreadable image"):
        caption_index.search_mixed(["red", b"not an image"])


def test_image_queries_need_an_image_tower(home, pictures, monkeypatch):
    build_index("notes", [Document("n", "red notes")], "fake", home=home)
    with pytest.raises(UnsupportedModalityError, match="index 'notes' cannot answer image queries: its encoder 'fake'"):
        load_index("notes", home).search_images([pictures / "red.png"])

    def no_loading(reference, **_):
        raise AssertionError(f"the encoder {reference!r} was loaded before the query kind was checked")

    monkeypatch.setattr(embedsearch.index.identity, "get_encoder", no_loading)
    with pytest.raises(UnsupportedModalityError, match="embeds only text"):
        Searcher.open("notes", home, query_kinds={"text", "image"})
