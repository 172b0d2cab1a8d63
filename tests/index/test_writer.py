"""Build, upsert and delete through the API: what they change, what they cost on disk, and what they refuse."""

from __future__ import annotations

import json

import pytest

from embedsearch import add_documents, build_index, delete_documents, index_info, list_indexes, load_index
from embedsearch.data import Document
from embedsearch.data.documents import document_from_record
from embedsearch.encoders import get_encoder
from embedsearch.errors import (
    CorruptIndexError,
    EncoderMismatchError,
    IndexExistsError,
    InvalidInputError,
    UnknownIndexError,
)
from embedsearch.index import ChunkingPolicy, CompactionPolicy, compact_index
from tests.conftest import ANIMALS
from tests.index.inspection import contents, files_of

DOCS = [document_from_record(r) for r in ANIMALS]
TRAIN_AT_ONCE = CompactionPolicy(floor_vectors=1)


def test_build_writes_a_self_describing_manifest(home):
    report = build_index("zoo", DOCS, "fake", home=home)
    info = index_info("zoo", home)
    assert {k: v for k, v in info.items() if k not in ("path", "disk_bytes")} == report.manifest
    assert info["count"] == 5 and info["chunks"] > 5  # the long document is chunked
    assert info["encoder"]["name"] == "fake" and info["encoder"]["fingerprint"] == get_encoder("fake").fingerprint
    assert (info["format_version"], info["dim"], info["metric"], info["spec"]) == (2, 32, "inner_product", "Flat")
    assert {"created", "updated", "generation", "segments", "tombstones", "disk_bytes"} <= set(info)
    assert [(s["vectors"], s["tombstones"]) for s in info["segments"]] == [(info["chunks"], 0)]
    assert [m["name"] for m in list_indexes(home)] == ["zoo"]
    assert contents("zoo", home) == {d.id: d.text for d in DOCS}


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
    info = index_info("zoo", home)
    assert (info["count"], info["epoch"], info["generation"]) == (2, 2, 2)  # generations keep growing
    assert files_of(home / "zoo") == ["manifest.json", "seg.2.1.faiss", "store.2.sqlite"]


def test_upsert_writes_one_segment_and_tombstones_the_replaced_chunks(home):
    build_index("zoo", DOCS, "fake", home=home)
    before = index_info("zoo", home)
    encoder = get_encoder("fake")
    calls = encoder.calls
    changed = Document("shark", "The shark now lives in a lake of fresh water.", {"kind": "wild"})
    report = add_documents("zoo", [DOCS[0], changed, Document("owl", "An owl hoots at night.")], home=home)
    assert (report.added, report.updated, report.unchanged) == (["owl"], ["shark"], ["cat"])
    assert encoder.calls == calls + 1  # one batch: only the two new texts were encoded
    info = index_info("zoo", home)
    assert info["generation"] == before["generation"] + 1 and info["count"] == 6
    [old, new] = info["segments"]
    assert (new["vectors"], new["tombstones"]) == (info["chunks"] - before["chunks"] + old["tombstones"], 0)
    assert old == {**before["segments"][0], "tombstones": old["tombstones"]} and old["tombstones"] >= 1
    # the old segment file is not rewritten: only the old shark's chunks are tombstones
    assert load_index("zoo", home).search("lake fresh water", k=1)[0].snippet == changed.text
    assert contents("zoo", home) == {
        **{d.id: d.text for d in DOCS},
        "shark": changed.text,
        "owl": "An owl hoots at night.",
    }


@pytest.mark.parametrize("spec", ["Flat", "HNSW32,Flat"])
def test_delete_writes_tombstones_only(home, spec):
    build_index("zoo", DOCS, "fake", home=home, spec=spec)
    segment_file = home / "zoo" / "seg.1.1.faiss"
    stamp = segment_file.stat().st_mtime_ns
    report = delete_documents("zoo", ["cat", "nope"], home=home, compact=False)
    assert (report.deleted, report.missing, report.manifest["count"]) == (["cat"], ["nope"], 4)
    cat_chunks = index_info("zoo", home)["segments"][0]["vectors"] - report.manifest["chunks"]
    assert report.manifest["tombstones"] == cat_chunks >= 1 and segment_file.stat().st_mtime_ns == stamp
    hits = load_index("zoo", home).search("cat purrs mice", k=10)
    assert "cat" not in [h.id for h in hits] and len(hits) == 4
    assert set(contents("zoo", home)) == {"dog", "eagle", "shark", "long"}


def test_deleting_absent_ids_writes_nothing(home):
    build_index("zoo", DOCS, "fake", home=home)
    files = {p.name: p.stat().st_mtime_ns for p in (home / "zoo").iterdir()}
    report = delete_documents("zoo", ["nope", "nada"], home=home)
    assert (report.deleted, report.missing) == ([], ["nope", "nada"])
    assert report.manifest["generation"] == 1
    assert {p.name: p.stat().st_mtime_ns for p in (home / "zoo").iterdir()} == files


def test_an_unchanged_upsert_writes_nothing(home):
    build_index("zoo", DOCS, "fake", home=home)
    files = {p.name: p.stat().st_mtime_ns for p in (home / "zoo").iterdir()}
    report = add_documents("zoo", DOCS[:2], home=home)
    assert report.unchanged == ["cat", "dog"] and report.manifest["generation"] == 1
    assert {p.name: p.stat().st_mtime_ns for p in (home / "zoo").iterdir()} == files


