"""Retrieval quality: metrics, the evaluation of an index on queries with relevance judgements, and of an
image–text encoder on pairs of images and captions."""

from __future__ import annotations

from embedsearch.eval.pairs import PairsReport, evaluate_pairs
from embedsearch.eval.runner import EvalReport, evaluate_index
from embedsearch.metrics import METRICS, evaluate_run, image_text_recall

__all__ = [
    "METRICS",
    "EvalReport",
    "PairsReport",
    "evaluate_index",
    "evaluate_pairs",
    "evaluate_run",
    "image_text_recall",
]
