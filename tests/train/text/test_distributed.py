"""Two processes (gloo, on this machine) compute the loss and gradients of one process on the same global
batch: in-batch negatives are gathered across processes with their gradients. In float64, so that the only
difference, the order of the reductions (each process sums its half, then the halves are all-reduced), is far
below the tolerance on any CPU (see tests/train/float64.py)."""

from __future__ import annotations

import pytest
import torch
import torch.multiprocessing as mp

from embedsearch.train.distributed import Cluster
from tests.train.conftest import free_port
from tests.train.float64 import ATOL, RTOL
from tests.train.text.ddp_worker import step, worker


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("ddp")
    mp.spawn(worker, args=(2, free_port(), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt") for r in range(2)]


@pytest.mark.parametrize("cache_chunk", [None, 3], ids=["plain", "gradcache"])
def test_two_processes_equal_one_on_the_global_batch(two_processes, cache_chunk):
    loss, grads, texts = step(Cluster(), cache_chunk)
    assert [rank[cache_chunk][2] for rank in two_processes] == [7, 6]  # each embeds its half (13 texts in all)
    assert texts == 13
    for rank in two_processes:
        rank_loss, rank_grads, _ = rank[cache_chunk]
        assert rank_loss == pytest.approx(loss, rel=RTOL, abs=ATOL)
        for got, expected in zip(rank_grads, grads, strict=True):
            assert got.dtype == expected.dtype == torch.float64
            torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)
    assert all(g.abs().sum() > 0 for g in grads)