def test_an_open_searcher_sees_each_committed_write(home):
    build_index("zoo", DOCS, "fake", home=home)
    searcher = load_index("zoo", home)
    assert "dog" in [h.id for h in searcher.search("dog barks", k=5)]
    delete_documents("zoo", ["dog"], home=home)
    add_documents("zoo", [Document("dog2", "another dog that barks")], home=home)
    ids = [h.id for h in searcher.search("dog barks", k=5)]
    assert "dog" not in ids and "dog2" in ids


def test_an_id_given_twice_in_one_write_is_refused(home):
    with pytest.raises(InvalidInputError, match="more than once.*'cat'"):
        build_index("zoo", [*DOCS, DOCS[0]], "fake", home=home)
    build_index("zoo", DOCS, "fake", home=home)
    with pytest.raises(InvalidInputError, match="more than once"):
        add_documents("zoo", [Document("x", "one"), Document("x", "two")], home=home)
    assert contents("zoo", home) == {d.id: d.text for d in DOCS}


def test_adding_with_another_encoder_is_a_mismatch(home):
    build_index("zoo", DOCS, "fake", home=home)
    with pytest.raises(EncoderMismatchError, match="does not match"):
        add_documents("zoo", DOCS[:1], home=home, encoder="fake-other")


def test_errors_for_unknown_index_bad_name_and_no_documents(home):
    with pytest.raises(UnknownIndexError, match="'nope'"):
        load_index("nope", home)
    for bad in ("../evil", "zoo\n", "", "a" * 200, ".hidden"):
        with pytest.raises(InvalidInputError, match="invalid index name"):
            build_index(bad, DOCS, "fake", home=home)
    with pytest.raises(InvalidInputError, match="no documents"):
        build_index("empty", [], "fake", home=home)


def test_a_home_that_is_a_file_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(InvalidInputError, match="is not a folder"):
        build_index("zoo", DOCS, "fake", home=tmp_path / "file")


def test_unknown_format_version_is_refused(home):
    build_index("zoo", DOCS, "fake", home=home)
    path = home / "zoo" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "format_version": 99}))
    with pytest.raises(CorruptIndexError, match="format version 99"):
        load_index("zoo", home)


def test_where_matches_booleans_and_numbers_as_written(home):
    docs = [Document("a", "alpha text", {"featured": True, "year": 2020}), Document("b", "beta text", {"year": 2021})]
    build_index("meta", docs, "fake", home=home)
    searcher = load_index("meta", home)
    assert [h.id for h in searcher.search("text", k=5, where={"featured": "true"})] == ["a"]
    assert [h.id for h in searcher.search("text", k=5, where={"featured": True})] == ["a"]
    assert [h.id for h in searcher.search("text", k=5, where={"year": "2021"})] == ["b"]
    assert [h.id for h in searcher.search("text", k=5, where={"year": 2021})] == ["b"]


def test_where_keys_and_values_may_hold_any_character(home):
    odd = {'say "hi"': 'it\'s "quoted"', "a.b": "dotted", "$[0]": "json path", "ключ": "значение", "long": "x" * 500}
    docs = [Document("a", "alpha text", odd), Document("b", "beta text", {'say "hi"': "other"})]
    build_index("odd", docs, "fake", home=home)
    searcher = load_index("odd", home)
    for key, value in odd.items():
        assert [h.id for h in searcher.search("text", k=5, where={key: value})] == ["a"], key
    assert searcher.search("text", k=5, where={"a.b": "x"}) == []


def test_writing_to_an_unknown_index_leaves_no_folder(home):
    with pytest.raises(UnknownIndexError):
        add_documents("ghost", DOCS, home=home)
    with pytest.raises(UnknownIndexError):
        delete_documents("ghost", ["x"], home=home)
    assert not (home / "ghost").exists()


def test_a_failed_build_leaves_the_last_good_epoch(home):
    build_index("zoo", DOCS, "fake", home=home)
    with pytest.raises(InvalidInputError, match="cannot be trained"):  # a floor of 1: trained even on 5 documents
        build_index("zoo", DOCS, "fake", home=home, spec="IVF64,Flat", overwrite=True, compaction=TRAIN_AT_ONCE)
    assert files_of(home / "zoo") == ["manifest.json", "seg.1.1.faiss", "store.1.sqlite"]
    assert load_index("zoo", home).manifest["spec"] == "Flat"
    assert contents("zoo", home) == {d.id: d.text for d in DOCS}


def test_memory_budget_too_small_for_a_small_collection_is_a_clear_error(home):
    with pytest.raises(InvalidInputError, match="memory budget"):
        build_index("tiny", DOCS, "fake", home=home, memory_budget=1000)


@pytest.mark.parametrize("spec", ["HNSW16,Flat", "IVF2,Flat"])
def test_segments_under_the_floor_are_flat_and_a_merge_past_it_builds_the_spec(home, spec):
    policy = CompactionPolicy(floor_vectors=14, max_segments=4, merge_factor=4)
    build_index("zoo", DOCS, "fake", home=home, spec=spec, compaction=policy)
    [first] = index_info("zoo", home)["segments"]
    assert first["vectors"] < 14 and first["spec"] == "Flat"  # a buffer, and no quantizer trained yet
    more = [Document(f"n{i}", f"note {i} about words {i} and more words {i + 1}") for i in range(8)]
    add_documents("zoo", more, home=home, compact=False)
    compact_index("zoo", home)
    [merged] = index_info("zoo", home)["segments"]
    assert merged["vectors"] >= 14 and merged["spec"] == spec
    assert contents("zoo", home) == {**{d.id: d.text for d in DOCS}, **{d.id: d.text for d in more}}
