"""Metrics against values worked out by hand."""

from __future__ import annotations

import math

import pytest

from embedsearch.eval import evaluate_run


def test_perfect_run_scores_one():
    qrels = {"q1": {"a": 1}, "q2": {"b": 2, "c": 1}}
    run = {"q1": {"a": 0.9, "x": 0.1}, "q2": {"b": 0.8, "c": 0.7}}
    assert evaluate_run(run, qrels) == {"ndcg@10": 1.0, "recall@10": 1.0, "recall@100": 1.0, "mrr@10": 1.0}


def test_hand_computed_values():
    qrels = {"q1": {"a": 1, "b": 1}}
    run = {"q1": {"x": 0.9, "a": 0.8}}  # one of two relevant documents, at rank 2
    metrics = evaluate_run(run, qrels)
    assert metrics["ndcg@10"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert metrics["recall@10"] == 0.5 and metrics["mrr@10"] == 0.5


def test_mrr_is_cut_at_ten_and_missing_queries_score_zero():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}}
    run = {"q1": {f"x{i}": 1 - i / 100 for i in range(10)} | {"a": 0.01}}
    metrics = evaluate_run(run, qrels)
    assert metrics["mrr@10"] == 0.0 and metrics["recall@100"] == 0.5
