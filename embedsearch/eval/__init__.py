"""Retrieval quality: metrics and the evaluation of an index on queries with relevance judgements."""

from __future__ import annotations

from embedsearch.eval.runner import EvalReport, evaluate_index
from embedsearch.metrics import METRICS, evaluate_run

__all__ = ["METRICS", "EvalReport", "evaluate_index", "evaluate_run"]
