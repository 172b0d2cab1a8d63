"""``embedsearch train text`` as a user meets it (CliRunner, tiny model): the summary line, the model it
writes working with ``index build --encoder DIR``, and one-line errors with exit 2 (bad input) or 1. Help
output is compared to tests/train/golden/ (``EMBEDSEARCH_REGEN_GOLDEN=1`` rewrites it)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from embedsearch.cli import cli
from tests.cli.golden_help import assert_help_matches
from tests.train.conftest import toy_pairs, write_jsonl

GOLDEN = Path(__file__).parent / "golden"
QUICK = ("--batch-size", "16", "--lr", "1e-3", "--max-steps", "2", "--dev-fraction", "0.2", "--quiet")


def run(*args, code: int = 0) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args], env={"EMBEDSEARCH_HOME": None})
    shown = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.output and result.exit_code == code, shown
    return result


def one_line_error(result: Result) -> str:
    assert result.stdout == "" and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.rstrip("\n")


def test_train_text_prints_a_summary_and_writes_a_model_index_build_can_use(tiny_model, pairs_file, tmp_path, home):
    out = tmp_path / "model"
    result = run("train", "text", "--data", pairs_file, "--out", out, "--base", tiny_model, *QUICK)
    assert re.fullmatch(
        rf"trained 2 steps in [\d.]+s \([\d.]+ samples/s\); best dev nDCG@10 [\d.]+ at step \d \(base [\d.]+\); "
        rf"model written to {re.escape(str(out))}\n",
        result.stdout,
    ), result.stdout
    assert result.stderr == ""
    assert json.loads((out / "training_card.json").read_text())["settings"]["max_steps"] == 2
    docs = write_jsonl(
        tmp_path / "docs.jsonl", [{"_id": f"d{i}", "text": p["positive"]} for i, p in enumerate(toy_pairs())]
    )
    build = run("index", "build", "colours", docs, "--encoder", out, "--home", home, "--quiet")
    assert "indexed 120 documents" in build.stdout
    hits = json.loads(run("search", "colours", "red green", "--home", home, "--json").stdout)
    assert len(hits) == 10


def test_train_text_on_a_corpus_without_labels(tiny_model, beir_folder, tmp_path):
    out = tmp_path / "model"
    result = run(
        "train", "text", "--data", beir_folder, "--self-supervised", "crop", "--out", out, "--base", tiny_model, *QUICK
    )
    assert result.stdout.startswith("trained 2 steps") and (out / "model.safetensors").is_file()


def _corpus_with_empty_documents(tmp_path: Path) -> Path:
    """The toy corpus with two empty documents among its lines, as Cranfield has (lines 31 and 62)."""
    records = [{"_id": f"d{i}", "text": p["positive"]} for i, p in enumerate(toy_pairs())]
    records.insert(30, {"_id": "empty-1", "text": ""})
    records.insert(61, {"_id": "empty-2", "title": "", "text": " "})
    return write_jsonl(tmp_path / "corpus.jsonl", records)


def test_skip_invalid_trains_on_the_rest_and_reports_each_skipped_record(tiny_model, tmp_path, caplog):
    corpus, out = _corpus_with_empty_documents(tmp_path), tmp_path / "model"
    args = ["train", "text", "--data", corpus, "--self-supervised", "crop", "--out", out, "--base", tiny_model, *QUICK]
    refused = run(*args, code=2)
    assert refused.stderr.startswith("Error: 2 invalid record(s): ") and "pass --skip-invalid" in refused.stderr
    assert not out.exists()
    result = run(*args, "--skip-invalid")
    assert re.search(r"; skipped 2 invalid record\(s\); model written to ", result.stdout), result.stdout
    skipped = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert [m.split(": ")[0] for m in skipped] == [f"skipped {corpus}:31", f"skipped {corpus}:62"]  # file:line: why
    card = json.loads((out / "training_card.json").read_text())
    assert card["settings"]["skip_invalid"] and len(card["data"]["skipped_records"]) == 2
    assert card["data"]["train_pairs"] + card["data"]["held_out_for_dev"] == 120


def _bad_pairs(tmp_path: Path) -> Path:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"anchor": "a", "positive": "p"}\n{"anchor": "a"}\n', encoding="utf-8")
    return path


ERRORS = {
    "malformed pairs": (
        lambda t, b: ["--data", _bad_pairs(t)],
        2,
        "Error: 1 invalid line(s) in {t}/bad.jsonl: {t}/bad.jsonl:2: 'anchor' and 'positive' must be non-empty strings",
    ),
    "empty pairs": (
        lambda t, b: ["--data", write_jsonl(t / "e.jsonl", [])],
        2,
        "Error: {t}/e.jsonl: no pairs in the file",
    ),
    "beir without qrels": (
        lambda t, b: ["--data", b, "--split", "dev"],
        2,
        "Error: {b} is not a BEIR folder with split 'dev': missing qrels/dev.tsv (qrels splits there: test, train)",
    ),
    "test split": (
        lambda t, b: ["--data", b, "--split", "test"],
        2,
        "Error: the 'test' qrels are for the final evaluation only; train and select models on another split",
    ),
    "too few": (
        lambda t, b: ["--data", write_jsonl(t / "few.jsonl", toy_pairs()[:10]), "--batch-size", "16"],
        2,
        "Error: too few training examples for one batch: 9 (after holding out 1 for dev) do not fill a batch of 16",
    ),
    "unknown base": (lambda t, b: ["--data", b, "--base", "nope"], 1, "Error: unknown encoder 'nope'; known: "),
    "nothing to resume": (
        lambda t, b: ["--data", b, "--resume"],
        2,
        "Error: nothing to resume: no checkpoint in {t}/out.tmp-train",
    ),
}


@pytest.mark.parametrize("case", ERRORS.values(), ids=ERRORS.keys())
def test_train_text_errors_are_one_line(tmp_path, beir_folder, case):
    make_args, code, message = case
    args = ["train", "text", "--out", tmp_path / "out", "--quiet", *make_args(tmp_path, beir_folder)]
    line = one_line_error(run(*args, code=code))
    assert line.startswith(message.format(t=tmp_path, b=beir_folder)), line
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.tmp-train").exists()


def test_an_existing_output_directory_is_refused(tmp_path, pairs_file):
    (tmp_path / "out").mkdir()
    line = one_line_error(run("train", "text", "--data", pairs_file, "--out", tmp_path / "out", code=1))
    assert line == f"Error: {tmp_path / 'out'} already exists; pass --overwrite to replace it"


def test_overwrite_refuses_a_folder_it_did_not_write_and_keeps_its_files(tmp_path, pairs_file):
    out, work = tmp_path / "out", tmp_path / "out.tmp-train"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    args = ("train", "text", "--data", pairs_file, "--out", out, "--overwrite")
    line = one_line_error(run(*args, code=1))
    assert line == (
        f"Error: {out} holds files and is not a model embedsearch trained (no training_card.json); --overwrite "
        "replaces only an empty folder or a trained model: move it or choose another --out"
    )
    (out / "thesis.tex").rename(tmp_path / "thesis.tex")
    work.mkdir()  # a folder named like a run's work folder, which no run wrote
    (work / "photos").mkdir()
    line = one_line_error(run(*args, code=1))
    assert line == f"Error: {work} holds photos, which no training run wrote; a run replaces this work folder: move it"
    assert (work / "photos").is_dir() and (tmp_path / "thesis.tex").read_text() == "years of work"


@pytest.mark.parametrize(
    "args", [("--batch-size", "1"), ("--temperature", "0"), ("--self-supervised", "mask"), ("--dev-fraction", "1")]
)
def test_option_values_are_checked_by_click(tmp_path, pairs_file, args):
    result = run("train", "text", "--data", pairs_file, "--out", tmp_path / "out", *args, code=2)
    assert "Error: Invalid value for" in result.stderr


@pytest.mark.parametrize("path", [("train",), ("train", "text"), ("mine",)], ids=" ".join)
def test_help_matches_the_saved_copy(path):
    assert_help_matches(path, GOLDEN)
