"""The held-out dev set a run is evaluated on, with the metrics of ``embedsearch eval``.

A dev set is small on purpose (it is re-encoded with the current weights at every evaluation): the dev
queries, their relevant documents, and a seeded sample of other documents up to ``corpus_size``. Search is
exact cosine top-100 with numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from embedsearch.data import Document
from embedsearch.metrics import evaluate_run
from embedsearch.train.text.batches import random_crop
from embedsearch.train.text.pairs import Pair

TOP_K = 100


@dataclass
class DevSet:
    """``queries`` ``{qid: text}``, ``corpus`` ``{doc_id: text}``, ``qrels`` ``{qid: {doc_id: 1}}``."""

    queries: dict[str, str]
    corpus: dict[str, str]
    qrels: dict[str, dict[str, int]]


def split_by_anchor(pairs: Sequence[Pair], fraction: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """``(train, dev)``: a seeded ``fraction`` of the distinct anchors (at least one, and never all) goes to dev
    with all of its pairs, so that no dev query is trained on."""
    anchors = list(dict.fromkeys(p.anchor for p in pairs))
    count = min(max(1, round(fraction * len(anchors))), len(anchors) - 1) if fraction > 0 else 0
    held = {anchors[i] for i in np.random.default_rng([seed, 1]).permutation(len(anchors))[:count]}
    return [p for p in pairs if p.anchor not in held], [p for p in pairs if p.anchor in held]


def split_documents(
    documents: Sequence[Document], fraction: float, seed: int, ratio: tuple[float, float]
) -> tuple[list[Document], list[Pair]]:
    """For self-supervised runs without labels: ``(train documents, dev pairs)``, where a seeded ``fraction``
    of the documents is held out and each becomes a dev pair (a random crop of it as the query, the document
    as its one relevant answer)."""
    count = min(max(1, round(fraction * len(documents))), len(documents) - 1) if fraction > 0 else 0
    rng = np.random.default_rng([seed, 2])
    held = set(rng.permutation(len(documents))[:count].tolist())
    dev = [Pair(random_crop(documents[i].text, rng, ratio), documents[i].text) for i in sorted(held)]
    return [d for i, d in enumerate(documents) if i not in held], dev


def build_dev_set(pairs: Sequence[Pair], pool: Sequence[str], corpus_size: int, seed: int) -> DevSet:
    """Queries = the anchors of ``pairs``; corpus = their positives plus a seeded sample of the other texts of
    ``pool`` up to ``corpus_size`` documents (the positives are always in, even beyond it)."""
    doc_ids: dict[str, str] = {}
    query_ids: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for pair in pairs:
        qid = query_ids.setdefault(pair.anchor, f"q{len(query_ids)}")
        did = doc_ids.setdefault(pair.positive, f"d{len(doc_ids)}")
        qrels.setdefault(qid, {})[did] = 1
    others = list(dict.fromkeys(t for t in pool if t not in doc_ids))
    room = max(0, corpus_size - len(doc_ids))
    for index in sorted(np.random.default_rng([seed, 3]).permutation(len(others))[:room].tolist()):
        doc_ids[others[index]] = f"d{len(doc_ids)}"
    return DevSet({q: a for a, q in query_ids.items()}, {d: t for t, d in doc_ids.items()}, qrels)


def evaluate_dev(encode: Callable[[list[str]], np.ndarray], dev: DevSet) -> dict[str, float]:
    """nDCG@10, Recall@10/100 and MRR@10 of exact cosine search over the dev corpus. ``encode`` returns
    normalised float32 ``(n, dim)`` arrays."""
    query_ids, doc_ids = list(dev.queries), list(dev.corpus)
    queries = encode([dev.queries[q] for q in query_ids])
    documents = encode([dev.corpus[d] for d in doc_ids])
    return evaluate_run(top_k_run(queries, documents, query_ids, doc_ids, TOP_K), dev.qrels)


def top_k_run(
    queries: np.ndarray, documents: np.ndarray, query_ids: list[str], doc_ids: list[str], k: int
) -> dict[str, dict[str, float]]:
    """``{qid: {doc_id: score}}`` of the ``k`` highest inner products of each query row with the documents."""
    scores = queries @ documents.T
    k = min(k, scores.shape[1])
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return {qid: {doc_ids[j]: float(scores[row, j]) for j in top[row]} for row, qid in enumerate(query_ids)}
