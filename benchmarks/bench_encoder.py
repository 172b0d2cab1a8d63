"""A fast deterministic 384-d encoder for storage benchmarks, registered through the real registry as ``bench-384``.

Import it (or name it in ``$EMBEDSEARCH_PLUGINS``) to register it. A text's vector is one of ``CLUSTERS`` fixed
random centres (chosen by the text's CRC-32) plus noise seeded by the same CRC in a shared 32-dimensional
subspace, normalised: clustered like sentence embeddings, so that approximate indexes behave as they do on real
data, and about 100,000 texts/s on one core, so that a benchmark measures storage, not a model.
"""

from __future__ import annotations

import hashlib
import zlib

import numpy as np

from embedsearch.encoders import Encoder, register_encoder

DIM = 384
CLUSTERS = 1000
LATENT = 32
NOISE = 0.7
_rng = np.random.default_rng(20261201)
_CENTRES = _rng.standard_normal((CLUSTERS, DIM)).astype(np.float32)
_CENTRES /= np.linalg.norm(_CENTRES, axis=1, keepdims=True)
_BASIS = np.linalg.qr(_rng.standard_normal((DIM, LATENT)))[0].T.astype(np.float32)  # (LATENT, DIM), orthonormal


class BenchEncoder(Encoder):
    name = "bench-384"
    dim = DIM
    max_tokens = 512
    batch_size = 4096

    def _fingerprint(self) -> str:
        return hashlib.sha256(b"bench-384-v1").hexdigest()[:16]

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        return vectors_of(texts)

    def token_spans_batch(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        return [[(0, len(t))] for t in texts]  # one token: a benchmark document is always one chunk


def vectors_of(texts: list[str]) -> np.ndarray:
    """The (n, 384) float32 vectors of ``texts`` (not normalised; the encoder base class normalises)."""
    codes = np.array([zlib.crc32(t.encode("utf-8")) for t in texts], dtype=np.uint64)
    noise = np.empty((len(texts), LATENT), dtype=np.float32)
    for row, code in enumerate(codes.tolist()):
        noise[row] = np.random.default_rng(code).standard_normal(LATENT)
    return _CENTRES[codes % CLUSTERS] + NOISE / np.sqrt(LATENT) * (noise @ _BASIS)


register_encoder("bench-384", BenchEncoder)
