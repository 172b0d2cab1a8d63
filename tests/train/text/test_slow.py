"""Slow end-to-end checks: a whole run under torchrun with two processes equals one process (in float64: see
tests/train/float64.py), and a short run with the real MiniLM on SciFact (``--run-slow``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from embedsearch.encoders import get_encoder
from embedsearch.train import TextTrainConfig, train_text
from tests.train.conftest import free_port
from tests.train.float64 import ADAM_ATOL, ADAM_RTOL, RTOL, float64_training

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.slow
def test_a_torchrun_of_two_processes_trains_the_weights_of_one(tiny_model_without_dropout, pairs_file, tmp_path):
    settings = {
        "data": str(pairs_file),
        "base": str(tiny_model_without_dropout),
        "batch_size": 16,
        "lr": 1e-3,
        "max_steps": 4,
        "eval_every": 2,
        "dev_fraction": 0.2,
        "hard_negatives": 0,
        "quiet": True,
    }
    with float64_training():
        train_text(TextTrainConfig(out=tmp_path / "one", **settings))
    config = tmp_path / "two.json"
    config.write_text(json.dumps({"float64": True, "settings": {**settings, "out": str(tmp_path / "two")}}))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc-per-node",
        "2",
        "--master-port",
        str(free_port()),
    ]
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "EMBEDSEARCH_THREADS": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [*command, str(REPO / "tests/train/text/torchrun_train.py"), str(config)],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (load_file(tmp_path / name / "model.safetensors") for name in ("one", "two"))
    assert one.keys() == two.keys() and {t.dtype for t in one.values()} == {torch.float64}
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=ADAM_RTOL, atol=ADAM_ATOL, msg=key)
    cards = [json.loads((tmp_path / n / "training_card.json").read_text()) for n in ("one", "two")]
    assert cards[1]["world_size"] == 2 and cards[1]["losses"] == pytest.approx(cards[0]["losses"], rel=RTOL)


@pytest.mark.slow
def test_minilm_trains_on_scifact_and_the_result_is_an_encoder(shared_data, minilm, tmp_path):
    """Two steps of supervised training from MiniLM on SciFact's train qrels, with a small dev corpus."""
    config = TextTrainConfig(
        data=shared_data / "scifact",
        out=tmp_path / "scifact-minilm",
        batch_size=8,
        max_steps=2,
        eval_every=2,
        dev_fraction=0.02,
        dev_corpus_size=100,
        max_length=128,
        cache_chunk=8,
        quiet=True,
    )
    result = train_text(config)
    assert [e["step"] for e in result.evaluations] == [0, 2]
    assert result.evaluations[0]["metrics"]["ndcg@10"] > 0.5  # MiniLM is already good at this (~0.65: a margin)
    encoder = get_encoder(str(config.out))
    assert encoder.dim == minilm.dim == 384
    assert result.card["data"]["kind"] == "beir" and result.card["base"]["reference"] == "minilm"


@pytest.mark.slow
def test_self_supervised_training_on_cranfield_skips_its_two_empty_documents(shared_data, tiny_model, tmp_path):
    """The case that needed ``--skip-invalid``: Cranfield's corpus has two empty documents."""
    from click.testing import CliRunner

    from embedsearch.cli import cli

    if not (shared_data / "cranfield" / "corpus.jsonl").is_file():
        pytest.skip(f"no Cranfield at {shared_data}")
    args = ["train", "text", "--data", shared_data / "cranfield", "--self-supervised", "crop", "--base", tiny_model]
    args += ["--out", tmp_path / "m", "--batch-size", "16", "--max-steps", "1", "--dev-fraction", "0", "--quiet"]
    result = CliRunner().invoke(cli, [*map(str, args), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert "; skipped 2 invalid record(s); model written to " in result.stdout
