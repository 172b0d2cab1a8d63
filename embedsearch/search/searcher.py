"""Search an index by text, by image or by vector: encode, find nearest chunks, return one hit per document.

Any query kind the index's encoder embeds works on any index: text or image queries on an image index (text to
image, image to image), image queries on a text index built with an image–text encoder (image to text).

The work one request can cause is bounded: ``k`` up to :data:`MAX_K`, a query text up to
:data:`MAX_QUERY_CHARS` characters (refused before it is tokenised), ``where`` up to :data:`MAX_WHERE_KEYS`
keys of scalar values.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.data import Document, load_image
from embedsearch.data.documents import check_text
from embedsearch.encoders import Encoder
from embedsearch.errors import (
    DimensionMismatchError,
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnsupportedModalityError,
)
from embedsearch.index import IndexView, SearchKnobs, StoredIndex, check_encoder, encoder_of
from embedsearch.search.hits import Hit, best_chunk_per_document, to_hits

MAX_K = 10_000
MAX_QUERY_CHARS = 8_192  # about 2,000 tokens: MiniLM reads 256 of them, CLIP 77
MAX_WHERE_KEYS = 32
MAX_WHERE_CHARS = 4_096  # of one key or value


@dataclass(frozen=True)
class Item:
    """A stored item: an image's thumbnail bytes, or a document."""

    media_type: str
    image: bytes | None = None
    document: Document | None = None


