"""A small deterministic encoder for tests, registered through the real registry as ``fake`` (and
``fake-other``, same dimension but different weights, for mismatch tests).

Import it (or set ``EMBEDSEARCH_PLUGINS=tests.fake_encoder`` for a subprocess) to register it. Each word maps
to a fixed pseudo-random unit vector; a text is the sum of its words' vectors, so texts sharing words are near.
"""

from __future__ import annotations

import hashlib
import re

import numpy as np

from embedsearch.encoders import Encoder, register_encoder

DIM = 32
_WORD = re.compile(r"\w+")


class FakeEncoder(Encoder):
    """Bag of hashed words; 12 tokens per chunk so that chunking is exercised by short test texts."""

    dim = DIM
    max_tokens = 12
    batch_size = 8

    def __init__(self, name: str = "fake", seed: str = "v1") -> None:
        self.name = name
        self.seed = seed
        self.calls = 0

    def _fingerprint(self) -> str:
        return hashlib.sha256(f"fake-encoder-{self.seed}".encode()).hexdigest()[:16]

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        return np.stack([self._embed(text) for text in texts])

    def _embed(self, text: str) -> np.ndarray:
        vector = np.zeros(DIM, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(f"{self.seed}:{word}".encode(), digest_size=8).digest()
            vector += np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(DIM).astype(np.float32)
        return vector if vector.any() else np.ones(DIM, dtype=np.float32)


register_encoder("fake", lambda: FakeEncoder())
register_encoder("fake-other", lambda: FakeEncoder("fake-other", seed="v2"))
