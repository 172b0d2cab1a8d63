"""Hostile input and broken files at the command line: one ``Error:`` line naming what is wrong, the right exit
code, never a traceback; a broken index hides no other."""

from __future__ import annotations

import json

import pytest

from tests.cli.helpers import error_line, manifest, one_line_error, write_jsonl
from tests.conftest import ANIMALS


@pytest.fixture
def zoo(es, animals_file):
    return es("index", "build", "zoo", animals_file, "--encoder", "fake")


@pytest.mark.parametrize(
    "damage,file",
    [
        (lambda d: (d / "store.1.sqlite").unlink(), "store.1.sqlite"),
        (lambda d: (d / "store.1.sqlite").write_bytes(b"garbage" * 999), "store.1.sqlite"),
        (lambda d: (d / "seg.1.1.faiss").write_bytes((d / "seg.1.1.faiss").read_bytes()[:100]), "seg.1.1.faiss"),
        (lambda d: (d / "manifest.json").write_text('{"format_version": 2}'), "manifest.json"),
        (lambda d: (d / "manifest.json").write_text("{not json"), "manifest.json"),
    ],
)
def test_a_broken_index_is_one_line_naming_it_and_its_file_and_hides_no_other(zoo, es, home, tmp_path, damage, file):
    es("index", "build", "other", write_jsonl(tmp_path / "o.jsonl", ANIMALS[:2]), "--encoder", "fake")
    damage(home / "zoo")
    message = one_line_error(es("search", "zoo", "cat", code=1))
    assert "'zoo'" in message and file in message
    listed = es("index", "list").stdout.splitlines()
    assert listed[0].startswith("other\t2 docs") and listed[1].startswith("zoo\tBROKEN: ") and file in listed[1]
    assert es("search", "other", "cat").stdout


def test_another_index_s_segment_file_is_caught(zoo, es, home, tmp_path):
    es("index", "build", "other", write_jsonl(tmp_path / "o.jsonl", ANIMALS[:2]), "--encoder", "fake")
    (home / "zoo" / "seg.1.1.faiss").write_bytes((home / "other" / "seg.1.1.faiss").read_bytes())
    message = one_line_error(es("search", "zoo", "cat", code=1))
    assert "seg.1.1.faiss" in message and ("bytes" in message or "sha256" in message)


@pytest.mark.parametrize(
    "args,needle",
    [
        (("search", "zoo", "cat", "-k", "1000000000000"), "-k"),
        (("search", "zoo", "x" * 20_000), "over the limit"),
        (("search", "zoo\n", "cat"), "invalid index name"),
        (("search", "zoo", "cat", "--where", "a=" + "v" * 5000), "over the limit"),
    ],
)
def test_absurd_arguments_are_one_line_usage_errors(zoo, es, args, needle):
    assert needle in error_line(es(*args, code=2))


def test_a_home_that_cannot_be_a_home_is_one_line(es, tmp_path, animals_file):
    (tmp_path / "file").write_text("x")
    from tests.cli.helpers import run_cli

    result = run_cli("index", "build", "zoo", animals_file, "--encoder", "fake", home=tmp_path / "file", code=2)
    assert "file" in error_line(result)
    result = run_cli("index", "build", "zoo", animals_file, "--encoder", "fake", home=tmp_path / "file" / "x", code=1)
    assert "Not a directory" in one_line_error(result)


def test_bad_records_are_reported_by_file_and_line(es, tmp_path):
    csv = tmp_path / "table.csv"
    csv.write_text('id,text\n1,first\n2,"never closed\n3,third\n')
    assert (
        f"{csv}:3: a quoted field that is never closed"
        in es("index", "build", "t", csv, "--encoder", "fake", code=2).stderr
    )
    jsonl = tmp_path / "docs.jsonl"
    jsonl.write_text(
        '{"_id": "a", "text": "ok", "score": NaN}\n'
        '{"_id": "b", "text": "ok", "m": ' + "[" * 5000 + "]" * 5000 + "}\n"
        '{"_id": "c", "text": "fine"}\n'
    )
    result = es("index", "build", "t", jsonl, "--encoder", "fake", code=2)
    assert (
        f"{jsonl}:1: the number NaN is not valid JSON" in result.stderr and f"{jsonl}:2: JSON nested" in result.stderr
    )
    es("index", "build", "t", jsonl, "--encoder", "fake", "--skip-invalid")
    assert manifest(es, "t")["count"] == 1
    out = es("search", "t", "fine", "--json").stdout
    assert json.loads(out)[0]["id"] == "c"  # valid JSON


def test_deleting_absent_ids_says_so_and_writes_nothing(zoo, es):
    before = manifest(es)["generation"]
    result = es("index", "delete", "zoo", "nope")
    assert "nothing deleted" in result.stdout and "not in the index: nope" in result.stderr
    assert manifest(es)["generation"] == before


def test_compact_and_info_show_segments_and_tombstones(zoo, es, tmp_path):
    es("index", "add", "zoo", write_jsonl(tmp_path / "more.jsonl", [{"_id": "cat", "text": "a new cat text"}]))
    info = es("index", "info", "zoo").stdout
    assert "segments:   2" in info and "tombstones: " in info and "disk:" in info
    result = es("index", "compact", "zoo")
    assert "compacted 2 segment(s) into 1" in result.stdout
    assert [s["tombstones"] for s in manifest(es)["segments"]] == [0]


def test_serve_refuses_open_writes_beyond_loopback_and_an_empty_token(zoo, es, monkeypatch):
    assert "--allow-open-writes" in error_line(es("serve", "--host", "0.0.0.0", code=2))
    monkeypatch.setenv("EMBEDSEARCH_API_TOKEN", "")
    assert "set but empty" in error_line(es("serve", code=2))


def test_a_count_that_disagrees_with_the_store_is_caught(zoo, es, home):
    import sqlite3

    db = sqlite3.connect(home / "zoo" / "store.1.sqlite")
    db.execute("UPDATE state SET value = '7' WHERE key = 'documents'")
    db.commit()
    db.close()
    message = one_line_error(es("index", "info", "zoo", code=1))
    assert "store.1.sqlite records 7 documents but holds 5" in message
