"""Image towers by name, and the open_clip model built around one.

Image towers come from a registry of configs keyed by name, as in open_clip: embedsearch's own small ones
(:data:`OUR_MODEL_CONFIGS`, sized to train on a CPU at 32 or 64 px) or any of open_clip's (``ViT-B-32``,
``RN50``, ...). Only the named config's ``embed_dim`` and ``vision_cfg`` are used, and the size of its text
transformer when the text tower is open_clip's. :func:`build_open_clip` makes the model (``CLIP``, or
``CustomTextCLIP`` for a Hugging Face text tower) that the CLIP and SimCLR trainers train.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from embedsearch.errors import InvalidInputError

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


def build_open_clip(name: str, model_cfg: dict[str, Any]) -> BuiltModel:
    """The open_clip model of ``model_cfg`` (random image tower; a Hugging Face text tower gets its pretrained
    weights). Raises :class:`InvalidInputError` naming config ``name`` if open_clip cannot build it."""
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
