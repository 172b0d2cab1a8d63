"""The process side of tests/train/image/test_distributed.py: one rank of a 2-process gloo group builds CLIP
(with and without mixup and all captions as negatives), SigLIP and SimCLR runs on the flag toy (a one-layer ViT: no
BatchNorm, no dropout) and saves the loss and gradients of the first step, computed on its half of the global batch,
in float64 (see tests/train/float64.py)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from embedsearch.train.distributed import Cluster, init_from_env, shutdown
from embedsearch.train.image.clip.config import ClipTrainConfig
from embedsearch.train.image.clip.trainer import ClipRun
from embedsearch.train.image.simclr.config import SimclrTrainConfig
from embedsearch.train.image.simclr.trainer import SimclrRun
from tests.train.float64 import image_run_in_float64
from tests.train.image.toys import register_tiny_model

RUNS = ("clip", "siglip", "simclr", "clip-mixup", "clip-all-captions")
# the CLIP runs: open_clip's ClipLoss (no mixup), SoftClipLoss with mixup over the batch's captions (a text
# tower that trains), and SoftClipLoss with mixup and every training caption (a frozen Hugging Face tower)
CLIP_SETTINGS = {
    "clip": {"text_tower": "open_clip", "mixup": 0.0},
    "siglip": {"text_tower": "open_clip", "loss": "siglip"},
    "clip-mixup": {"text_tower": "open_clip", "mixup": 0.4},
    "clip-all-captions": {"text_tower": "text-tower", "mixup": 0.4, "negatives": "all", "context_length": 32},
}


def first_step(cluster: Cluster, folder: Path, kind: str) -> tuple[float, dict[str, torch.Tensor]]:
    """The loss (mean over processes) and the process-averaged gradients of step 1 of run ``kind``, in float64."""
    settings = {"model": register_tiny_model(), "batch_size": 8, "val_fraction": 0.25, "quiet": True}
    out = folder / f"{kind}-{cluster.world}-{cluster.rank}"
    if kind == "simclr":
        run = SimclrRun(SimclrTrainConfig(images=folder / "images", out=out, **settings), cluster)
    else:
        clip = dict(CLIP_SETTINGS[kind])
        if clip["text_tower"] != "open_clip":
            clip["text_tower"] = str(folder / clip["text_tower"])
        config = ClipTrainConfig(pairs=folder / "pairs.jsonl", out=out, **clip, **settings)
        run = ClipRun(config, cluster)
    image_run_in_float64(run)
    loss, _ = run.backward(0)
    named = run.trainable.named_parameters()
    return loss, {name: p.grad.clone() for name, p in named if p.grad is not None}


def worker(rank: int, world: int, port: int, folder: str) -> None:
    """Entry point for ``torch.multiprocessing.spawn``: join the group from the environment, step, save."""
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    os.environ["EMBEDSEARCH_THREADS"] = "1"
    torch.set_num_threads(1)
    cluster = init_from_env()
    try:
        results = {kind: first_step(cluster, Path(folder), kind) for kind in RUNS}
    finally:
        shutdown(cluster)
    torch.save(results, Path(folder) / f"rank{rank}.pt")
