"""Thread policy, set deliberately per path.

On a small shared machine, thread pools fight: a *query* path (one query at a time, e.g. under a server) uses one
thread for torch and faiss, and a *batch* path (building an index, encoding a corpus, many queries) uses
``EMBEDSEARCH_THREADS`` or, by default, every core this process may run on. A write or a compaction inside a
process that also answers queries (the HTTP server, a notebook) takes the batch setting only for its own
duration (:func:`batch_threads_while`), so that queries afterwards keep theirs. The cost of a query with two
faiss threads instead of one is measured by ``benchmarks/bench_threads.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
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


def thread_counts() -> tuple[int, int]:
    """``(torch threads, faiss OpenMP threads)`` now."""
    import faiss
    import torch

    return torch.get_num_threads(), faiss.omp_get_max_threads()


@contextmanager
def batch_threads_while() -> Iterator[None]:
    """Batch threads for the duration of a block, then the counts from before it (a write in a serving process)."""
    import faiss
    import torch

    torch_threads, faiss_threads = thread_counts()
    use_threads(batch_threads())
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        faiss.omp_set_num_threads(faiss_threads)


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
