"""Search an index by text, by image or by vector: encode, find nearest chunks, return one hit per document.

Any query kind the index's encoder embeds works on any index: text or image queries on an image index (text to
image, image to image), image queries on a text index built with an image–text encoder (image to text).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.data import load_image
from embedsearch.encoders import Encoder, get_encoder
from embedsearch.errors import (
    DimensionMismatchError,
    EncoderMismatchError,
    InvalidInputError,
    UnsupportedModalityError,
)
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
    def open(
        cls,
        name: str,
        home: str | Path | None = None,
        encoder: Encoder | str | None = None,
        *,
        query_kinds: Collection[str] = (),
    ) -> Searcher:
        """Open index ``name`` and the encoder its manifest names (or ``encoder``, which must match it).

        ``query_kinds`` (``"text"``, ``"image"``) are checked against the manifest before the encoder is loaded.
        Raises :class:`UnknownIndexError`, :class:`UnsupportedModalityError`, :class:`UnknownEncoderError` or
        :class:`EncoderMismatchError`.
        """
        index = StoredIndex.open(name, home)
        for kind in sorted(query_kinds):
            require_query_kind(index.manifest, kind)
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
        return self.search_vectors(self._text_vectors(queries, progress), k, where, **knobs)

    def search_images(
        self,
        images: Sequence[Any],
        k: int = 10,
        where: dict[str, Any] | None = None,
        *,
        progress: bool = False,
        **knobs: int,
    ) -> list[list[Hit]]:
        """Hits for each image (a path, bytes or a PIL image).

        Raises :class:`UnsupportedModalityError` if the index's encoder has no image tower, and
        :class:`InvalidInputError` naming an image that cannot be read.
        """
        return self.search_vectors(self._image_vectors(images, progress), k, where, **knobs)

    def search_mixed(
        self,
        queries: Sequence[str | Path],
        k: int = 10,
        where: dict[str, Any] | None = None,
        *,
        progress: bool = False,
        **knobs: int,
    ) -> list[list[Hit]]:
        """Hits for each query, in order: a ``str`` is a query text, a ``Path`` a query image file."""
        texts = [i for i, query in enumerate(queries) if isinstance(query, str)]
        images = [i for i, query in enumerate(queries) if not isinstance(query, str)]
        vectors = np.zeros((len(queries), self.encoder.dim), dtype=np.float32)
        if texts:
            vectors[texts] = self._text_vectors([queries[i] for i in texts], progress)
        if images:
            vectors[images] = self._image_vectors([queries[i] for i in images], progress)
        return self.search_vectors(vectors, k, where, **knobs)

    def _text_vectors(self, texts: Sequence[Any], progress: bool) -> np.ndarray:
        require_query_kind(self.manifest, "text")
        if any(not isinstance(t, str) or not t.strip() for t in texts):
            raise InvalidInputError("a query text is empty")
        return self.encoder.encode_text(list(texts), progress=progress)

    def _image_vectors(self, images: Sequence[Any], progress: bool) -> np.ndarray:
        require_query_kind(self.manifest, "image")
        return self.encoder.encode_image([_query_image(image) for image in images], progress=progress)

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


def require_query_kind(manifest: dict[str, Any], kind: str) -> None:
    """Raise :class:`UnsupportedModalityError` unless the encoder of the index ``manifest`` describes embeds ``kind``
    (``"text"`` or ``"image"``) queries."""
    encoder = manifest["encoder"]
    towers = encoder.get("modalities", ["text"])  # indexes written before image encoders existed: text only
    if kind not in towers:
        raise UnsupportedModalityError(
            f"index {manifest['name']!r} cannot answer {kind} queries: its encoder {encoder['name']!r} embeds "
            f"only {' and '.join(sorted(towers))}"
        )


def _query_image(image: Any) -> Any:
    """The decoded image (RGB, transparency on white); :class:`InvalidInputError` naming one that is unreadable."""
    try:
        return load_image(image)
    except ValueError as err:
        source = image if isinstance(image, str | Path) else f"a {type(image).__name__} image"
        raise InvalidInputError(f"query image {source}: {err}") from None


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
