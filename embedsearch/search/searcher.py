"""Search an index by text, by image or by vector: encode, find nearest chunks, return one hit per document.

Any query kind the index's encoder embeds works on any index: text or image queries on an image index (text to
image, image to image), image queries on a text index built with an image–text encoder (image to text). Text
queries can be answered by the dense side, the lexical (BM25) side or both fused (``mode``; see
:mod:`embedsearch.search.retrieval`).

The work one request can cause is bounded (:mod:`embedsearch.search.checks`): ``k`` up to :data:`MAX_K`, a
query text up to :data:`MAX_QUERY_CHARS` characters (refused before it is tokenised), ``where`` up to
:data:`MAX_WHERE_KEYS` keys of scalar values.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embedsearch.data import Document, load_image
from embedsearch.encoders import Encoder
from embedsearch.errors import DimensionMismatchError, InvalidInputError, NotFoundError, UnsupportedModeError
from embedsearch.index import SearchKnobs, StoredIndex, check_encoder, encoder_of
from embedsearch.search.checks import (
    MAX_K,
    MAX_QUERY_CHARS,
    MAX_WHERE_CHARS,
    MAX_WHERE_KEYS,
    check_query_texts,
    check_request,
    require_query_kind,
    valid_text,
)
from embedsearch.search.hits import Hit, to_hits
from embedsearch.search.retrieval import Retrieval, dense_rows, fused, lexical_rows, retrieval_for

__all__ = [
    "MAX_K",
    "MAX_QUERY_CHARS",
    "MAX_WHERE_CHARS",
    "MAX_WHERE_KEYS",
    "Item",
    "Searcher",
    "check_query_texts",
    "check_request",
    "require_query_kind",
]


@dataclass(frozen=True)
class Item:
    """A stored item: an image's thumbnail bytes, or a document."""

    media_type: str
    image: bytes | None = None
    document: Document | None = None


