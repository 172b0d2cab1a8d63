"""Evaluate an index on BEIR-style queries and qrels."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from embedsearch.data import read_qrels, read_queries
from embedsearch.errors import InvalidInputError
from embedsearch.metrics import evaluate_run
from embedsearch.search import Searcher


@dataclass
class EvalReport:
    """Mean metrics over ``queries`` evaluated queries (those of the qrels that have a query text)."""

    metrics: dict[str, float]
    queries: int
    missing_queries: int

    def to_dict(self) -> dict:
        return {**self.metrics, "queries": self.queries, "missing_queries": self.missing_queries}


def evaluate_index(
    searcher: Searcher,
    queries: str | Path,
    qrels: str | Path,
    *,
    k: int = 100,
    progress: bool = False,
    **options: Any,
) -> EvalReport:
    """Search every query that has judgements in ``qrels`` and score the top ``k`` documents; ``options`` are
    :meth:`Searcher.search_many`'s (``mode``, ``fusion``, ``alpha``, ``ef_search``, ``nprobe``).

    Raises :class:`InvalidInputError` if no query of the qrels has a text in ``queries``.
    """
    texts, judgements = read_queries(queries), read_qrels(qrels)
    ids = [q for q in judgements if q in texts]
    if not ids:
        raise InvalidInputError(f"none of the {len(judgements)} queries in {qrels} has a text in {queries}")
    hits = searcher.search_many([texts[q] for q in ids], k=k, progress=progress, highlight=False, **options)
    run = {q: {h.id: h.score for h in row} for q, row in zip(ids, hits, strict=True)}
    return EvalReport(evaluate_run(run, {q: judgements[q] for q in ids}), len(ids), len(judgements) - len(ids))