class Searcher:
    """An index opened for search together with its (verified) query encoder. Every search sees the index's
    latest committed state (see :class:`embedsearch.index.StoredIndex`)."""

    def __init__(self, index: StoredIndex, encoder: Encoder) -> None:
        check_encoder(index.manifest, encoder, role="query encoder")
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
        background_loading: bool = False,
    ) -> Searcher:
        """Open index ``name`` and the encoder its manifest names (or ``encoder``, which must match it).

        ``query_kinds`` (``"text"``, ``"image"``) are checked against the manifest before the encoder is loaded.
        Raises :class:`UnknownIndexError`, :class:`CorruptIndexError`, :class:`UnsupportedModalityError`,
        :class:`UnknownEncoderError` or :class:`EncoderMismatchError`.
        """
        index = StoredIndex.open(name, home, background_loading=background_loading)
        try:
            for kind in sorted(query_kinds):
                require_query_kind(index.manifest, kind)
            return cls(index, encoder_of(index.manifest, encoder, role="query encoder"))
        except BaseException:
            index.close()
            raise

    @property
    def manifest(self) -> dict[str, Any]:
        """The index's description now: what it is (``manifest.json``) and what it holds (counts, generation,
        segments), as ``index info`` shows it."""
        return self.index.info()

    @property
    def identity(self) -> dict[str, Any]:
        """What the index is (``manifest.json``: encoder, dim, spec, content, ...), without reading its state."""
        return self.index.manifest

    def info(self) -> dict[str, Any]:
        return self.index.info()

    def rebuilt(self) -> bool:
        """Whether the index was rebuilt since it was opened (open it again for the new one)."""
        return self.index.rebuilt()

    def close(self) -> None:
        self.index.close()

    def search(
        self, query: str, k: int = 10, where: dict[str, Any] | None = None, *, ef_search=None, nprobe=None
    ) -> list[Hit]:
        """The ``k`` documents nearest to ``query``, best first; ``where`` keeps documents whose metadata has
        every ``key == value``. Raises :class:`InvalidInputError` for an empty query or ``k < 1`` and
        :class:`TooLargeError` past the limits."""
        return self.search_many([query], k, where, ef_search=ef_search, nprobe=nprobe)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        where: dict[str, Any] | None = None,
        *,
        progress: bool = False,
        ef_search: int | None = None,
        nprobe: int | None = None,
    ) -> list[list[Hit]]:
        """:meth:`search` for many queries, encoded in batches."""
        check_request(k, where)
        return self.search_vectors(self._text_vectors(queries, progress), k, where, ef_search=ef_search, nprobe=nprobe)

    def search_images(
        self,
        images: Sequence[Any],
        k: int = 10,
        where: dict[str, Any] | None = None,
        *,
        progress: bool = False,
        ef_search: int | None = None,
        nprobe: int | None = None,
    ) -> list[list[Hit]]:
        """Hits for each image (a path, bytes or a PIL image).

        Raises :class:`UnsupportedModalityError` if the index's encoder has no image tower (before any image is
        decoded), and :class:`InvalidInputError` naming an image that cannot be read or is too large.
        """
        check_request(k, where)
        vectors = self._image_vectors(images, progress)
        return self.search_vectors(vectors, k, where, ef_search=ef_search, nprobe=nprobe)

    def search_mixed(
        self,
        queries: Sequence[str | Path],
        k: int = 10,
        where: dict[str, Any] | None = None,
        *,
        progress: bool = False,
        ef_search: int | None = None,
        nprobe: int | None = None,
    ) -> list[list[Hit]]:
        """Hits for each query, in order: a ``str`` is a query text, a ``Path`` a query image file."""
        check_request(k, where)
        texts = [i for i, query in enumerate(queries) if isinstance(query, str)]
        images = [i for i, query in enumerate(queries) if not isinstance(query, str)]
        vectors = np.zeros((len(queries), self.encoder.dim), dtype=np.float32)
        if texts:
            vectors[texts] = self._text_vectors([queries[i] for i in texts], progress)
        if images:
            vectors[images] = self._image_vectors([queries[i] for i in images], progress)
        return self.search_vectors(vectors, k, where, ef_search=ef_search, nprobe=nprobe)

    def check_query(self, query: Any, k: int = 10, where: dict[str, Any] | None = None) -> None:
        """Every check :meth:`search` makes before it encodes ``query`` (for callers that encode it themselves)."""
        require_query_kind(self.identity, "text")
        check_request(k, where)
        check_query_texts([query])

    def _text_vectors(self, texts: Sequence[Any], progress: bool) -> np.ndarray:
        require_query_kind(self.identity, "text")
        check_query_texts(texts)
        return self.encoder.encode_text(list(texts), progress=progress)

    def _image_vectors(self, images: Sequence[Any], progress: bool) -> np.ndarray:
        require_query_kind(self.identity, "image")
        return self.encoder.encode_image([_query_image(image) for image in images], progress=progress)

    def search_vectors(
        self, vectors: np.ndarray, k: int = 10, where: dict[str, Any] | None = None, *, ef_search=None, nprobe=None
    ) -> list[list[Hit]]:
        """Hits for each row of a float32 ``(n, dim)`` array of query vectors (normalised by the caller)."""
        vectors = _as_queries(vectors, self.identity["dim"])
        check_request(k, where)
        knobs = self.knobs(ef_search=ef_search, nprobe=nprobe)
        with self.index.reading() as view:
            allowed = view.chunk_ids_where(where) if where else None
            return to_hits(_best_documents(view, vectors, k, allowed, knobs), view)

    def knobs(self, *, ef_search: int | None = None, nprobe: int | None = None) -> SearchKnobs:
        """The index's search knobs with those given (``None`` keeps the index's)."""
        given = {key: value for key, value in (("ef_search", ef_search), ("nprobe", nprobe)) if value is not None}
        for key, value in given.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65_536:
                raise InvalidInputError(f"{key} must be an integer from 1 to 65536, got {value!r}")
        return SearchKnobs(**{**self.identity.get("search", {}), **given})

    def document(self, doc_id: str) -> Document:
        """The stored document ``doc_id``; :class:`NotFoundError` if there is none."""
        _valid(doc_id, "the document id")
        with self.index.reading() as view:
            document = view.documents([doc_id]).get(doc_id)
        if document is None:
            raise NotFoundError(f"index {self.index.name!r} has no document {doc_id!r}")
        return document

    def documents(self, ids: Sequence[str]) -> dict[str, Document]:
        """``{id: Document}`` of those ``ids`` that are stored."""
        with self.index.reading() as view:
            return view.documents(list(ids))

    def item(self, doc_id: str) -> Item:
        """What ``GET /indexes/{name}/items/{id}`` answers: the stored thumbnail of an image document (image
        indexes), else the document; :class:`NotFoundError` if there is none."""
        if self.identity["content"] == "image":
            return Item(media_type="image/webp", image=self.thumbnail(doc_id))
        return Item(media_type="application/json", document=self.document(doc_id))

    def thumbnail(self, doc_id: str) -> bytes:
        """The stored WebP thumbnail of image document ``doc_id`` (image indexes keep one per image, and never
        the image's path); :class:`NotFoundError` if there is none."""
        with self.index.reading() as view:
            data = view.store.thumbnail(doc_id)
        if data is None:
            raise NotFoundError(f"index {self.index.name!r} has no image {doc_id!r}")
        return data


