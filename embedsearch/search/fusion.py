"""Fusing a dense and a lexical ranking of documents into one: pure functions, rankings in, scores out.

- :func:`reciprocal_rank_fusion` (Cormack, Clarke and Büttcher, SIGIR 2009): a document scores
  ``sum 1 / (k + rank)`` over the rankings it is in (ranks from 1), ``k = 60``; it needs no score calibration.
- :func:`convex_fusion` (Weaviate's relative-score fusion, Elasticsearch's ``linear`` retriever): each side's
  scores min-max normalised over its candidates, then ``alpha * dense + (1 - alpha) * lexical``; a document
  missing from one side scores 0 there.
"""

from __future__ import annotations

from collections.abc import Sequence

RRF_K = 60


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K) -> dict[str, float]:
    """``{doc_id: fused score}`` of the documents in any of ``rankings`` (each a list of ids, best first)."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking, 1):
            fused[doc_id] = fused.get(doc_id, 0.0) + 1.0 / (k + rank)
    return fused


def convex_fusion(dense: Sequence[tuple[str, float]], lexical: Sequence[tuple[str, float]], alpha: float):
    """``{doc_id: alpha * dense' + (1 - alpha) * lexical'}`` with each side's scores min-max normalised to [0, 1]
    over its own candidates (all equal scores normalise to 1)."""
    fused: dict[str, float] = {}
    for weight, side in ((alpha, dense), (1.0 - alpha, lexical)):
        for doc_id, score in normalised(side).items():
            fused[doc_id] = fused.get(doc_id, 0.0) + weight * score
    return fused


def normalised(scored: Sequence[tuple[str, float]]) -> dict[str, float]:
    """Min-max normalised scores of ``(doc_id, score)`` pairs."""
    if not scored:
        return {}
    values = [score for _, score in scored]
    low, high = min(values), max(values)
    span = high - low
    return {doc_id: (score - low) / span if span > 0 else 1.0 for doc_id, score in scored}


def ranked(fused: dict[str, float], k: int) -> list[tuple[str, float]]:
    """The ``k`` best ``(doc_id, score)`` of ``fused``, score descending, ties by id (deterministic)."""
    return sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:k]
