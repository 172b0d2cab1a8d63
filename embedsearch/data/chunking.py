"""Split long texts into overlapping windows of tokens that fit an encoder's maximum sequence length.

Chunking is pure: it takes the character spans of a text's tokens (from whatever tokenizer the encoder uses)
and returns character spans of chunks, so a chunk's text is always a slice of the original document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Chunk:
    """The characters ``text[start:end]`` of document ``doc_id``."""

    doc_id: str
    start: int
    end: int


def chunk_spans(
    token_spans: Sequence[tuple[int, int]], text_length: int, max_tokens: int, overlap: int
) -> list[tuple[int, int]]:
    """Character spans of windows of at most ``max_tokens`` tokens, consecutive windows sharing ``overlap``.

    ``token_spans`` are ``(start, end)`` character offsets of the tokens in order. A text of at most
    ``max_tokens`` tokens (or with no tokens) is one span covering the whole text. Raises ``ValueError`` if
    ``overlap`` is not smaller than ``max_tokens``.
    """
    if max_tokens < 1 or not 0 <= overlap < max_tokens:
        raise ValueError(f"need 0 <= overlap ({overlap}) < max_tokens ({max_tokens})")
    if len(token_spans) <= max_tokens:
        return [(0, text_length)]
    stride = max_tokens - overlap
    spans = []
    for first in range(0, len(token_spans), stride):
        last = min(first + max_tokens, len(token_spans)) - 1
        spans.append((token_spans[first][0], token_spans[last][1]))
        if last == len(token_spans) - 1:
            break
    return spans
