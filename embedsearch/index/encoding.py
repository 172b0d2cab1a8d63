"""From documents to what a segment holds: chunks, their vectors and (for images) thumbnails."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedsearch.data import Chunk, Document, chunk_spans, load_image
from embedsearch.data.images import thumbnail
from embedsearch.encoders import Encoder
from embedsearch.errors import InvalidInputError, UnsupportedModalityError

IMAGE_GROUP = 256  # images decoded at a time while encoding: bounds memory, whatever the folder's size
TOKENIZE_GROUP = 1024  # documents tokenised at a time for chunking


@dataclass(frozen=True)
class ChunkingPolicy:
    """How documents become chunks: windows of the encoder's max tokens sharing ``overlap`` tokens (default:
    an eighth of the window, 31 for MiniLM), or (with ``enabled=False``) one chunk per document that the model
    truncates."""

    enabled: bool = True
    overlap: int | None = None

    def resolved(self, max_tokens: int) -> ChunkingPolicy:
        """This policy with a concrete overlap; :class:`InvalidInputError` if it does not fit the window."""
        overlap = max_tokens // 8 if self.overlap is None else self.overlap
        if not 0 <= overlap < max_tokens:
            raise InvalidInputError(f"chunk overlap must be between 0 and {max_tokens - 1} tokens, got {overlap}")
        return ChunkingPolicy(self.enabled, overlap)

    @classmethod
    def of(cls, manifest: dict[str, Any]) -> ChunkingPolicy:
        chunking = manifest["chunking"]
        return cls(enabled=chunking["enabled"], overlap=chunking["overlap"])


@dataclass
class Encoded:
    """The chunks of some documents (grouped by document, in their order), their float32 vectors, and the
    thumbnails of image documents by id."""

    chunks: list[Chunk]
    vectors: np.ndarray
    thumbnails: dict[str, bytes] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)


def encode_documents(
    documents: Sequence[Document], encoder: Encoder, chunking: ChunkingPolicy, progress: bool
) -> Encoded:
    if documents and documents[0].kind == "image":
        return _encode_images(documents, encoder, progress)
    start = time.perf_counter()
    chunks = chunks_of(documents, encoder, chunking)
    chunked = time.perf_counter()
    text_of = {d.id: d.text for d in documents}
    texts = [text_of[c.doc_id][c.start : c.end] for c in chunks]
    label = f"encoding {len(documents)} docs as {len(chunks)} chunks" if progress else False
    vectors = encoder.encode_text(texts, progress=label) if texts else np.zeros((0, encoder.dim), np.float32)
    timings = {"chunk": chunked - start, "encode": time.perf_counter() - chunked}
    return Encoded(chunks, vectors, timings=timings)


def _encode_images(documents: Sequence[Document], encoder: Encoder, progress: bool) -> Encoded:
    """One vector per image (no chunking); the chunk spans the whole snippet so that it is the hit's text."""
    start = time.perf_counter()
    parts = [np.zeros((0, encoder.dim), np.float32)]
    thumbnails: dict[str, bytes] = {}
    for first in range(0, len(documents), IMAGE_GROUP):
        group = documents[first : first + IMAGE_GROUP]
        pictures = [_pixels_of(d) for d in group]
        thumbnails.update((d.id, thumbnail(p)) for d, p in zip(group, pictures, strict=True))
        label = f"encoding images {first + 1}-{first + len(group)} of {len(documents)}" if progress else False
        parts.append(encoder.encode_image(pictures, progress=label))
    chunks = [Chunk(d.id, 0, len(d.text)) for d in documents]
    return Encoded(chunks, np.concatenate(parts), thumbnails, {"encode": time.perf_counter() - start})


def _pixels_of(document: Document):
    try:
        return load_image(document.source)
    except ValueError as err:  # the file changed or vanished since it was read
        raise InvalidInputError(f"{document.source}: {err}") from None


def chunks_of(documents: Sequence[Document], encoder: Encoder, chunking: ChunkingPolicy) -> list[Chunk]:
    if not chunking.enabled:
        return [Chunk(d.id, 0, len(d.text)) for d in documents]
    chunks = []
    for start in range(0, len(documents), TOKENIZE_GROUP):
        group = documents[start : start + TOKENIZE_GROUP]
        spans_of = encoder.token_spans_batch([d.text for d in group])
        for document, spans in zip(group, spans_of, strict=True):
            windows = chunk_spans(spans, len(document.text), encoder.max_tokens, chunking.overlap)
            chunks += [Chunk(document.id, a, b) for a, b in windows]
    return chunks


def content_of(documents: Sequence[Document], encoder: Encoder) -> str:
    """What an index of ``documents`` holds, "text" or "image"; one index never mixes them."""
    kinds = {d.kind for d in documents}
    if len(kinds) > 1:
        raise InvalidInputError("cannot index text documents and images together; build one index for each")
    content = kinds.pop()
    if content not in encoder.modalities:
        raise UnsupportedModalityError(
            f"encoder {encoder.name!r} cannot embed {content}s; it embeds {' and '.join(sorted(encoder.modalities))}"
        )
    return content


def check_content(manifest: dict[str, Any], documents: Sequence[Document], encoder: Encoder) -> None:
    expected = manifest["content"]
    if documents and content_of(documents, encoder) != expected:
        plural = {"text": "text documents", "image": "images"}
        raise InvalidInputError(
            f"index {manifest['name']!r} holds {plural[expected]}; cannot add {plural[documents[0].kind]} to it"
        )


def check_unique(documents: Sequence[Document]) -> None:
    """:class:`InvalidInputError` naming the first ids given twice in one write."""
    seen: set[str] = set()
    twice = [d.id for d in documents if d.id in seen or seen.add(d.id)]
    if twice:
        shown = ", ".join(repr(i) for i in dict.fromkeys(twice).keys() if i)[:200]
        raise InvalidInputError(f"{len(twice)} document id(s) given more than once in one write: {shown}")
