"""Retrieval metrics from pytrec_eval (the trec_eval code BEIR uses): pure, runs and qrels in, numbers out.

Outside the stages (like ``errors``) so that both ``eval`` and ``train`` (its dev evaluation) use it.
"""

from __future__ import annotations

import pytrec_eval

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_TREC_MEASURES = {"ndcg_cut.10", "recall.10", "recall.100"}


def evaluate_run(run: dict[str, dict[str, float]], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean nDCG@10, Recall@10, Recall@100 and MRR@10 over the queries of ``qrels``.

    ``run`` is ``{query_id: {doc_id: score}}``; a query of ``qrels`` missing from ``run`` scores 0.
    ``qrels`` is ``{query_id: {doc_id: grade}}`` with grades > 0 (graded relevance feeds nDCG).
    """
    judged = {q: docs for q, docs in qrels.items() if docs}
    if not judged:
        return dict.fromkeys(METRICS, 0.0)
    full = {q: run.get(q) or {"\0none": 0.0} for q in judged}
    top10 = {q: dict(sorted(scores.items(), key=lambda kv: -kv[1])[:10]) for q, scores in full.items()}
    per_query = pytrec_eval.RelevanceEvaluator(judged, _TREC_MEASURES).evaluate(full)
    rr = pytrec_eval.RelevanceEvaluator(judged, {"recip_rank"}).evaluate(top10)
    n = len(judged)
    return {
        "ndcg@10": sum(m["ndcg_cut_10"] for m in per_query.values()) / n,
        "recall@10": sum(m["recall_10"] for m in per_query.values()) / n,
        "recall@100": sum(m["recall_100"] for m in per_query.values()) / n,
        "mrr@10": sum(m["recip_rank"] for m in rr.values()) / n,
    }
