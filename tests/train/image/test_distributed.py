"""Two processes (gloo, on this machine) compute the loss and gradients of one process on the same global batch
for CLIP (open_clip's ClipLoss gathers features with their gradients; so does SoftClipLoss, with mixup and
with every training caption as a negative), SigLIP (open_clip's SigLipLoss passes
text features between neighbours; the mean of the per-process losses is the one-process loss) and SimCLR
(NT-Xent gathers both views); and a whole torchrun of two processes trains the weights of one (``--run-slow``:
spawned processes take ~20 s to import and build here). Both in float64, where the only difference between one
process and two, the order of the reductions, stays far below the tolerance on any CPU (tests/train/float64.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from safetensors.torch import load_file

from embedsearch.train import ClipTrainConfig, train_clip
from embedsearch.train.distributed import Cluster
from tests.train.conftest import free_port, write_tiny_model
from tests.train.float64 import ADAM_ATOL, ADAM_RTOL, ATOL, RTOL, float64_training
from tests.train.image.ddp_worker import RUNS, first_step, worker
from tests.train.image.toys import register_tiny_model, write_colour_images, write_pairs

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp-images")
    write_pairs(folder / "pairs.jsonl", write_colour_images(folder))
    write_tiny_model(folder / "text-tower", dropout=0.0)
    return folder


@pytest.fixture(scope="module")
def two_processes(toy) -> list[dict]:
    mp.spawn(worker, args=(2, free_port(), str(toy)), nprocs=2, join=True)
    return [torch.load(toy / f"rank{r}.pt") for r in range(2)]


@pytest.mark.slow  # two spawned processes import torch and open_clip and build three runs: ~20 s here
@pytest.mark.parametrize("kind", RUNS)
def test_two_processes_equal_one_on_the_global_batch(toy, two_processes, kind):
    loss, grads = first_step(Cluster(), toy, kind)
    assert len(grads) > 4 and all(g.abs().sum() > 0 for g in grads.values())
    for rank in two_processes:
        rank_loss, rank_grads = rank[kind]
        assert rank_loss == pytest.approx(loss, rel=RTOL, abs=ATOL)
        assert rank_grads.keys() == grads.keys()
        for name, expected in grads.items():
            assert expected.dtype == torch.float64
            torch.testing.assert_close(rank_grads[name], expected, rtol=RTOL, atol=ATOL, msg=name)


@pytest.mark.slow
def test_a_torchrun_of_two_processes_trains_the_weights_of_one(toy, tmp_path):
    """A whole run (validation on the main process, a checkpoint, publishing) under torchrun: the same weights."""
    settings = {
        "pairs": str(toy / "pairs.jsonl"),
        "model": register_tiny_model(),
        "text_tower": "open_clip",
        "loss": "siglip",
        "batch_size": 8,
        "max_steps": 4,
        "eval_every": 2,
        "save_every": 2,
        "val_fraction": 0.25,
        "quiet": True,
    }
    with float64_training():
        train_clip(ClipTrainConfig(out=tmp_path / "one", **settings))
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
    done = subprocess.run(
        [*command, str(REPO / "tests/train/image/torchrun_train.py"), str(config)],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1", "EMBEDSEARCH_THREADS": "1", "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    one, two = (load_file(tmp_path / name / "open_clip_model.safetensors") for name in ("one", "two"))
    assert one.keys() == two.keys() and one["logit_scale"].dtype == torch.float64
    for key in one:
        torch.testing.assert_close(two[key], one[key], rtol=ADAM_RTOL, atol=ADAM_ATOL, msg=key)
    cards = [json.loads((tmp_path / n / "training_card.json").read_text()) for n in ("one", "two")]
    assert cards[1]["world_size"] == 2 and cards[1]["losses"] == pytest.approx(cards[0]["losses"], rel=RTOL)
    assert [e["step"] for e in cards[1]["evaluations"]] == [0, 2, 4]
