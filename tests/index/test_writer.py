"""Build, upsert and delete through the API, and what lands on disk."""

from __future__ import annotations

import json

import numpy as np
import pytest

from embedsearch import add_documents, build_index, delete_documents, index_info, list_indexes, load_index
from embedsearch.data import Document
from embedsearch.data.documents import document_from_record
from embedsearch.encoders import get_encoder
from embedsearch.errors import EncoderMismatchError, IndexExistsError, InvalidInputError, UnknownIndexError
from embedsearch.index import ChunkingPolicy, StoredIndex
from tests.conftest import ANIMALS

DOCS = [document_from_record(r) for r in ANIMALS]


def _stored(name, home):
    index = StoredIndex.open(name, home)
    ids, _ = index.docs.all_vectors()
    return index, ids


def test_build_writes_a_self_describing_manifest(home):
    report = build_index("zoo", DOCS, "fake", home=home)
    info = index_info("zoo", home)
    assert info == {**report.manifest, "path": str((home / "zoo").resolve())}
    assert info["count"] == 5 and info["chunks"] > 5  # the long document is chunked
    assert info["encoder"]["name"] == "fake" and info["encoder"]["fingerprint"] == get_encoder("fake").fingerprint
    assert (info["format_version"], info["dim"], info["metric"], info["spec"]) == (1, 32, "inner_product", "Flat")
    assert {"created", "updated", "generation"} <= set(info)
    assert [m["name"] for m in list_indexes(home)] == ["zoo"]


def test_faiss_holds_exactly_the_stored_chunks(home):
    build_index("zoo", DOCS, "fake", home=home)
    index, ids = _stored("zoo", home)
    assert index.vectors.ntotal == len(ids) == index.manifest["chunks"]


def test_chunks_cover_long_documents_and_no_chunking_keeps_one(home):
    build_index("chunked", DOCS, "fake", home=home)
    build_index("whole", DOCS, "fake", home=home, chunking=ChunkingPolicy(enabled=False))
    assert index_info("whole", home)["chunks"] == 5
    hit = load_index("chunked", home).search("mice cat purrs", k=5)
    long_hit = next(h for h in hit if h.id == "long")
    assert long_hit.snippet.endswith("mice cat purrs") and not long_hit.snippet.startswith("word0 ")


def test_build_refuses_an_existing_index_unless_overwrite(home):
    build_index("zoo", DOCS, "fake", home=home)
    with pytest.raises(IndexExistsError, match="--overwrite"):
        build_index("zoo", DOCS[:2], "fake", home=home)
    build_index("zoo", DOCS[:2], "fake", home=home, overwrite=True)
    assert index_info("zoo", home)["count"] == 2


def test_upsert_replaces_changed_documents_and_skips_unchanged(home):
    build_index("zoo", DOCS, "fake", home=home)
    encoder = get_encoder("fake")
    calls = encoder.calls
    changed = Document("shark", "The shark now lives in a lake of fresh water.", {"kind": "wild"})
    report = add_documents("zoo", [DOCS[0], changed, Document("owl", "An owl hoots at night.")], home=home)
    assert (report.added, report.updated, report.unchanged) == (["owl"], ["shark"], ["cat"])
    assert encoder.calls == calls + 1  # one batch: only the two new texts were encoded
    searcher = load_index("zoo", home)
    assert searcher.search("lake fresh water", k=1)[0].snippet == changed.text
    index, ids = _stored("zoo", home)
    assert index.vectors.ntotal == len(ids) and index.manifest["count"] == 6


@pytest.mark.parametrize("spec", ["Flat", "HNSW32,Flat"])
def test_delete_removes_documents_from_search(home, spec):
    build_index("zoo", DOCS, "fake", home=home, spec=spec)
    report = delete_documents("zoo", ["cat", "nope"], home=home)
    assert (report.deleted, report.missing, report.manifest["count"]) == (["cat"], ["nope"], 4)
    hits = load_index("zoo", home).search("cat purrs mice", k=10)
    assert "cat" not in [h.id for h in hits] and len(hits) == 4
    index, ids = _stored("zoo", home)
    assert index.vectors.ntotal == len(ids)


