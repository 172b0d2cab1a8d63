"""Search an index by text or by vector: encode, find nearest chunks, return one hit per document."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.encoders import Encoder, get_encoder
from embedsearch.errors import DimensionMismatchError, EncoderMismatchError, InvalidInputError
from embedsearch.index import StoredIndex
from embedsearch.index.factory import SearchKnobs
from embedsearch.search.hits import Hit, best_chunk_per_document, to_hits


class Searcher:
    """An index opened for search together with its (verified) query encoder."""

    def __init__(self, index: StoredIndex, encoder: Encoder) -> None:
        _check_encoder(index.manifest, encoder)
        self.index = index
        self.encoder = encoder

    @classmethod
    def open(cls, name: str, home: str | Path | None = None, encoder: Encoder | str | None = None) -> Searcher:
        """Open index ``name`` and the encoder its manifest names (or ``encoder``, which must match it).

        Raises :class:`UnknownIndexError`, :class:`UnknownEncoderError` or :class:`EncoderMismatchError`.
        """
        index = StoredIndex.open(name, home)
        reference = encoder if encoder is not None else index.manifest["encoder"]["name"]
        return cls(index, get_encoder(reference) if isinstance(reference, str) else reference)

    @property
    def manifest(self) -> dict[str, Any]:
        return self.index.manifest

    def search(self, query: str, k: int = 10, where: dict[str, Any] | None = None, **knobs: int) -> list[Hit]:
        """The ``k`` documents nearest to ``query``, best first; ``where`` keeps documents whose metadata has
        every ``key == value``. Raises :class:`InvalidInputError` for an empty query or ``k < 1``."""
        return self.search_many([query], k, where, **knobs)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        where: dict[str, Any] | None = None,
        *,
        progress: bool = False,
        **knobs: int,
    ) -> list[list[Hit]]:
        """:meth:`search` for many queries, encoded in batches."""
        if any(not q or not q.strip() for q in queries):
            raise InvalidInputError("a query text is empty")
        vectors = self.encoder.encode_text(list(queries), progress=progress)
        return self.search_vectors(vectors, k, where, **knobs)

    def search_images(
        self, images: Sequence[Any], k: int = 10, where: dict[str, Any] | None = None, **knobs: int
    ) -> list[list[Hit]]:
        """Hits for each image (path or PIL image); :class:`UnsupportedModalityError` for a text-only encoder."""
        return self.search_vectors(self.encoder.encode_image(list(images)), k, where, **knobs)

    def search_vectors(
        self, vectors: np.ndarray, k: int = 10, where: dict[str, Any] | None = None, **knobs: int
    ) -> list[list[Hit]]:
        """Hits for each row of a float32 ``(n, dim)`` array of query vectors (normalised by the caller)."""
        vectors = _as_queries(vectors, self.manifest["dim"])
        if k < 1:
            raise InvalidInputError(f"k must be at least 1, got {k}")
        allowed = self.index.docs.chunk_ids_where(where) if where else None
        search_knobs = SearchKnobs(**{**self.manifest.get("search", {}), **knobs})
        return to_hits(self._best_documents(vectors, k, allowed, search_knobs), self.index.docs)

    def _best_documents(self, vectors: np.ndarray, k: int, allowed: np.ndarray | None, knobs: SearchKnobs):
        """Fetch chunks, widening until each query has ``k`` distinct documents or every candidate was seen."""
        candidates = len(allowed) if allowed is not None else self.manifest["chunks"]
        per_doc = self.manifest["chunks"] / max(self.manifest["count"], 1)
        fetch = min(candidates, math.ceil(k * per_doc * 1.5) + 10)
        rows: list = [None] * len(vectors)
        pending = np.arange(len(vectors))
        while len(pending):
            D, I = self.index.search(vectors[pending], max(fetch, 1), knobs, allowed)
            owners = self.index.docs.chunk_owners(np.unique(I[I >= 0]).tolist())
            found = best_chunk_per_document(D, I, owners, k)
            for row, hits in zip(pending, found, strict=True):
                rows[row] = hits
            if fetch >= candidates:
                break
            pending = np.array([r for r in pending if len(rows[r]) < k], dtype=np.int64)
            fetch = min(candidates, fetch * 4)
        return rows


def _check_encoder(manifest: dict[str, Any], encoder: Encoder) -> None:
    expected = manifest["encoder"]
    if encoder.fingerprint != expected["fingerprint"] or encoder.dim != manifest["dim"]:
        raise EncoderMismatchError(
            f"query encoder {encoder.name!r} (fingerprint {encoder.fingerprint}, dim {encoder.dim}) does not "
            f"match index {manifest['name']!r}, built with {expected['name']!r} "
            f"(fingerprint {expected['fingerprint']}, dim {manifest['dim']})"
        )


def _as_queries(vectors: Any, dim: int) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float32)
    array = array[None, :] if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] != dim:
        raise DimensionMismatchError(f"query vectors must have dimension {dim}, got shape {tuple(np.shape(vectors))}")
    if not np.isfinite(array).all():
        raise InvalidInputError("query vectors contain NaN or infinity")
    return np.ascontiguousarray(array)
