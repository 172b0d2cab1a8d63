"""``embedsearch demo`` as a user runs it: a real process, the whole standard library's docstrings, the four
searches printed with their hits; and a second run that upserts without encoding anything again.

The fake encoder (a plugin, as a user's own encoder would be) keeps it to a few seconds; a second plugin,
written by the test, logs how many texts each of its batches embeds, so that "nothing re-encoded" is checked on
the encoder itself, not only on what the command says."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from embedsearch import load_index
from embedsearch.cli.demo_command import DEMO_INDEX, DEMO_QUERIES
from embedsearch.data.stdlib_docs import stdlib_documents
from embedsearch.index import index_info
from tests.encoders.tolerances import HIT_ROUNDING, cosine_error
from tests.fake_encoder import DIM

REPO = Path(__file__).resolve().parents[2]
K = 3
SUMMARY = re.compile(
    rf"index '{DEMO_INDEX}': (?P<count>\d+) docstrings, (?P<chunks>\d+) chunks encoded in [\d.]+s "
    r"\(spec (?P<spec>\S+), home (?P<home>.+)\)"
)
HIT = re.compile(r"\s*(?P<rank>\d+)\. (?P<score>-?\d\.\d{3})  (?P<id>\S+)\s+(?P<line>.*)")
# the demo's cosines and this test's are computed apart, each within cosine_error(DIM) + HIT_ROUNDING of the exact
# value on any CPU; the demo prints them to 3 decimals (half a unit: 5e-4)
TIE = 2 * (cosine_error(DIM) + HIT_ROUNDING)
PRINTED_SCORE_ERROR = 5e-4 + TIE
COUNTING_PLUGIN = """
import os
import tests.fake_encoder as fake

embed = fake.FakeEncoder._embed_texts


def counted(self, texts):
    with open(os.environ["EMBEDDED_TEXTS_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{len(texts)}\\n")
    return embed(self, texts)


fake.FakeEncoder._embed_texts = counted
"""


def run_demo(home: Path, plugins: Path, log: Path) -> subprocess.CompletedProcess:
    """``embedsearch demo --encoder fake -k 3 --home HOME --quiet`` in a new process; ``log`` gets one line per
    batch the encoder embeds, the number of texts in it."""
    env = {
        **os.environ,
        "EMBEDSEARCH_PLUGINS": "tests.fake_encoder,counting_plugin",
        "EMBEDDED_TEXTS_LOG": str(log),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(plugins)]),
    }
    env.pop("EMBEDSEARCH_HOME", None)
    command = [sys.executable, "-c", "from embedsearch.cli import main; main()", "demo", "--encoder", "fake"]
    return subprocess.run(
        [*command, "-k", str(K), "--home", str(home), "--quiet"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def parse(stdout: str) -> tuple[dict[str, str], dict[str, list[dict[str, str]]]]:
    """The summary line's fields, and the hits printed under each ``$ embedsearch search`` line, by query."""
    lines = stdout.splitlines()
    summary = SUMMARY.fullmatch(lines[0])
    assert summary, stdout
    hits: dict[str, list[dict[str, str]]] = {}
    query = None
    for line in lines[1:]:
        if line.startswith("$ embedsearch search "):
            query = re.fullmatch(rf"\$ embedsearch search {DEMO_INDEX} '(.+)' -k {K}", line)[1]
            hits[query] = []
        elif line:
            found = HIT.fullmatch(line)
            assert found and query is not None, line
            hits[query].append(found.groupdict())
    return summary.groupdict(), hits


def embedded(log: Path) -> list[int]:
    return [int(n) for n in log.read_text(encoding="utf-8").split()] if log.exists() else []


@pytest.fixture(scope="module")
def documents() -> set[str]:
    """The ids of the docstrings the demo indexes (this interpreter's standard library)."""
    return {d.id for d in stdlib_documents()}


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory):
    """Two runs of the demo on the same home: the first builds the index, the second upserts into it."""
    work = tmp_path_factory.mktemp("demo")
    (work / "plugins").mkdir()
    (work / "plugins" / "counting_plugin.py").write_text(COUNTING_PLUGIN, encoding="utf-8")
    home = work / "indexes"
    first = run_demo(home, work / "plugins", work / "first.log")
    state = _committed_state(home) if first.returncode == 0 else None
    second = run_demo(home, work / "plugins", work / "second.log")
    return {
        "home": home,
        "first": first,
        "second": second,
        "state_after_first": state,
        "embedded": (embedded(work / "first.log"), embedded(work / "second.log")),
    }


def _committed_state(home: Path) -> tuple[bytes, dict]:
    """The manifest file's bytes and what ``index_info`` reports (its size on disk aside)."""
    info = {key: value for key, value in index_info(DEMO_INDEX, home).items() if key != "disk_bytes"}
    return (home / DEMO_INDEX / "manifest.json").read_bytes(), info


def test_the_first_run_builds_the_index_and_prints_four_searches_with_hits(demo_runs, documents):
    first = demo_runs["first"]
    assert first.returncode == 0, first.stderr
    assert first.stderr == ""
    summary, hits = parse(first.stdout)
    info = index_info(DEMO_INDEX, demo_runs["home"])
    assert int(summary["count"]) == len(documents) == info["count"] > 1000
    assert int(summary["chunks"]) == info["chunks"] >= len(documents)
    assert (summary["spec"], summary["home"]) == ("Flat", str(demo_runs["home"]))
    assert list(hits) == list(DEMO_QUERIES)
    for query, printed in hits.items():
        assert [int(h["rank"]) for h in printed] == list(range(1, K + 1)), query
        assert {h["id"] for h in printed} <= documents and len({h["id"] for h in printed}) == K
        scores = [float(h["score"]) for h in printed]
        assert scores == sorted(scores, reverse=True) and all(-1 <= s <= 1 for s in scores)


def test_the_printed_hits_are_what_a_search_of_the_index_finds(demo_runs):
    _, hits = parse(demo_runs["first"].stdout)
    searcher = load_index(DEMO_INDEX, demo_runs["home"])
    for query, printed in hits.items():
        found = searcher.search(query, K)
        # a hit may trade places with one whose score ties it within rounding (the corpus is this Python's own)
        nearby = {h.id: h for h in searcher.search(query, 4 * K)}
        for line, hit in zip(printed, found, strict=True):
            assert abs(float(line["score"]) - hit.score) <= PRINTED_SCORE_ERROR, (query, line, hit)
            shown = nearby[line["id"]] if line["id"] != hit.id else hit
            assert shown.id == hit.id or abs(shown.score - hit.score) <= TIE, (query, line, hit)
            assert line["line"].strip() == shown.snippet.splitlines()[0][:100].strip()


def test_the_first_run_encodes_every_chunk_and_the_queries(demo_runs):
    chunks = int(parse(demo_runs["first"].stdout)[0]["chunks"])
    assert sum(demo_runs["embedded"][0]) == chunks + len(DEMO_QUERIES)


def test_a_second_run_upserts_without_encoding_documents_again(demo_runs, documents):
    second = demo_runs["second"]
    assert second.returncode == 0, second.stderr
    assert second.stderr == ""
    summary, hits = parse(second.stdout)
    assert summary["chunks"] == "0" and int(summary["count"]) == len(documents)
    # only the four queries reach the encoder, one batch each
    assert demo_runs["embedded"][1] == [1] * len(DEMO_QUERIES)
    # nothing changed, so nothing was committed: the same manifest, generation and update time
    assert _committed_state(demo_runs["home"]) == demo_runs["state_after_first"]
    assert hits == parse(demo_runs["first"].stdout)[1]