def test_writes_keep_only_two_generations_on_disk(home):
    build_index("zoo", DOCS, "fake", home=home)
    for i in range(3):
        add_documents("zoo", [Document(f"n{i}", f"note number {i}")], home=home)
    files = sorted(p.name for p in (home / "zoo").iterdir() if not p.name.startswith("."))
    assert files == ["docs.3.sqlite", "docs.4.sqlite", "manifest.json", "vectors.3.faiss", "vectors.4.faiss"]


def test_an_open_searcher_keeps_its_snapshot_during_writes(home):
    build_index("zoo", DOCS, "fake", home=home)
    before = load_index("zoo", home)
    delete_documents("zoo", ["dog"], home=home)
    add_documents("zoo", [Document("dog2", "another dog that barks")], home=home)
    assert "dog" in [h.id for h in before.search("dog barks", k=5)]
    assert "dog" not in [h.id for h in load_index("zoo", home).search("dog barks", k=5)]


def test_adding_with_another_encoder_is_a_mismatch(home):
    build_index("zoo", DOCS, "fake", home=home)
    with pytest.raises(EncoderMismatchError, match="does not match"):
        add_documents("zoo", DOCS[:1], home=home, encoder="fake-other")


def test_errors_for_unknown_index_bad_name_and_no_documents(home):
    with pytest.raises(UnknownIndexError, match="'nope'"):
        load_index("nope", home)
    with pytest.raises(InvalidInputError, match="invalid index name"):
        build_index("../evil", DOCS, "fake", home=home)
    with pytest.raises(InvalidInputError, match="no documents"):
        build_index("empty", [], "fake", home=home)


def test_unknown_format_version_is_refused(home):
    build_index("zoo", DOCS, "fake", home=home)
    path = home / "zoo" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 99}))
    with pytest.raises(Exception, match="format version 99"):
        load_index("zoo", home)


def test_stored_vectors_are_the_encoders_normalised_vectors(home):
    build_index("zoo", DOCS[:2], "fake", home=home, chunking=ChunkingPolicy(enabled=False))
    index, _ = _stored("zoo", home)
    _, vectors = index.docs.all_vectors()
    expected = get_encoder("fake").encode_text([DOCS[0].text, DOCS[1].text])
    np.testing.assert_allclose(vectors, expected, atol=1e-6)


def test_where_matches_booleans_and_numbers_as_written(home):
    docs = [Document("a", "alpha text", {"featured": True, "year": 2020}), Document("b", "beta text", {"year": 2021})]
    build_index("meta", docs, "fake", home=home)
    searcher = load_index("meta", home)
    assert [h.id for h in searcher.search("text", k=5, where={"featured": "true"})] == ["a"]
    assert [h.id for h in searcher.search("text", k=5, where={"year": "2021"})] == ["b"]


def test_writing_to_an_unknown_index_leaves_no_folder(home):
    with pytest.raises(UnknownIndexError):
        add_documents("ghost", DOCS, home=home)
    with pytest.raises(UnknownIndexError):
        delete_documents("ghost", ["x"], home=home)
    assert not (home / "ghost").exists()


def test_a_failed_write_leaves_only_the_last_good_generation(home):
    build_index("zoo", DOCS, "fake", home=home)
    with pytest.raises(InvalidInputError, match="cannot be trained"):
        build_index("zoo", DOCS, "fake", home=home, spec="IVF64,Flat", overwrite=True)
    files = sorted(p.name for p in (home / "zoo").iterdir() if not p.name.startswith("."))
    assert files == ["docs.1.sqlite", "manifest.json", "vectors.1.faiss"]
    assert load_index("zoo", home).manifest["spec"] == "Flat"


def test_memory_budget_too_small_for_a_small_collection_is_a_clear_error(home):
    with pytest.raises(InvalidInputError, match="memory budget"):
        build_index("tiny", DOCS, "fake", home=home, memory_budget=1000)
