"""Hard-negative mining from an index built with the deterministic fake encoder: ranks, known positives and
the margin are respected, the output is what the trainer reads, and the ``mine`` command reports errors in
one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from embedsearch.cli import cli
from embedsearch.errors import InvalidInputError, OutputExistsError
from embedsearch.index import build_index
from embedsearch.mining import mine_hard_negatives
from embedsearch.search import Searcher
from embedsearch.train.text.pairs import read_beir_pairs, read_pairs_file
from tests.encoders.tolerances import HIT_ROUNDING, cosine_error
from tests.fake_encoder import DIM

WORDS = [f"w{i}" for i in range(24)]
# the miner and these tests compute the same cosines apart (a batch, one query, or a numpy dot product), each
# within this of the exact value on any CPU; rankings and margins compared between them are exact only where the
# scores are further apart than twice this, which _far_apart checks
SCORE_ERROR = cosine_error(DIM) + HIT_ROUNDING


def _far_apart(scores) -> bool:
    """True if sorted ``scores`` have no two neighbours closer than two computations of one cosine can be."""
    return bool(np.all(np.abs(np.diff(np.asarray(scores, dtype=np.float64))) > 2 * SCORE_ERROR))


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture
def beir(tmp_path: Path) -> Path:
    """30 documents of 4 words; query i is 2 words of document i, its positive; query 0 also has document 1."""
    rng = np.random.default_rng(0)
    docs = [" ".join(rng.choice(WORDS, 4, replace=False)) for _ in range(30)]
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    _write(folder / "corpus.jsonl", [{"_id": f"d{i}", "text": t} for i, t in enumerate(docs)])
    _write(folder / "queries.jsonl", [{"_id": f"q{i}", "text": " ".join(docs[i].split()[:2])} for i in range(10)])
    rows = ["query-id\tcorpus-id\tscore", "q0\td1\t1"] + [f"q{i}\td{i}\t1" for i in range(10)]
    (folder / "qrels" / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return folder


@pytest.fixture
def index(beir: Path, home: Path) -> Searcher:
    from embedsearch.data import read_documents

    build_index("corpus", read_documents([beir / "corpus.jsonl"]).documents, "fake", home=home)
    return Searcher.open("corpus", home)


def test_negatives_are_the_ranked_candidates_minus_known_positives(index, beir, tmp_path):
    report = mine_hard_negatives(index, beir, tmp_path / "neg.jsonl", ranks=(1, 10), margin=-2.0, per_pair=4)
    lines = read_pairs_file(tmp_path / "neg.jsonl")
    pairs = read_beir_pairs(beir).pairs
    assert [(p.anchor, p.positive) for p in lines] == [(p.anchor, p.positive) for p in pairs]
    positives = {}
    for pair in pairs:
        positives.setdefault(pair.anchor, set()).add(pair.positive)
    for line in lines:
        hits = index.search(line.anchor, k=11, mode="dense")  # one past the range, so that its edge is checked too
        assert _far_apart([h.score for h in hits])
        ranked = [h.snippet for h in hits[:10]]
        expected = [t for t in ranked if t not in positives[line.anchor]][:4]
        assert list(line.negatives) == expected
    assert report.skipped_positives >= 11 and report.skipped_by_margin == 0
    assert report.negatives == sum(len(p.negatives) for p in lines) == 44


def test_the_range_is_one_based_and_inclusive(index, beir, tmp_path):
    mine_hard_negatives(index, beir, tmp_path / "neg.jsonl", ranks=(3, 5), margin=-2.0, per_pair=10)
    for line in read_pairs_file(tmp_path / "neg.jsonl"):
        hits = index.search(line.anchor, k=6, mode="dense")
        assert _far_apart([h.score for h in hits])  # ranks 2|3 and 5|6 are not near-ties
        ranked = [h.snippet for h in hits[:5]]
        assert set(line.negatives) <= set(ranked[2:5]) and line.negatives
        assert line.positive not in line.negatives


def test_candidates_scored_near_or_above_the_positive_are_skipped(index, beir, tmp_path):
    report = mine_hard_negatives(index, beir, tmp_path / "neg.jsonl", ranks=(1, 20), margin=0.05, per_pair=20)
    assert report.skipped_by_margin > 0 and report.negatives > 0  # both sides of the margin are exercised
    for line in read_pairs_file(tmp_path / "neg.jsonl"):
        scores = {h.snippet: h.score for h in index.search(line.anchor, k=30, mode="dense")}
        ceiling = scores[line.positive] - 0.05
        assert all(scores[n] < ceiling for n in line.negatives)
        assert _far_apart(sorted([ceiling, *scores.values()]))  # no candidate sits on the margin's edge
    everything = mine_hard_negatives(index, beir, tmp_path / "none.jsonl", ranks=(1, 20), margin=5.0)
    assert (everything.negatives, everything.without_negatives) == (0, 11)


def test_a_pairs_file_works_like_a_beir_folder(index, beir, tmp_path):
    mine_hard_negatives(index, beir, tmp_path / "from-beir.jsonl", ranks=(2, 8))
    pairs = [{"anchor": p.anchor, "positive": p.positive} for p in read_beir_pairs(beir).pairs]
    mine_hard_negatives(index, _write(tmp_path / "pairs.jsonl", pairs), tmp_path / "from-pairs.jsonl", ranks=(2, 8))
    assert (tmp_path / "from-pairs.jsonl").read_text() == (tmp_path / "from-beir.jsonl").read_text()


def test_bad_settings_and_an_existing_output(index, beir, tmp_path):
    with pytest.raises(InvalidInputError, match="1 <= FIRST <= LAST, got 5-2"):
        mine_hard_negatives(index, beir, tmp_path / "n.jsonl", ranks=(5, 2))
    (tmp_path / "n.jsonl").write_text("keep")
    with pytest.raises(OutputExistsError, match="already exists; pass --overwrite"):
        mine_hard_negatives(index, beir, tmp_path / "n.jsonl")
    assert (tmp_path / "n.jsonl").read_text() == "keep"


# the command


def run(*args, code: int = 0):
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"EMBEDSEARCH_HOME": None})
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    return result


def test_mine_command_writes_the_file_and_says_what_it_did(index, beir, home, tmp_path):
    out = tmp_path / "neg.jsonl"
    result = run(
        "mine", "corpus", "--data", beir, "--out", out, "--range", "1-5", "--per-pair", "2", "--home", home, "--quiet"
    )
    found = re.fullmatch(
        rf"wrote 11 pairs with (\d+) negatives to {re.escape(str(out))} \((\d+) pairs without any; skipped \d+ known "
        r"positives and \d+ candidates within the margin\)\n",
        result.stdout,
    )
    assert found and result.stderr == ""
    lines = read_pairs_file(out)
    assert int(found[1]) == sum(len(p.negatives) for p in lines) and int(found[2]) == sum(
        not p.negatives for p in lines
    )
    assert len(lines) == 11 and all(len(p.negatives) <= 2 for p in lines)


@pytest.mark.parametrize(
    "args, code, message",
    [
        (
            ("--range", "10"),
            2,
            "Error: Invalid value for '--range': expected FIRST-LAST with 1 <= FIRST <= LAST, got '10'",
        ),
        (("--range", "0-5"), 2, "Error: Invalid value for '--range'"),
        (("--per-pair", "0"), 2, "Error: Invalid value for '--per-pair'"),
    ],
)
def test_mine_usage_errors(index, beir, home, tmp_path, args, code, message):
    result = run("mine", "corpus", "--data", beir, "--out", tmp_path / "n.jsonl", "--home", home, *args, code=code)
    assert message in result.stderr and not (tmp_path / "n.jsonl").exists()


def test_mine_errors_are_one_line(index, beir, home, tmp_path):
    (tmp_path / "n.jsonl").write_text("keep")
    cases = [
        (
            ("corpus", "--data", beir),
            1,
            f"Error: {tmp_path / 'n.jsonl'} already exists; pass --overwrite to replace it",
        ),
        (("nope", "--data", beir, "--overwrite"), 1, "Error: no index named 'nope'"),
        (("corpus", "--data", tmp_path / "missing", "--overwrite"), 2, "Error: pairs file not found"),
    ]
    for args, code, message in cases:
        result = run("mine", *args, "--out", tmp_path / "n.jsonl", "--home", home, code=code)
        assert result.stderr.startswith(message) and result.stderr.count("\n") == 1, result.stderr
    assert (tmp_path / "n.jsonl").read_text() == "keep"
