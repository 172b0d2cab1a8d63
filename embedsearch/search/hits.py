"""The one place where the index layer's ``(D, I)`` arrays of chunk ids become document hits."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedsearch.index import IndexView


@dataclass(frozen=True)
class Hit:
    """A document found by a search: its ``id``, ``score`` (dense: the cosine of its best chunk; lexical: BM25;
    hybrid: the fused score), that chunk's text as ``snippet``, the document's ``metadata``, and (lexical and
    hybrid searches) the ``highlights``: the words of the snippet, as written, that matched the query's terms."""

    id: str
    score: float
    snippet: str
    metadata: dict[str, Any] = field(default_factory=dict)
    highlights: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def best_chunk_per_document(D: np.ndarray, I: np.ndarray, owners: dict[int, tuple[str, int, int]], k: int):
    """Per query row, up to ``k`` ``(doc_id, score, start, end)`` tuples: each document once, by its best chunk.

    ``D``/``I`` are faiss results sorted by descending score with -1 padding; ``owners`` maps chunk id to
    ``(doc_id, start, end)``. Pure: arrays in, tuples out.
    """
    rows = []
    for scores, ids in zip(D, I, strict=True):
        seen: dict[str, tuple[str, float, int, int]] = {}
        for score, chunk_id in zip(scores.tolist(), ids.tolist(), strict=True):
            if chunk_id < 0 or chunk_id not in owners:
                continue
            doc_id, start, end = owners[chunk_id]
            if doc_id not in seen:
                seen[doc_id] = (doc_id, score, start, end)
                if len(seen) == k:
                    break
        rows.append(list(seen.values()))
    return rows


def to_hits(
    rows: list[list[tuple[str, float, int, int]]],
    view: IndexView,
    marks: Callable[[int, str], list[str]] | None = None,
) -> list[list[Hit]]:
    """Attach snippet text and metadata from the document store (in the same read), and the highlights that
    ``marks(query number, snippet)`` finds."""
    stored = view.documents(sorted({r[0] for row in rows for r in row}))
    hits = []
    for number, row in enumerate(rows):
        found = []
        for doc_id, score, start, end in row:
            document = stored[doc_id]
            snippet = document.text[start:end]
            highlights = marks(number, snippet) if marks else []
            found.append(Hit(doc_id, round(float(score), 6), snippet, document.metadata, highlights))
        hits.append(found)
    return hits
