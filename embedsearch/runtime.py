"""Thread policy, set deliberately per path.

On a small shared machine, thread pools fight: measured here (2 cores), faiss single-query search with 2 OpenMP
threads ran 6.6x slower than with 1. So a *query* path (one query at a time, e.g. under a server) uses one
thread for torch and faiss, and a *batch* path (building an index, encoding a corpus, many queries) uses
``EMBEDSEARCH_THREADS`` or, by default, every core this process may run on. benchmarks/bench_threads.py
measures both.
"""

from __future__ import annotations

import os
from functools import cache


def available_cores() -> int:
    """Cores this process may run on (respects CPU affinity and cgroup-pinned sets)."""
    return len(os.sched_getaffinity(0))


def batch_threads() -> int:
    """Threads for batch work: ``EMBEDSEARCH_THREADS`` if set, else every available core."""
    value = os.environ.get("EMBEDSEARCH_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else available_cores()


def use_threads(count: int) -> None:
    """Set torch's intra-op and faiss's OpenMP thread counts for this process (importing them if needed)."""
    import faiss
    import torch

    torch.set_num_threads(count)
    faiss.omp_set_num_threads(count)


def use_batch_threads() -> None:
    use_threads(batch_threads())


def use_query_threads() -> None:
    use_threads(1)


@cache
def bf16_supported() -> bool:
    """True where the CPU has native bfloat16 dot products (avx512_bf16 or amx_bf16)."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
            flags = handle.read()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
