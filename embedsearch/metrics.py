"""Retrieval metrics, pure (numbers in, numbers out): BEIR's from pytrec_eval (the trec_eval code BEIR uses) for
documents and queries, and image–text Recall@k for pairs of images and captions.

Outside the stages (like ``errors``) so that both ``eval`` and ``train`` (its dev evaluation) use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytrec_eval

METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
_TREC_MEASURES = {"ndcg_cut.10", "recall.10", "recall.100"}
RECALL_KS = (1, 5, 10)
_BLOCK = 1024  # query rows scored at once: bounds memory at 1024 x candidates floats


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


def image_text_recall(
    image_vectors: np.ndarray,
    text_vectors: np.ndarray,
    image_to_texts: Sequence[Sequence[int]],
    ks: Sequence[int] = RECALL_KS,
) -> dict[str, float]:
    """Recall@k both ways between images and captions, named as open_clip reports retrieval.

    ``image_vectors`` ``(n_images, dim)`` and ``text_vectors`` ``(n_texts, dim)`` are L2-normalised float
    arrays; ``image_to_texts[i]`` lists the indexes of the captions of image ``i`` (every caption has at least
    one image). ``image_to_text_R@k``: the fraction of images with any of their captions among the ``k`` best
    scored captions; ``text_to_image_R@k``: the fraction of captions with any of their images among the ``k``
    best images. A wrong candidate that ties the best right one counts as ranked above it, so identical vectors
    never score by luck. Raises ``ValueError`` for mismatched shapes, an image or caption without a partner, or
    an index out of range.
    """
    images, texts = np.asarray(image_vectors, dtype=np.float32), np.asarray(text_vectors, dtype=np.float32)
    if images.ndim != 2 or texts.ndim != 2 or images.shape[1] != texts.shape[1] or len(image_to_texts) != len(images):
        raise ValueError(
            f"expected (n_images, dim) and (n_texts, dim) vectors and one caption list per image, got "
            f"{images.shape}, {texts.shape} and {len(image_to_texts)} lists"
        )
    text_to_images = _inverted(image_to_texts, len(texts))
    i2t = recall_at_k(images, texts, image_to_texts, ks)
    t2i = recall_at_k(texts, images, text_to_images, ks)
    return {
        **{f"image_to_text_R@{k}": value for k, value in zip(ks, i2t, strict=True)},
        **{f"text_to_image_R@{k}": value for k, value in zip(ks, t2i, strict=True)},
    }


def _inverted(image_to_texts: Sequence[Sequence[int]], n_texts: int) -> list[list[int]]:
    owners: list[list[int]] = [[] for _ in range(n_texts)]
    for image, captions in enumerate(image_to_texts):
        if not captions:
            raise ValueError(f"image {image} has no caption")
        for text in captions:
            if not 0 <= text < n_texts:
                raise ValueError(f"image {image} names caption {text}, but there are {n_texts} captions")
            owners[text].append(image)
    if unpaired := [text for text, images in enumerate(owners) if not images]:
        raise ValueError(f"{len(unpaired)} caption(s) have no image, e.g. caption {unpaired[0]}")
    return owners


def recall_at_k(
    queries: np.ndarray, candidates: np.ndarray, relevant: Sequence[Sequence[int]], ks: Sequence[int] = RECALL_KS
) -> list[float]:
    """Per k, the fraction of ``queries`` ``(n, dim)`` with a relevant candidate (``relevant[i]``: indexes into
    ``candidates`` ``(m, dim)``) among the k best by inner product; a wrong candidate tying the best right one
    counts as ranked above it. Candidates need not be anyone's partner (e.g. a gallery of every caption)."""
    found = np.zeros(len(ks), dtype=np.int64)
    for start in range(0, len(queries), _BLOCK):
        scores = queries[start : start + _BLOCK] @ candidates.T
        rows = [row for row, items in enumerate(relevant[start : start + _BLOCK]) for _ in items]
        mask = np.zeros(scores.shape, dtype=bool)
        mask[rows, [item for items in relevant[start : start + _BLOCK] for item in items]] = True
        best = np.where(mask, scores, -np.inf).max(axis=1, keepdims=True)
        wrong_above = ((scores >= best) & ~mask).sum(axis=1)
        found += [(wrong_above < k).sum() for k in ks]
    return [float(count) / max(len(queries), 1) for count in found]
