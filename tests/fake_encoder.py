"""A small deterministic encoder for tests, registered through the real registry as ``fake`` (and
``fake-other``, same dimension but different weights, for mismatch tests).

Import it (or set ``EMBEDSEARCH_PLUGINS=tests.fake_encoder`` for a subprocess) to register it. Each word maps
to a fixed pseudo-random unit vector; a text is the sum of its words' vectors, so texts sharing words are near.

``FAKE_ENCODER_DELAY`` (seconds, read when an encoder is made) makes every batch sleep that long, so that a
subprocess test can kill or race a writer in the middle of its work (tests/index/test_crash.py).
"""

from __future__ import annotations

import hashlib
import os
import re
import time

import numpy as np

from embedsearch.encoders import Encoder, register_encoder

DIM = 32
DELAY_VARIABLE = "FAKE_ENCODER_DELAY"
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
        self.delay = float(os.environ.get(DELAY_VARIABLE) or 0)

    def _fingerprint(self) -> str:
        return hashlib.sha256(f"fake-encoder-{self.seed}".encode()).hexdigest()[:16]

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        return np.stack([self._embed(text) for text in texts])

    def _embed(self, text: str) -> np.ndarray:
        vector = np.zeros(DIM, dtype=np.float32)
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(f"{self.seed}:{word}".encode(), digest_size=8).digest()
            vector += np.random.default_rng(int.from_bytes(digest, "little")).standard_normal(DIM).astype(np.float32)
        return vector if vector.any() else np.ones(DIM, dtype=np.float32)


register_encoder("fake", lambda: FakeEncoder())
register_encoder("fake-other", lambda: FakeEncoder("fake-other", seed="v2"))


COLOURS = {"red": (220, 30, 30), "green": (30, 180, 30), "blue": (30, 30, 220), "yellow": (230, 220, 30)}


class FakeImageTextEncoder(FakeEncoder):
    """Text as :class:`FakeEncoder`; an image as the word of its nearest primary colour, so that a red picture
    lands next to the text "red" (a deterministic stand-in for a CLIP model in tests)."""

    modalities = frozenset({"text", "image"})

    def _embed_images(self, images: list) -> np.ndarray:
        return np.stack([self._embed(_colour_word(image)) for image in images])


def _colour_word(image) -> str:
    from PIL import Image

    picture = image if isinstance(image, Image.Image) else Image.open(image)
    mean = np.asarray(picture.convert("RGB"), dtype=np.float32).reshape(-1, 3).mean(axis=0)
    return min(COLOURS, key=lambda name: float(np.sum((mean - np.array(COLOURS[name])) ** 2)))


register_encoder("fake-clip", lambda: FakeImageTextEncoder("fake-clip", seed="v1"))