def _best_documents(view: IndexView, vectors: np.ndarray, k: int, allowed: np.ndarray | None, knobs: SearchKnobs):
    """Fetch chunks, widening until each query has ``k`` distinct documents or every candidate was seen."""
    state = view.state
    candidates = len(allowed) if allowed is not None else state["chunks"]
    per_doc = state["chunks"] / max(state["documents"], 1)
    fetch = min(candidates, math.ceil(k * per_doc * 1.5) + 10)
    rows: list = [[] for _ in range(len(vectors))]
    pending = np.arange(len(vectors))
    while len(pending) and candidates:
        D, I = view.search(vectors[pending], max(fetch, 1), knobs, allowed)
        owners = view.chunk_owners(np.unique(I[I >= 0]).tolist())
        for row, hits in zip(pending, best_chunk_per_document(D, I, owners, k), strict=True):
            rows[row] = hits
        if fetch >= candidates:
            break
        pending = np.array([r for r in pending if len(rows[r]) < k], dtype=np.int64)
        fetch = min(candidates, fetch * 4)
    return rows


def check_request(k: Any, where: dict[str, Any] | None) -> None:
    """:class:`InvalidInputError` / :class:`TooLargeError` for a ``k`` or a ``where`` out of bounds."""
    if not isinstance(k, int) or isinstance(k, bool) or k < 1:
        raise InvalidInputError(f"k must be an integer of at least 1, got {k!r}")
    if k > MAX_K:
        raise TooLargeError(f"k={k} is over the limit of {MAX_K}")
    if where is None:
        return
    if not isinstance(where, dict):
        raise InvalidInputError(f"where must be an object of key: value, got {type(where).__name__}")
    if len(where) > MAX_WHERE_KEYS:
        raise TooLargeError(f"where has {len(where)} keys, over the limit of {MAX_WHERE_KEYS}")
    for key, value in where.items():
        _check_where_item(key, value)


def _check_where_item(key: Any, value: Any) -> None:
    if not isinstance(key, str) or not key:
        raise InvalidInputError(f"a where key must be a non-empty string, got {key!r}")
    if not isinstance(value, str | int | float | bool):
        raise InvalidInputError(f"where {key!r}: the value must be a string, number or boolean")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInputError(f"where {key!r}: {value!r} is not a number JSON can carry")
    for text, what in ((key, "a where key"), (value, f"the where value of {key!r}")):
        if isinstance(text, str):
            if len(text) > MAX_WHERE_CHARS:
                raise TooLargeError(f"{what} has {len(text)} characters, over the limit of {MAX_WHERE_CHARS}")
            _valid(text, what)


def check_query_texts(texts: Sequence[Any]) -> None:
    """:class:`InvalidInputError` for an empty or invalid query text, :class:`TooLargeError` for a long one,
    checked before anything is tokenised."""
    for text in texts:
        if not isinstance(text, str) or not text.strip():
            raise InvalidInputError("a query text is empty")
        if len(text) > MAX_QUERY_CHARS:
            raise TooLargeError(f"a query of {len(text):,} characters is over the limit of {MAX_QUERY_CHARS:,}")
        _valid(text, "the query")


def _valid(text: str, what: str) -> None:
    try:
        check_text(text, what)
    except ValueError as err:
        raise InvalidInputError(str(err)) from None


def require_query_kind(manifest: dict[str, Any], kind: str) -> None:
    """Raise :class:`UnsupportedModalityError` unless the encoder of the index ``manifest`` describes embeds ``kind``
    (``"text"`` or ``"image"``) queries."""
    encoder = manifest["encoder"]
    towers = encoder.get("modalities", ["text"])
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


def _as_queries(vectors: Any, dim: int) -> np.ndarray:
    try:
        array = np.asarray(vectors, dtype=np.float32)
    except (TypeError, ValueError):
        raise InvalidInputError("query vectors must be numbers") from None
    array = array[None, :] if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] != dim:
        raise DimensionMismatchError(f"query vectors must have dimension {dim}, got shape {tuple(np.shape(vectors))}")
    if not np.isfinite(array).all():
        raise InvalidInputError("query vectors contain NaN or infinity")
    return np.ascontiguousarray(array)
