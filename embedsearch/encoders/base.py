"""The encoder contract: texts (and, for image encoders, images) in, L2-normalised float32 vectors out.

Batching, length-sorting, progress and normalisation live here once; a subclass only embeds one batch.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from functools import cached_property
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from embedsearch.errors import UnsupportedModalityError

_WORD = re.compile(r"\S+")


class Encoder(ABC):
    """Turns inputs into ``(n, dim)`` float32 arrays.

    Subclasses set ``name`` (how the registry finds it again: a registered name or a directory path),
    ``dim``, ``max_tokens`` and ``modalities``, and implement :meth:`_embed_texts`; image encoders also
    implement :meth:`_embed_images`.
    """

    name: str
    dim: int
    max_tokens: int = 256
    modalities: frozenset[str] = frozenset({"text"})
    batch_size: int = 32

    @cached_property
    def fingerprint(self) -> str:
        """A short digest of the weights: two encoders with the same fingerprint embed identically."""
        return self._fingerprint()

    @abstractmethod
    def _fingerprint(self) -> str: ...

    @abstractmethod
    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        """Embed one batch; any float dtype, not necessarily normalised."""

    def _embed_images(self, images: list[Any]) -> np.ndarray:
        raise UnsupportedModalityError(f"encoder {self.name!r} cannot embed images; it embeds {self._kinds()}")

    def token_spans_batch(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        """For each text, the character ``(start, end)`` spans of the tokens the model sees (for chunking)."""
        return [[m.span() for m in _WORD.finditer(text)] for text in texts]

    def encode_text(
        self,
        texts: Sequence[str],
        *,
        normalize: bool = True,
        progress: bool | str = False,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` array, L2-normalised unless ``normalize=False``.

        Texts are embedded longest first (less padding) and returned in input order.
        Raises :class:`UnsupportedModalityError` if this encoder has no text tower.
        """
        if "text" not in self.modalities:
            raise UnsupportedModalityError(f"encoder {self.name!r} cannot embed text; it embeds {self._kinds()}")
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = self._run_batches([texts[i] for i in order], self._embed_texts, batch_size, progress, "text")
        out = np.empty_like(vectors)
        out[order] = vectors
        return _normalized(out) if normalize else out

    def encode_image(
        self,
        images: Sequence[Any],
        *,
        normalize: bool = True,
        progress: bool | str = False,
        batch_size: int | None = None,
    ) -> np.ndarray:
        """Embed images (paths or PIL images) into a float32 ``(len(images), dim)`` array."""
        vectors = self._run_batches(list(images), self._embed_images, batch_size, progress, "image")
        return _normalized(vectors) if normalize else vectors

    def _run_batches(self, items: list, embed, batch_size: int | None, progress: bool | str, unit: str) -> np.ndarray:
        """Embed in batches; ``progress`` (True, or the bar's description) shows a bar with rate and ETA on stderr."""
        size = batch_size or self.batch_size
        parts = []
        with tqdm(
            total=len(items),
            unit=unit,
            disable=not progress,
            desc=progress if isinstance(progress, str) else f"encoding ({self.name})",
        ) as bar:
            for start in range(0, len(items), size):
                batch = items[start : start + size]
                parts.append(np.asarray(embed(batch), dtype=np.float32))
                bar.update(len(batch))
        return np.concatenate(parts) if parts else np.zeros((0, self.dim), dtype=np.float32)

    def _kinds(self) -> str:
        return " and ".join(sorted(self.modalities))

    def describe(self) -> dict[str, Any]:
        """The facts an index manifest records about its encoder."""
        return {
            "name": self.name,
            "fingerprint": self.fingerprint,
            "dim": self.dim,
            "max_tokens": self.max_tokens,
            "modalities": sorted(self.modalities),
        }


def _normalized(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return (vectors / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)
