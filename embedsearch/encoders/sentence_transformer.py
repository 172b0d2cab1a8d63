"""Any sentence-transformers model directory as an :class:`Encoder`, loaded offline."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from embedsearch.encoders.base import Encoder
from embedsearch.runtime import bf16_supported

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


class SentenceTransformerEncoder(Encoder):
    """A sentence-transformers model read from ``path`` (never from a hub).

    ``precision`` is ``"bf16"`` (weights in bfloat16: 1.5-1.8x faster on CPUs with avx512-bf16, cosine to
    fp32 >= 0.9999), ``"fp32"``, or ``"auto"`` (bf16 where the CPU supports it, else fp32; the environment
    variable ``EMBEDSEARCH_PRECISION`` overrides it).
    """

    def __init__(self, path: str | Path, name: str | None = None, precision: str = "auto") -> None:
        import torch
        import transformers
        from sentence_transformers import SentenceTransformer

        transformers.utils.logging.disable_progress_bar()
        self.path = Path(path).resolve()
        self.name = name or str(self.path)
        self.model = SentenceTransformer(str(self.path), device="cpu", local_files_only=True)
        self.precision = _resolve_precision(precision)
        if self.precision == "bf16":
            self.model.to(torch.bfloat16)
        self.dim = int(self.model.get_embedding_dimension())
        self._tokenizer = self.model.tokenizer
        # chunks must fit with the special tokens ([CLS], [SEP]) that the model adds
        self.max_tokens = int(self.model.max_seq_length) - self._tokenizer.num_special_tokens_to_add()

    def _fingerprint(self) -> str:
        return fingerprint_directory(self.path)

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            vectors = self.model.encode(texts, batch_size=len(texts), convert_to_tensor=True, show_progress_bar=False)
        return vectors.float().numpy()

    def token_spans_batch(self, texts: list[str]) -> list[list[tuple[int, int]]]:
        encoded = self._tokenizer(texts, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return [[tuple(span) for span in spans] for spans in encoded["offset_mapping"]]


def _resolve_precision(precision: str) -> str:
    choice = os.environ.get("EMBEDSEARCH_PRECISION", precision).lower()
    if choice == "auto":
        return "bf16" if bf16_supported() else "fp32"
    if choice not in ("bf16", "fp32"):
        raise ValueError(f"precision must be auto, bf16 or fp32, not {choice!r}")
    return choice


def fingerprint_directory(path: Path) -> str:
    """sha256 over the relative names and bytes of every file under ``path`` (first 16 hex digits)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]
