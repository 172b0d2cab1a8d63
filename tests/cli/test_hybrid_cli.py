"""``--mode``, ``--fusion`` and ``--alpha`` on search and eval; ``index add-lexical``; the lexical line of ``info``."""

from __future__ import annotations

import json

import pytest

from embedsearch import load_index
from tests.cli.helpers import error_line, hits, manifest, write_jsonl


@pytest.fixture
def zoo(es, animals_file):
    es("index", "build", "zoo", animals_file, "--encoder", "fake")


@pytest.mark.parametrize(
    "options",
    [
        {"mode": "dense"},
        {"mode": "lexical"},
        {"mode": "hybrid"},
        {"mode": "hybrid", "fusion": "convex", "alpha": 0.25},
    ],
)
def test_search_modes_print_what_the_python_api_returns(zoo, es, home, options):
    args = [part for key, value in options.items() for part in (f"--{key}", str(value))]
    got = hits(es, "zoo", "purring cats and mice", "-k", "4", *args)
    searcher = load_index("zoo", home)
    want = [h.to_dict() for h in searcher.search("purring cats and mice", k=4, **options)]
    searcher.close()
    assert got == want


def test_queries_and_eval_take_the_mode(zoo, es, tmp_path):
    queries = write_jsonl(tmp_path / "q.jsonl", [{"_id": "q1", "text": "mice"}, {"_id": "q2", "text": "fish teeth"}])
    lines = es("search", "zoo", "--queries", queries, "--mode", "lexical").stdout.splitlines()
    results = {json.loads(line)["query_id"]: json.loads(line)["results"] for line in lines}
    assert [r["id"] for r in results["q2"]] == ["shark"]  # lexical: only documents with the words
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tcat\t1\nq2\tshark\t1\n")
    for mode in ("dense", "lexical", "hybrid"):
        report = json.loads(es("eval", "zoo", "--queries", queries, "--qrels", qrels, "--mode", mode, "--json").stdout)
        assert report["queries"] == 2 and 0 < report["ndcg@10"] <= 1


def test_an_index_without_a_lexical_side_says_how_to_add_one(es, animals_file):
    es("index", "build", "old", animals_file, "--encoder", "fake", "--no-lexical")
    assert "add it with `embedsearch index add-lexical old`" in es("index", "info", "old").stdout
    result = es("search", "old", "cat", "--mode", "hybrid", code=1)
    assert "embedsearch index add-lexical old" in error_line(result)
    out = es("index", "add-lexical", "old", "--stopwords", "the,a", "--stemmer", "none").stdout
    assert out.startswith("index 'old': lexical side of") and "stemmer none" in out
    assert manifest(es, "old")["lexical"]["stopwords"] == ["the", "a"]
    assert [h["id"] for h in hits(es, "old", "hunts", "--mode", "lexical")] == ["cat"]
    assert hits(es, "old", "hunt", "--mode", "lexical") == []  # no stemming: "hunt" is not "hunts"
    assert "BM25 in sqlite-fts5, stemmer none, stopwords 2 words" in es("index", "info", "old").stdout


def test_bad_lexical_settings_are_usage_errors(es, animals_file):
    result = es("index", "build", "x", animals_file, "--encoder", "fake", "--stemmer", "klingon", code=2)
    assert "unknown stemmer 'klingon'" in error_line(result)


def test_an_image_index_refuses_lexical_modes_in_one_line(es, image_folder):
    es("index", "build", "pics", image_folder, "--encoder", "fake-clip", "--skip-invalid")
    result = es("search", "pics", "red", "--mode", "lexical", code=1)
    assert "holds images and has no lexical side" in error_line(result)
    assert "Traceback" not in result.output
