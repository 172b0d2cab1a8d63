"""A tiny real open_clip model directory (random weights, a few hundred kB) for tests that need the real
image–text encoder path: ``make_tiny_open_clip_dir(tmp_path / "clip")`` then ``get_encoder(str(dir))``."""

from __future__ import annotations

import copy
from pathlib import Path

TINY_MODEL_CFG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
TINY_PREPROCESS_CFG = {"size": 32, "mean": [0.5, 0.5, 0.5], "std": [0.25, 0.25, 0.25]}


def make_tiny_open_clip_dir(
    path: Path, modalities: tuple[str, ...] = ("image", "text"), *, seed: int = 0, kind: str = "clip"
) -> Path:
    """Build a random tiny open_clip ``CLIP`` (``seed`` fixes its weights) and save it into ``path``."""
    import open_clip
    import torch

    from embedsearch.encoders.open_clip_model import save_open_clip_directory

    torch.manual_seed(seed)
    model = open_clip.model.CLIP(**copy.deepcopy(TINY_MODEL_CFG)).eval()
    path.mkdir(parents=True, exist_ok=True)
    save_open_clip_directory(model, TINY_MODEL_CFG, TINY_PREPROCESS_CFG, path, modalities=list(modalities), kind=kind)
    return path
