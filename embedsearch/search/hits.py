"""The one place where the index layer's ``(D, I)`` arrays of chunk ids become document hits."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from embedsearch.index import IndexView


@dataclass(frozen=True)
class Hit:
    """A document found by a search: its ``id``, cosine ``score`` (of its best chunk), that chunk's text as
    ``snippet``, and the document's ``metadata``."""

    id: str
    score: float
    snippet: str
    metadata: dict[str, Any] = field(default_factory=dict)

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


def to_hits(rows: list[list[tuple[str, float, int, int]]], view: IndexView) -> list[list[Hit]]:
    """Attach snippet text and metadata from the document store (in the same read)."""
    stored = view.documents(sorted({r[0] for row in rows for r in row}))
    return [[Hit(d, round(float(s), 6), stored[d].text[a:b], stored[d].metadata) for d, s, a, b in row] for row in rows]
