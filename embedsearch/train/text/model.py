"""The model being trained: a sentence-transformers model driven by our own loop (tokenise, forward, save)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from embedsearch.errors import UnknownEncoderError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
MODEL_FILES = ("modules.json", "config_sentence_transformers.json")


class TextModel:
    """A sentence-transformers model loaded offline from ``reference`` (an encoder name such as ``minilm``,
    or a sentence-transformers directory), in fp32 on ``device``, in training mode.

    Raises :class:`UnknownEncoderError` if the reference is unknown or the directory cannot be loaded.
    """

    def __init__(self, reference: str, device: str = "cpu", max_length: int | None = None) -> None:
        self.reference = reference
        self.path = base_directory(reference)
        self.device = torch.device(device)
        self.st = _load(self.path, device, reference)
        self.base_max_length = self.st.max_seq_length
        if max_length:  # never longer than the base reads (a small model may read fewer than the default 128)
            self.st.max_seq_length = min(max_length, self.base_max_length or max_length)
        self.dim = int(self.st.get_embedding_dimension())
        self.st.train()

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.st.parameters() if p.requires_grad]

    def embed(self, texts: list[str]) -> torch.Tensor:
        """Float ``(len(texts), dim)`` embeddings (not normalised), with a graph if gradients are enabled."""
        features = _tokenize(self.st, texts)
        features = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in features.items()}
        return self.st(features)["sentence_embedding"]

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Normalised float32 ``(len(texts), dim)`` embeddings in eval mode (no dropout), longest texts first."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        order = np.argsort([-len(t) for t in texts], kind="stable")
        parts = []
        self.st.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(texts), batch_size):
                    chunk = [texts[i] for i in order[start : start + batch_size]]
                    parts.append(F.normalize(self.embed(chunk).float(), dim=-1).cpu().numpy())
        finally:
            self.st.train()
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        out[order] = np.concatenate(parts)
        return out

    def save(self, directory: Path) -> None:
        """Write a sentence-transformers model directory (``SentenceTransformer.save``) with the base model's
        maximum sequence length: a shorter ``max_length`` only made training cheaper."""
        training_length, self.st.max_seq_length = self.st.max_seq_length, self.base_max_length
        try:
            self.st.save(str(directory))
        finally:
            self.st.max_seq_length = training_length


def base_directory(reference: str) -> Path:
    """The sentence-transformers directory a base reference names: a path, or a registered encoder whose
    model lives in a directory (``minilm``). Raises :class:`UnknownEncoderError`."""
    path = Path(reference)
    if path.is_dir():
        if not any((path / name).is_file() for name in MODEL_FILES):
            raise UnknownEncoderError(
                f"base model {reference!r} is a folder but not a sentence-transformers model (no modules.json)"
            )
        return path.resolve()
    from embedsearch.encoders import get_encoder

    directory = getattr(get_encoder(reference), "path", None)
    if directory is None:
        raise UnknownEncoderError(f"base model {reference!r} is not a sentence-transformers model that can be trained")
    return Path(directory)


def _load(path: Path, device: str, reference: str):
    import transformers
    from sentence_transformers import SentenceTransformer

    transformers.utils.logging.disable_progress_bar()
    logging.getLogger("sentence_transformers").setLevel(logging.WARNING)
    try:
        return SentenceTransformer(str(path), device=device, local_files_only=True)
    except Exception as err:  # a broken directory fails in many ways (OSError, ValueError, KeyError, ...)
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UnknownEncoderError(f"cannot load base model {reference!r}: {reason}") from err


def _tokenize(st, texts: list[str]) -> dict:
    # sentence-transformers 6 renamed ``tokenize`` to ``preprocess``; 5.x has only ``tokenize``
    preprocess = getattr(st, "preprocess", None) or st.tokenize
    return preprocess(texts)
