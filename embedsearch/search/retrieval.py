"""Retrieval modes: the dense side (faiss segments), the lexical side (BM25) and their fusion, at document level.

Each side ranks chunks and keeps each document once, by its best chunk. ``hybrid`` takes the
:data:`HYBRID_DEPTH` best documents of each side (or ``k``, if more) and fuses the two rankings with
:mod:`embedsearch.search.fusion`: a convex combination of normalised scores (``convex``, the default; ``alpha``
the weight of the dense side, 0.5 by default) or reciprocal rank fusion (``rrf``). ``where`` filters apply to
both sides.

The default mode is ``hybrid`` with ``convex`` fusion at ``alpha`` 0.5 where the index has a lexical side, else
``dense``: chosen on SciFact's 809 train queries with all-MiniLM-L6-v2, where it had nDCG@10 0.730 against 0.713 for
rrf, 0.724 / 0.718 for alpha 0.3 / 0.7, 0.693 lexical and 0.668 dense (benchmarks/bench_hybrid.py; the test
queries chose nothing; figures in benchmarks/README.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedsearch.errors import InvalidInputError, UnsupportedModeError
from embedsearch.index import IndexView, SearchKnobs
from embedsearch.search.fusion import convex_fusion, ranked, reciprocal_rank_fusion
from embedsearch.search.hits import best_chunk_per_document

MODES = ("dense", "lexical", "hybrid")
FUSIONS = ("convex", "rrf")
DEFAULT_FUSION = "convex"
DEFAULT_ALPHA = 0.5
HYBRID_DEPTH = 100  # documents taken from each side before fusing

Row = tuple[str, float, int, int]  # (doc_id, score, chunk start, chunk end)


@dataclass(frozen=True)
class Retrieval:
    """How a text query is answered: ``mode`` (dense, lexical, hybrid), and for hybrid the ``fusion`` and ``alpha``."""

    mode: str
    fusion: str = DEFAULT_FUSION
    alpha: float = DEFAULT_ALPHA

    @property
    def dense(self) -> bool:
        return self.mode in ("dense", "hybrid")

    @property
    def lexical(self) -> bool:
        return self.mode in ("lexical", "hybrid")

    def depth(self, k: int) -> int:
        return max(k, HYBRID_DEPTH) if self.mode == "hybrid" else k


def default_mode(identity: dict[str, Any]) -> str:
    """``hybrid`` for an index with a lexical side, else ``dense``."""
    return "hybrid" if identity.get("lexical") else "dense"


def retrieval_for(identity: dict[str, Any], mode=None, fusion=None, alpha=None) -> Retrieval:
    """The checked :class:`Retrieval` for an index (``None`` values take the defaults).

    Raises :class:`InvalidInputError` for an unknown mode or fusion or an alpha outside [0, 1], and
    :class:`UnsupportedModeError` for lexical or hybrid on an index without a lexical side.
    """
    mode = default_mode(identity) if mode is None else mode
    fusion = DEFAULT_FUSION if fusion is None else fusion
    if mode not in MODES:
        raise InvalidInputError(f"unknown mode {mode!r}; use one of {', '.join(MODES)}")
    if fusion not in FUSIONS:
        raise InvalidInputError(f"unknown fusion {fusion!r}; use one of {', '.join(FUSIONS)}")
    numeric = isinstance(alpha, int | float) and not isinstance(alpha, bool)
    if alpha is not None and not (numeric and math.isfinite(alpha) and 0.0 <= alpha <= 1.0):
        raise InvalidInputError(f"alpha must be a number from 0 to 1, got {alpha!r}")
    if mode != "dense" and not identity.get("lexical"):
        raise UnsupportedModeError(_no_lexical_side(identity, mode))
    return Retrieval(mode, fusion, DEFAULT_ALPHA if alpha is None else float(alpha))


def _no_lexical_side(identity: dict[str, Any], mode: str) -> str:
    name = identity["name"]
    if identity.get("content") == "image":
        return f"index {name!r} holds images and has no lexical side: {mode} search needs one; use mode dense"
    return (
        f"index {name!r} has no lexical side (it was built before there was one, or without it), so it cannot "
        f"answer {mode} searches; add it with `embedsearch index add-lexical {name}`, or use mode dense"
    )


def dense_rows(view: IndexView, vectors: np.ndarray, k: int, allowed: np.ndarray | None, knobs: SearchKnobs):
    """Per query vector, up to ``k`` :data:`Row` s: fetch chunks, widening until each query has ``k`` distinct
    documents or every candidate was seen."""
    candidates = len(allowed) if allowed is not None else view.state["chunks"]
    fetch = min(candidates, _chunks_for(view, k))
    rows: list[list[Row]] = [[] for _ in range(len(vectors))]
    pending = np.arange(len(vectors))
    while len(pending) and candidates:
        D, I = view.search(vectors[pending], max(fetch, 1), knobs, allowed)
        owners = view.chunk_owners(np.unique(I[I >= 0]).tolist())
        for row, hits in zip(pending, best_chunk_per_document(D, I, owners, k), strict=True):
            rows[row] = hits
        if fetch >= candidates:
            break
        pending = np.array([r for r in pending if len(rows[r]) < k], dtype=np.int64)
        fetch = min(candidates, fetch * 4)
    return rows


def lexical_rows(view: IndexView, terms: list[str], k: int, allowed: np.ndarray | None) -> list[Row]:
    """Up to ``k`` :data:`Row` s for the analysed query ``terms``, by BM25 (widening as :func:`dense_rows` does)."""
    fetch = _chunks_for(view, k)
    while True:
        scores, ids, complete = view.lexical_search(terms, fetch, allowed)
        owners = view.chunk_owners(ids.tolist())
        rows = best_chunk_per_document(scores[None, :], ids[None, :], owners, k)[0]
        if len(rows) >= k or complete:
            return rows
        fetch *= 4


def _chunks_for(view: IndexView, k: int) -> int:
    """How many chunks to fetch first for ``k`` documents (documents have several chunks)."""
    state = view.state
    per_doc = state["chunks"] / max(state["documents"], 1)
    return math.ceil(k * per_doc * 1.5) + 10


def fused(dense: list[Row], lexical: list[Row], retrieval: Retrieval, k: int) -> list[Row]:
    """The ``k`` best documents of two rankings fused as ``retrieval`` says; each keeps the chunk its lexical
    side found (the one the query's words are in), else its dense one."""
    if retrieval.fusion == "rrf":
        scores = reciprocal_rank_fusion([[r[0] for r in dense], [r[0] for r in lexical]])
    else:
        scores = convex_fusion([r[:2] for r in dense], [r[:2] for r in lexical], retrieval.alpha)
    spans = {r[0]: r[2:] for r in dense} | {r[0]: r[2:] for r in lexical}
    return [(doc_id, score, *spans[doc_id]) for doc_id, score in ranked(scores, k)]