class Searcher:
    """An index opened for search together with its (verified) query encoder. Every search sees the index's
    latest committed state (see :class:`embedsearch.index.StoredIndex`).

    Text searches take ``mode`` (``"dense"``, ``"lexical"``, ``"hybrid"``; default: hybrid where the index has a
    lexical side, else dense), ``fusion`` (``"convex"``, ``"rrf"``) and ``alpha`` (the dense weight of convex
    fusion); image and vector searches are dense.
    """

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
        """What the index is (``manifest.json``: encoder, dim, spec, content, lexical, ...), without its state."""
        return self.index.manifest

    def info(self) -> dict[str, Any]:
        return self.index.info()

    def rebuilt(self) -> bool:
        """Whether the index was rebuilt since it was opened (open it again for the new one)."""
        return self.index.rebuilt()

    def close(self) -> None:
        self.index.close()

    def retrieval(self, mode: str | None = None, fusion: str | None = None, alpha: float | None = None) -> Retrieval:
        """The checked retrieval settings for text queries (``None`` takes the index's default)."""
        return retrieval_for(self.identity, mode, fusion, alpha)

    def search(self, query: str, k: int = 10, where: dict[str, Any] | None = None, **options: Any) -> list[Hit]:
        """The ``k`` documents that best answer ``query``, best first; ``where`` keeps documents whose metadata has
        every ``key == value``; ``options``: ``mode``, ``fusion``, ``alpha``, ``ef_search``, ``nprobe``. Raises
        :class:`InvalidInputError` for an empty query or ``k < 1``, :class:`TooLargeError` past the limits and
        :class:`UnsupportedModeError` for a mode the index cannot answer."""
        return self.search_many([query], k, where, **options)[0]

    def search_many(
        self,
        queries: Sequence[str],
        k: int = 10,
        where: dict[str, Any] | None = None,
        *,
        progress: bool = False,
        mode: str | None = None,
        fusion: str | None = None,
        alpha: float | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        highlight: bool = True,
    ) -> list[list[Hit]]:
        """:meth:`search` for many queries, encoded in batches; ``highlight=False`` leaves the hits' highlights
        empty (for callers that show no snippets: ``--queries``, ``eval``)."""
        retrieval = self.retrieval(mode, fusion, alpha)
        knobs = self.knobs(ef_search=ef_search, nprobe=nprobe)
        self._check_texts(queries, k, where)
        # one query: its lexical side runs while it is encoded on one thread; a batch is encoded on every core,
        # then its lexical sides run on two threads
        ahead = self.prefetch_lexical(queries, k, where, retrieval) if len(queries) == 1 else None
        vectors = self.encoder.encode_text(list(queries), progress=progress) if retrieval.dense else None
        ahead = ahead or self.prefetch_lexical(queries, k, where, retrieval)
        return self._search_texts(list(queries), vectors, k, where, retrieval, knobs, highlight, ahead)

    def search_text_with_vector(
        self, query: str, vector: np.ndarray | None, k: int = 10, where=None, *, retrieval: Retrieval, knobs, ahead=None
    ) -> list[Hit]:
        """:meth:`search` for a caller that encoded ``query`` itself (the HTTP server batches encoding; ``vector``
        may be ``None`` for a lexical search), after :meth:`check_query`; ``ahead``: what :meth:`prefetch_lexical`
        returned before the encoding."""
        vectors = None if vector is None else _as_queries(vector, self.identity["dim"])
        return self._search_texts([query], vectors, k, where, retrieval, knobs, True, ahead)[0]

    def prefetch_lexical(self, texts: Sequence[str], k: int, where, retrieval: Retrieval) -> list[Future] | None:
        """For a hybrid search: start its lexical side in worker threads (two halves of the texts), so that it
        runs beside other work (SQLite works without the GIL); ``None`` for other modes. The results are used
        only if no write committed in between (else the lexical side is read again, in the dense side's
        snapshot)."""
        if retrieval.mode != "hybrid":
            return None
        terms = [self.index.analyzer.terms(text) for text in texts]
        half = (len(terms) + 1) // 2
        parts = [part for part in (terms[:half], terms[half:]) if part]
        return [_LEXICAL_POOL.submit(self._lexical_side, part, retrieval.depth(k), where) for part in parts]

    def _lexical_side(self, terms: list[list[str]], depth: int, where) -> tuple[int, list]:
        with self.index.reading() as view:
            allowed = view.chunk_ids_where(where) if where else None
            return view.segment_set.generation, [lexical_rows(view, t, depth, allowed) for t in terms]

    def check_query(self, query: Any, k: int = 10, where: dict[str, Any] | None = None, **options: Any):
        """Every check :meth:`search` makes before it encodes ``query`` (for callers that encode it themselves);
        returns the :class:`Retrieval` and :class:`SearchKnobs` to pass to :meth:`search_text_with_vector`."""
        retrieval = self.retrieval(options.get("mode"), options.get("fusion"), options.get("alpha"))
        knobs = self.knobs(ef_search=options.get("ef_search"), nprobe=options.get("nprobe"))
        self._check_texts([query], k, where)
        return retrieval, knobs

    def _check_texts(self, texts: Sequence[Any], k: int, where: dict[str, Any] | None) -> None:
        require_query_kind(self.identity, "text")
        check_request(k, where)
        check_query_texts(texts)

    def _search_texts(self, texts, vectors, k, where, retrieval: Retrieval, knobs: SearchKnobs, highlight, ahead=None):
        depth = retrieval.depth(k)
        analyzer = self.index.analyzer
        terms = [analyzer.terms(text) for text in texts] if retrieval.lexical else None
        with self.index.reading() as view:
            allowed = view.chunk_ids_where(where) if where else None
            dense = dense_rows(view, vectors, depth, allowed, knobs) if retrieval.dense else None
            lexical = None
            if ahead:
                done = [future.result() for future in ahead]
                if all(generation == view.segment_set.generation for generation, _rows in done):
                    lexical = [row for _generation, rows in done for row in rows]
            if lexical is None and terms is not None:
                lexical = [lexical_rows(view, t, depth, allowed) for t in terms]
            if dense is not None and lexical is not None:
                rows = [fused(d, s, retrieval, k) for d, s in zip(dense, lexical, strict=True)]
            else:
                rows = dense if dense is not None else lexical
            marks = (
                None if terms is None or not highlight else (lambda i, text: analyzer.matching_words(text, terms[i]))
            )
            return to_hits(rows, view, marks)

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
        """Hits for each image (a path, bytes or a PIL image), by the dense side.

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
        mode: str | None = None,
        fusion: str | None = None,
        alpha: float | None = None,
        ef_search: int | None = None,
        nprobe: int | None = None,
        highlight: bool = True,
    ) -> list[list[Hit]]:
        """Hits for each query, in order: a ``str`` is a query text (answered in ``mode``), a ``Path`` a query
        image file (answered by the dense side; :class:`UnsupportedModeError` in mode lexical)."""
        check_request(k, where)
        texts = [i for i, query in enumerate(queries) if isinstance(query, str)]
        images = [i for i, query in enumerate(queries) if not isinstance(query, str)]
        if images and mode == "lexical":
            raise UnsupportedModeError("image queries are answered by the dense side only: use mode dense or hybrid")
        results: list[list[Hit]] = [[] for _ in queries]
        options = {"mode": mode, "fusion": fusion, "alpha": alpha, "ef_search": ef_search, "nprobe": nprobe}
        options["highlight"] = highlight
        if texts:
            found = self.search_many([queries[i] for i in texts], k, where, progress=progress, **options)
            for i, hits in zip(texts, found, strict=True):
                results[i] = hits
        if images:
            vectors = self._image_vectors([queries[i] for i in images], progress)
            found = self.search_vectors(vectors, k, where, ef_search=ef_search, nprobe=nprobe)
            for i, hits in zip(images, found, strict=True):
                results[i] = hits
        return results

    def _image_vectors(self, images: Sequence[Any], progress: bool) -> np.ndarray:
        require_query_kind(self.identity, "image")
        return self.encoder.encode_image([_query_image(image) for image in images], progress=progress)

    def search_vectors(
        self, vectors: np.ndarray, k: int = 10, where: dict[str, Any] | None = None, *, ef_search=None, nprobe=None
    ) -> list[list[Hit]]:
        """Hits for each row of a float32 ``(n, dim)`` array of query vectors (normalised by the caller), by the
        dense side."""
        vectors = _as_queries(vectors, self.identity["dim"])
        check_request(k, where)
        knobs = self.knobs(ef_search=ef_search, nprobe=nprobe)
        with self.index.reading() as view:
            allowed = view.chunk_ids_where(where) if where else None
            return to_hits(dense_rows(view, vectors, k, allowed, knobs), view)

    def knobs(self, *, ef_search: int | None = None, nprobe: int | None = None) -> SearchKnobs:
        """The index's search knobs with those given (``None`` keeps the index's)."""
        given = {key: value for key, value in (("ef_search", ef_search), ("nprobe", nprobe)) if value is not None}
        for key, value in given.items():
            if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= 65_536:
                raise InvalidInputError(f"{key} must be an integer from 1 to 65536, got {value!r}")
        explicit = {"ef_auto": False} if "ef_search" in given else {}
        return SearchKnobs(**{**self.identity.get("search", {}), **given, **explicit})

    def document(self, doc_id: str) -> Document:
        """The stored document ``doc_id``; :class:`NotFoundError` if there is none."""
        valid_text(doc_id, "the document id")
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


# two threads for the lexical sides of hybrid searches, shared by every searcher (started on first use)
_LEXICAL_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="lexical")


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
