"""The process side of tests/train/text/test_distributed.py: one rank of a 2-process gloo group takes a training
step on its half of the global batch with a tiny bag-of-words model in float64 (see tests/train/float64.py),
and saves its loss and gradients.

Kept free of sentence-transformers so that a spawned process starts in a few seconds.
"""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from embedsearch.train.distributed import Cluster, init_from_env, shutdown
from embedsearch.train.text.batches import build_step_batch
from embedsearch.train.text.gradcache import contrastive_step
from embedsearch.train.text.loss import InfoNCELoss
from embedsearch.train.text.pairs import Pair, positives_by_anchor

BUCKETS = 97


class BagOfWords(nn.Module):
    """Mean of hashed word embeddings, then a linear map: a deterministic model with real gradients."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embedding = nn.EmbeddingBag(BUCKETS, 16, mode="mean")
        self.project = nn.Linear(16, 8)

    def forward(self, texts: list[str]) -> torch.Tensor:
        ids = [[zlib.crc32(w.encode()) % BUCKETS for w in t.split()] for t in texts]
        offsets = torch.tensor([0, *np.cumsum([len(i) for i in ids])[:-1].tolist()])
        return self.project(self.embedding(torch.tensor([x for i in ids for x in i]), offsets))


def global_batch() -> list[Pair]:
    """Four pairs with hard negatives (one pair has none, one negative repeats another pair's positive)."""
    return [
        Pair("cat dog", "red green", ("red blue", "black white")),
        Pair("cat bird", "red blue", ("gold navy",)),
        Pair("lion fox", "pink olive", ()),
        Pair("wolf deer", "violet navy", ("gray gold", "red green")),
    ]


def step(cluster: Cluster, cache_chunk: int | None) -> tuple[float, list[torch.Tensor], int]:
    """The loss, the (process-averaged) gradients and the number of texts embedded, of one step on
    ``cluster``'s share of the batch."""
    pairs = global_batch()
    batch = build_step_batch(
        pairs, mode=None, per_pair=2, related=positives_by_anchor(pairs), rng=np.random.default_rng(1), cluster=cluster
    )
    model = BagOfWords().double()
    params = list(model.parameters())
    loss = contrastive_step(model, batch, InfoNCELoss(0.1), params, cluster, cache_chunk)
    return loss, [p.grad.clone() for p in params], len(batch.texts)


def worker(rank: int, world: int, port: int, out: str) -> None:
    """Entry point for ``torch.multiprocessing.spawn``: join the group from the environment, step, save."""
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)}
    )
    torch.set_num_threads(1)
    cluster = init_from_env()
    try:
        results = {chunk: step(cluster, chunk) for chunk in (None, 3)}
    finally:
        shutdown(cluster)
    torch.save(results, Path(out) / f"rank{rank}.pt")
