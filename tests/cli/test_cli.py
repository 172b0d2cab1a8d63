"""The ``embedsearch`` command as a user meets it: every command through click's ``CliRunner`` with the fake
encoder (registered by tests/conftest.py), checking stdout, stderr and the exit code.

Errors must be one ``Error: ...`` line on stderr with exit 2 (bad input) or 1 (anything else) and no
traceback, unless ``--debug``. Help output is compared to tests/cli/golden/; ``EMBEDSEARCH_REGEN_GOLDEN=1``
rewrites those files.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from embedsearch import __version__
from embedsearch.cli import cli
from embedsearch.errors import UnknownIndexError
from tests.cli.golden_help import assert_help_matches
from tests.cli.helpers import error_line, hits, manifest, one_line_error, write_jsonl
from tests.conftest import ANIMALS

GOLDEN = Path(__file__).parent / "golden"
PETS = {r["_id"] for r in ANIMALS if r["kind"] == "pet"}
WILD_QUERY = "eagle bird of prey soars high, shark fish of the ocean"


@pytest.fixture
def zoo(es, animals_file: Path) -> Result:
    """Index ``zoo`` of the five ANIMALS (the ``long`` one spans several 12-token chunks)."""
    return es("index", "build", "zoo", animals_file, "--encoder", "fake")


# index build / info / list


def test_build_reports_what_it_indexed_and_info_shows_the_manifest(zoo, es, home):
    info = manifest(es)
    assert zoo.stderr == ""
    assert f"indexed 5 documents ({info['chunks']} chunks)" in zoo.stdout
    assert "index 'zoo' holds 5 documents, spec Flat" in zoo.stdout
    assert info["count"] == 5 and info["chunks"] > 5  # the long document was chunked
    assert (info["name"], info["spec"], info["dim"], info["generation"]) == ("zoo", "Flat", 32, 1)
    assert info["encoder"]["name"] == "fake"
    assert Path(info["path"]) == (home / "zoo").resolve()

    text = es("index", "info", "zoo").stdout.splitlines()
    assert "count:      5" in text and "spec:       Flat" in text
    assert f"encoder:    fake ({info['encoder']['fingerprint']})" in text


def test_build_options_reach_the_index(es, animals_file):
    es("index", "build", "whole", animals_file, "--encoder", "fake", "--no-chunking", "--spec", "HNSW8,Flat")
    info = manifest(es, "whole")
    assert (info["count"], info["chunks"], info["spec"]) == (5, 5, "HNSW8,Flat")
    assert info["chunking"]["enabled"] is False


def test_build_reads_jsonl_csv_and_folders_together(es, tmp_path, animals_file):
    (tmp_path / "table.csv").write_text("id,text,lang\nrow1,a row of a table,en\n", encoding="utf-8")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.md").write_text("feed the cat", encoding="utf-8")
    es("index", "build", "mixed", animals_file, tmp_path / "table.csv", notes, "--encoder", "fake")
    found = {h["id"]: h["metadata"] for h in hits(es, "mixed", "cat table", "-k", "10")}
    assert set(found) == {r["_id"] for r in ANIMALS} | {"row1", "todo.md"}
    assert found["row1"] == {"lang": "en"} and found["todo.md"] == {"path": "todo.md"}


def test_build_onto_an_existing_index_needs_overwrite(zoo, es, tmp_path):
    message = one_line_error(
        es("index", "build", "zoo", write_jsonl(tmp_path / "two.jsonl", ANIMALS[:2]), "--encoder", "fake", code=1)
    )
    assert "'zoo' already exists" in message and "--overwrite" in message
    assert manifest(es)["count"] == 5

    es("index", "build", "zoo", tmp_path / "two.jsonl", "--encoder", "fake", "--overwrite")
    info = manifest(es)
    assert (info["count"], info["generation"]) == (2, 2)
    assert {h["id"] for h in hits(es, "zoo", "animal", "-k", "10")} == {"cat", "dog"}


def test_index_list_in_text_and_json(es, animals_file):
    assert es("index", "list").stdout == ""
    assert json.loads(es("index", "list", "--json").stdout) == []
    es("index", "build", "b-zoo", animals_file, "--encoder", "fake")
    es("index", "build", "a-zoo", animals_file, "--encoder", "fake", "--no-chunking")
    assert es("index", "list").stdout.splitlines() == ["a-zoo\t5 docs\tFlat\tfake", "b-zoo\t5 docs\tFlat\tfake"]
    listed = json.loads(es("index", "list", "--json").stdout)
    assert [(m["name"], m["count"]) for m in listed] == [("a-zoo", 5), ("b-zoo", 5)]
    assert listed[1] == manifest(es, "b-zoo")


# build errors: one line, exit 2 for bad input and 1 otherwise, and no index left behind


def test_unknown_encoder_lists_the_known_ones(es, animals_file):
    message = one_line_error(es("index", "build", "zoo", animals_file, "--encoder", "nosuch", code=1))
    assert "'nosuch'" in message
    assert all(name in message for name in ("fake", "fake-other", "minilm"))
    assert json.loads(es("index", "list", "--json").stdout) == []


def test_a_malformed_jsonl_line_rejects_the_file_unless_skip_invalid(es, tmp_path):
    source = tmp_path / "docs.jsonl"
    good = [json.dumps(r) for r in ANIMALS[:2]]
    source.write_text(f'{good[0]}\n{{"_id": "broken", "text": \n{good[1]}\n', encoding="utf-8")

    message = one_line_error(es("index", "build", "zoo", source, "--encoder", "fake", code=2))
    assert f"{source}:2: invalid JSON" in message and "--skip-invalid" in message
    assert json.loads(es("index", "list", "--json").stdout) == []

    result = es("index", "build", "zoo", source, "--encoder", "fake", "--skip-invalid")
    assert result.stderr.startswith(f"skipped {source}:2: invalid JSON") and result.stderr.count("\n") == 1
    assert "indexed 2 documents" in result.stdout and manifest(es)["count"] == 2


def test_a_document_with_empty_text_is_invalid(es, tmp_path):
    source = write_jsonl(tmp_path / "docs.jsonl", [ANIMALS[0], {"_id": "blank", "title": "", "text": "  "}])
    message = one_line_error(es("index", "build", "zoo", source, "--encoder", "fake", code=2))
    assert f"{source}:2: document 'blank' has no text" in message


def test_a_source_that_does_not_exist(es, tmp_path):
    missing = tmp_path / "nowhere.jsonl"
    assert one_line_error(es("index", "build", "zoo", missing, "--encoder", "fake", code=2)) == (
        f"Error: source not found: {missing}"
    )


def test_a_bad_faiss_spec(es, animals_file):
    message = one_line_error(
        es("index", "build", "zoo", animals_file, "--encoder", "fake", "--spec", "Bogus12", code=2)
    )
    assert "invalid index spec 'Bogus12'" in message
    assert json.loads(es("index", "list", "--json").stdout) == []


@pytest.mark.parametrize("args", [("--chunk-overlap", "12"), ("--chunk-overlap", "-1")])
def test_a_chunk_overlap_that_does_not_fit_the_encoder_window(es, animals_file, args):
    message = one_line_error(es("index", "build", "zoo", animals_file, "--encoder", "fake", *args, code=2))
    assert "overlap" in message and args[1] in message


@pytest.mark.parametrize("budget", ["lots", "inf", "-1GB", "0", "GB"])
def test_a_memory_budget_that_is_not_a_size(es, animals_file, budget):
    result = es("index", "build", "zoo", animals_file, "--encoder", "fake", "--memory-budget", budget, code=2)
    assert f"expected a size like 2GB or 512MiB, got {budget!r}" in error_line(result)


# index add / delete


def test_add_upserts_changed_documents_and_skips_unchanged_ones(zoo, es, tmp_path):
    cat, dog = ANIMALS[0], ANIMALS[1]
    changed = {**cat, "title": "", "text": "The cat now sleeps on the warm keyboard all afternoon."}
    owl = {"_id": "owl", "text": "The owl hoots at night.", "kind": "wild"}
    updates = write_jsonl(tmp_path / "updates.jsonl", [changed, dog, owl])

    result = es("index", "add", "zoo", updates)
    assert result.stdout.splitlines()[0] == "added 1, updated 1, unchanged 1"
    assert "encoded 2 documents" in result.stdout and "holds 6 documents" in result.stdout
    assert manifest(es)["count"] == 6

    top = hits(es, "zoo", changed["text"], "-k", "1", "--mode", "dense")[0]
    assert (top["id"], top["score"], top["snippet"]) == ("cat", pytest.approx(1.0, abs=1e-5), changed["text"])
    cats = [h for h in hits(es, "zoo", "purrs and hunts mice", "-k", "10") if h["id"] == "cat"]
    assert len(cats) == 1 and "purrs" not in cats[0]["snippet"]  # the old text is gone, not a second copy

    again = es("index", "add", "zoo", updates)
    assert again.stdout.splitlines()[0] == "added 0, updated 0, unchanged 3"
    assert manifest(es)["count"] == 6


@pytest.mark.parametrize("spec", ["Flat", "HNSW8,Flat"])  # HNSW cannot remove ids: the writer rebuilds it
def test_delete_removes_documents_from_search(es, animals_file, spec):
    es("index", "build", "zoo", animals_file, "--encoder", "fake", "--spec", spec)
    result = es("index", "delete", "zoo", "cat", "ghost")
    assert result.stdout == "deleted 1; 4 documents remain\n"
    assert result.stderr == "not in the index: ghost\n"
    found = [h["id"] for h in hits(es, "zoo", "cat purrs and hunts mice", "-k", "10")]
    assert sorted(found) == sorted(r["_id"] for r in ANIMALS if r["_id"] != "cat")
    assert manifest(es)["count"] == 4


# search


def test_search_text_output_matches_json(zoo, es):
    found = hits(es, "zoo", "cat mice", "-k", "3")
    lines = es("search", "zoo", "cat mice", "-k", "3").stdout.splitlines()
    assert lines[0::3] == [f"{rank:>3}. {h['score']:.4f}  {h['id']}" for rank, h in enumerate(found, 1)]
    assert lines[1::3] == [f"     {' '.join(h['snippet'].split())}" for h in found]
    assert lines[2::3] == [f"     {json.dumps(h['metadata'])}" for h in found]
    assert [h["score"] for h in found] == sorted((h["score"] for h in found), reverse=True)


def test_search_returns_k_distinct_documents(zoo, es):
    assert len(hits(es, "zoo", "cat", "-k", "3")) == 3
    everything = [h["id"] for h in hits(es, "zoo", "word1 word2 mice", "-k", "10")]
    assert sorted(everything) == sorted(r["_id"] for r in ANIMALS)  # "long" has several chunks, listed once


def test_where_keeps_only_matching_documents_and_still_returns_k(zoo, es):
    assert not {h["id"] for h in hits(es, "zoo", WILD_QUERY, "-k", "3")} & PETS  # the filter has work to do
    pets = hits(es, "zoo", WILD_QUERY, "-k", "2", "--where", "kind=pet")
    assert {h["id"] for h in pets} == PETS and all(h["metadata"]["kind"] == "pet" for h in pets)
    assert len(hits(es, "zoo", WILD_QUERY, "-k", "5", "--where", "kind=pet")) == len(PETS)
    assert hits(es, "zoo", WILD_QUERY, "--where", "kind=plant") == []
    assert es("search", "zoo", WILD_QUERY, "--where", "kind=plant").stdout == "no results\n"


def test_where_matches_numbers_and_combines_clauses(es, tmp_path):
    records = [
        {"_id": f"p{year}{lang}", "text": "a paper", "year": year, "lang": lang}
        for year in (2020, 2021)
        for lang in ("en", "fr")
    ]
    es("index", "build", "papers", write_jsonl(tmp_path / "papers.jsonl", records), "--encoder", "fake")
    assert {h["id"] for h in hits(es, "papers", "paper", "--where", "year=2020")} == {"p2020en", "p2020fr"}
    assert [h["id"] for h in hits(es, "papers", "paper", "--where", "year=2021", "--where", "lang=fr")] == ["p2021fr"]


def test_long_snippets_are_shortened_in_text_output(es, tmp_path):
    text = " ".join(f"word{i}" for i in range(100))
    es(
        "index",
        "build",
        "long",
        write_jsonl(tmp_path / "long.jsonl", [{"_id": "x", "text": text}]),
        "--encoder",
        "fake",
        "--no-chunking",
    )
    snippet = es("search", "long", "word1").stdout.splitlines()[1]
    assert snippet.endswith("…") and len(snippet.strip()) == 160
    assert hits(es, "long", "word1")[0]["snippet"] == text


def test_queries_file_prints_one_json_line_per_query(zoo, es, tmp_path):
    queries = write_jsonl(
        tmp_path / "queries.jsonl",
        [
            {"_id": "q-cat", "text": "cat mice"},
            {"_id": "q-bird", "text": "eagle bird"},
            {"_id": "q-fish", "text": "shark ocean teeth"},
        ],
    )
    lines = es("search", "zoo", "--queries", queries, "-k", "2").stdout.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["query_id"] for r in rows] == ["q-cat", "q-bird", "q-fish"]
    for row, text in zip(rows, ["cat mice", "eagle bird", "shark ocean teeth"], strict=True):
        assert set(row) == {"query_id", "results"} and len(row["results"]) == 2
        assert all(set(r) == {"id", "score"} for r in row["results"])
        single = hits(es, "zoo", text, "-k", "2")  # batched must equal one query at a time
        assert row["results"] == [{"id": h["id"], "score": pytest.approx(h["score"], abs=1e-5)} for h in single]

    filtered = es("search", "zoo", "--queries", queries, "-k", "2", "--where", "kind=pet").stdout.splitlines()
    assert len(filtered) == 3 and all({r["id"] for r in json.loads(line)["results"]} == PETS for line in filtered)


def test_a_malformed_queries_file(zoo, es, tmp_path):
    queries = tmp_path / "queries.jsonl"
    queries.write_text('{"_id": "q1", "text": "cat"}\n{"_id": "q2"}\n', encoding="utf-8")
    assert f"{queries}:2:" in one_line_error(es("search", "zoo", "--queries", queries, code=2))


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("zoo",), "give one of QUERY, --image FILE or --queries FILE"),
        (("zoo", "cat", "--queries", "q.jsonl"), "give one of QUERY, --image FILE or --queries FILE"),
        (("zoo", "cat", "--where", "kind"), "expected key=value, got 'kind'"),
        (("nope", "cat", "--where", "=pet"), "expected key=value, got '=pet'"),  # before the index is opened
        (("zoo", "cat", "-k", "0"), "-k"),
    ],
)
def test_search_usage_errors(zoo, es, args, expected):
    assert expected in error_line(es("search", *args, code=2))


def test_an_empty_query(zoo, es):
    assert one_line_error(es("search", "zoo", "   ", code=2)) == "Error: a query text is empty"


def test_query_encoder_must_match_the_index(zoo, es):
    assert hits(es, "zoo", "cat", "--encoder", "fake", "-k", "2") == hits(es, "zoo", "cat", "-k", "2")
    message = one_line_error(es("search", "zoo", "cat", "--encoder", "fake-other", code=1))
    assert "'fake-other'" in message and "does not match index 'zoo'" in message and "'fake'" in message
    message = one_line_error(es("search", "zoo", "cat", "--encoder", "nosuch", code=1))
    assert "unknown encoder 'nosuch'" in message and "fake-other" in message


# eval


@pytest.fixture
def judged(es, tmp_path: Path, animals_file: Path) -> Path:
    """Index ``whole`` (one vector per document) and queries that repeat a document's text exactly, so the fake
    encoder ranks that document first with cosine 1."""
    es("index", "build", "whole", animals_file, "--encoder", "fake", "--no-chunking")
    text = {r["_id"]: r["text"] for r in ANIMALS}
    return write_jsonl(
        tmp_path / "queries.jsonl",
        [
            {"_id": "q-eagle", "text": text["eagle"]},
            {"_id": "q-shark", "text": text["shark"]},
        ],
    )


def write_qrels(path: Path, rows: list[tuple[str, str, int]]) -> Path:
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in rows))
    return path


def test_eval_scores_an_obvious_answer_perfectly(judged, es, tmp_path):
    qrels = write_qrels(tmp_path / "qrels.tsv", [("q-eagle", "eagle", 1), ("q-unknown", "cat", 1)])
    report = json.loads(es("eval", "whole", "--queries", judged, "--qrels", qrels, "--json").stdout)
    assert report == {
        "ndcg@10": pytest.approx(1.0),
        "recall@10": pytest.approx(1.0),
        "recall@100": pytest.approx(1.0),
        "mrr@10": pytest.approx(1.0),
        "queries": 1,
        "missing_queries": 1,
    }

    lines = es("eval", "whole", "--queries", judged, "--qrels", qrels).stdout.splitlines()
    assert lines == [
        "ndcg@10    1.0000",
        "recall@10  1.0000",
        "recall@100 1.0000",
        "mrr@10     1.0000",
        "queries    1 (1 without text)",
    ]


def test_eval_scores_a_lower_ranked_answer_lower(judged, es, tmp_path):
    # q-shark repeats the shark's text but the judges want the eagle, which ranks below the shark
    qrels = write_qrels(tmp_path / "qrels.tsv", [("q-eagle", "eagle", 1), ("q-shark", "eagle", 1)])
    report = json.loads(es("eval", "whole", "--queries", judged, "--qrels", qrels, "--json").stdout)
    ranked = [h["id"] for h in hits(es, "whole", ANIMALS[3]["text"], "-k", "10")]
    rank = ranked.index("eagle") + 1
    assert ranked[0] == "shark" and rank > 1
    assert report["mrr@10"] == pytest.approx((1 + 1 / rank) / 2)
    assert report["ndcg@10"] == pytest.approx((1 + 1 / math.log2(rank + 1)) / 2)
    assert report["recall@10"] == report["recall@100"] == pytest.approx(1.0)
    assert (report["queries"], report["missing_queries"]) == (2, 0)


def test_eval_input_errors(judged, es, tmp_path):
    bad = tmp_path / "bad.tsv"
    bad.write_text("q-eagle\teagle\t1\n")
    assert f"{bad}:1: expected the header" in one_line_error(
        es("eval", "whole", "--queries", judged, "--qrels", bad, code=2)
    )
    none_known = write_qrels(tmp_path / "other.tsv", [("q-other", "cat", 1)])
    assert "none of the 1 queries" in one_line_error(
        es("eval", "whole", "--queries", judged, "--qrels", none_known, code=2)
    )
    assert "-k" in error_line(es("eval", "whole", "--queries", judged, "--qrels", none_known, "-k", "10", code=2))


# errors common to every command


@pytest.mark.parametrize(
    "args",
    [
        ("search", "nope", "cat"),
        ("index", "info", "nope"),
        ("index", "add", "nope", "{animals}"),
        ("index", "delete", "nope", "cat"),
        ("eval", "nope", "--queries", "{animals}", "--qrels", "{animals}"),
    ],
)
def test_an_unknown_index_is_named(zoo, es, animals_file, args):
    message = one_line_error(es(*(a.format(animals=animals_file) for a in args), code=1))
    assert "no index named 'nope'" in message and "known: zoo" in message


def test_debug_lets_the_exception_through(zoo, home):
    runner = CliRunner()
    with pytest.raises(UnknownIndexError, match="'nope'"):
        runner.invoke(cli, ["--debug", "search", "nope", "cat", "--home", str(home)], catch_exceptions=False)


def test_version():
    result = CliRunner().invoke(cli, ["--version"], prog_name="embedsearch")
    assert (result.exit_code, result.stdout) == (0, f"embedsearch, version {__version__}\n")


# help output against saved copies


HELP_PATHS = [
    (),
    ("index",),
    *[("index", c) for c in ("build", "add", "delete", "info", "list")],
    ("search",),
    ("eval",),
    *[("eval", c) for c in ("index", "pairs")],
    ("demo",),
]


@pytest.mark.parametrize("path", HELP_PATHS, ids=lambda p: " ".join(p) or "embedsearch")
def test_help_matches_the_saved_copy(path):
    assert_help_matches(path, GOLDEN)


def test_a_plugin_that_cannot_be_imported_is_a_one_line_error(tmp_path):
    import subprocess
    import sys

    (tmp_path / "a.txt").write_text("alpha")
    env = {**os.environ, "EMBEDSEARCH_PLUGINS": "no_such_plugin_module"}
    code = "from embedsearch.cli import main; main()"
    result = subprocess.run(
        [sys.executable, "-c", code, "index", "build", "x", str(tmp_path), "--home", str(tmp_path / "h")],
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip() == (
        "Error: cannot import plugin 'no_such_plugin_module' named in $EMBEDSEARCH_PLUGINS: "
        "No module named 'no_such_plugin_module'"
    )


# folders of images


def test_an_image_folder_is_indexed_as_images_and_found_by_text(es, image_folder):
    rejected = es("index", "build", "pics", image_folder, "--encoder", "fake-clip", code=2)
    assert "broken.gif" in rejected.stderr  # by default a corrupt image rejects the input, like any bad record

    built = es("index", "build", "pics", image_folder, "--encoder", "fake-clip", "--skip-invalid")
    assert f"skipped {image_folder / 'broken.gif'}: unreadable image (UnidentifiedImageError" in built.stderr
    assert "indexed 4 images (4 chunks)" in built.stdout
    assert built.stdout.rstrip().endswith("; skipped 1 unreadable image(s)")
    info = manifest(es, "pics")
    assert (info["content"], info["count"], info["chunks"]) == ("image", 4, 4)  # notes.txt is not indexed

    assert [h["id"] for h in hits(es, "pics", "red")][:1] == ["red.png"]
    assert [h["id"] for h in hits(es, "pics", "yellow")][:1] == ["alpha/yellow.png"]  # composited on white
    top = hits(es, "pics", "blue")[0]
    assert (top["id"], top["snippet"], top["metadata"]["path"]) == ("alpha/blue.webp",) * 3


def test_index_add_of_an_image_folder_upserts_by_file_bytes(es, image_folder):
    from PIL import Image

    (image_folder / "broken.gif").unlink()
    es("index", "build", "pics", image_folder, "--encoder", "fake-clip")
    assert "added 0, updated 0, unchanged 4" in es("index", "add", "pics", image_folder).stdout
    Image.new("RGB", (16, 16), (30, 180, 30)).save(image_folder / "red.png")  # now green
    assert "added 0, updated 1, unchanged 3" in es("index", "add", "pics", image_folder).stdout
    assert {h["id"] for h in hits(es, "pics", "green", "-k", "2")} == {"red.png", "green.jpg"}
    refused = es("index", "add", "pics", image_folder / "notes.txt", code=2)
    assert "index 'pics' holds images; cannot add text documents to it" in refused.stderr


def test_images_and_a_text_only_encoder(es, image_folder):
    built = es("index", "build", "notes", image_folder, "--encoder", "fake")
    assert "indexed 1 documents" in built.stdout and manifest(es, "notes")["content"] == "text"
    (image_folder / "notes.txt").unlink()
    refused = es("index", "build", "none", image_folder, "--encoder", "fake", code=2)
    assert refused.stderr.count("\n") == 1 and "the encoder embeds only text" in refused.stderr
