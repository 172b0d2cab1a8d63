"""Image–text (or image-only) models in open_clip's ``local-dir:`` layout, and the :class:`Encoder` that loads them.

A directory our trainer writes (open_clip can load it too, apart from a Hugging Face text tower's path)::

    open_clip_config.json         {"model_cfg": {...}, "preprocess_cfg": {...}}
    open_clip_model.safetensors   the state dict of the whole open_clip model
    text_tower/                   only with a Hugging Face text tower: its config.json and tokenizer files
    embedsearch_encoder.json      {"format": "embedsearch-open-clip", "version": 1, "modalities": [...], "kind": ...}

With a Hugging Face text tower, ``text_cfg["hf_model_name"]`` and ``hf_tokenizer_name`` are stored as the relative
``"text_tower"`` and made absolute at load, so the directory can be moved. Loading never touches a hub: the
model is built from the config and every weight comes from the safetensors file.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from embedsearch.data.images import load_image
from embedsearch.encoders.base import Encoder
from embedsearch.errors import InvalidInputError, UnknownEncoderError

if TYPE_CHECKING:
    import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

FORMAT = "embedsearch-open-clip"
VERSION = 1
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
MARKER_FILE = "embedsearch_encoder.json"
TEXT_TOWER = "text_tower"
MODALITIES = ("image", "text")
KINDS = ("clip", "siglip", "simclr")
# what a text tower needs besides its weights (which are in the open_clip state dict)
TEXT_TOWER_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
_HF_PATH_KEYS = ("hf_model_name", "hf_tokenizer_name")


def is_open_clip_directory(path: str | Path) -> bool:
    """Whether ``path`` holds an embedsearch open_clip model (its marker file is there)."""
    return (Path(path) / MARKER_FILE).is_file()


def save_open_clip_directory(
    model: torch.nn.Module,
    model_cfg: dict,
    preprocess_cfg: dict,
    out: Path,
    *,
    modalities: list[str],
    kind: str,
    text_tower_source: Path | None = None,
) -> None:
    """Write ``model`` (an open_clip ``CLIP`` or ``CustomTextCLIP``) into the existing folder ``out``.

    ``model_cfg`` is the config the model was built from; with a Hugging Face text tower, pass the tower's model
    folder as ``text_tower_source``: its config and tokenizer files (not its weights) go to ``out/text_tower``.
    Raises ``ValueError`` for unknown ``modalities`` or ``kind``.
    """
    from safetensors.torch import save_file

    out = Path(out)
    _check_marker_values(modalities, kind)
    cfg = copy.deepcopy(model_cfg)
    text_cfg = cfg.get("text_cfg") or {}
    if text_tower_source is not None:
        _copy_text_tower(Path(text_tower_source), out / TEXT_TOWER)
    if "hf_model_name" in text_cfg:
        if text_tower_source is None and not (out / TEXT_TOWER / "config.json").is_file():
            raise ValueError("a Hugging Face text tower needs text_tower_source (its model folder)")
        text_cfg.update(dict.fromkeys(_HF_PATH_KEYS, TEXT_TOWER), hf_model_pretrained=False)
    save_file(_contiguous_state_dict(model), str(out / WEIGHTS_FILE))
    _write_json(out / CONFIG_FILE, {"model_cfg": cfg, "preprocess_cfg": preprocess_cfg})
    marker = {"format": FORMAT, "version": VERSION, "modalities": sorted(modalities), "kind": kind}
    _write_json(out / MARKER_FILE, marker)


def load_open_clip_directory(path: Path) -> tuple[torch.nn.Module, dict, dict, dict]:
    """``(model in eval mode on the CPU, model_cfg with absolute paths, preprocess_cfg, marker)`` of ``path``.

    Raises :class:`UnknownEncoderError` naming the file that is missing or broken.
    """
    path = Path(path).resolve()
    marker = _read_marker(path)
    config = _read_json(path / CONFIG_FILE)
    if not isinstance(config.get("model_cfg"), dict):
        raise UnknownEncoderError(f"{path / CONFIG_FILE}: no 'model_cfg' object")
    model_cfg = _absolute_text_tower(config["model_cfg"], path)
    model = _build_model(model_cfg, path)
    _load_weights(model, path / WEIGHTS_FILE)
    return model.eval(), model_cfg, dict(config.get("preprocess_cfg") or {}), marker


class OpenClipEncoder(Encoder):
    """An open_clip model directory (see :func:`save_open_clip_directory`) as an :class:`Encoder` on the CPU.

    Images (paths, bytes or PIL images) are decoded with alpha composited on white, as in training, then go
    through open_clip's eval transform; texts through open_clip's tokenizer (``max_tokens`` leaves room for
    the start and end tokens). Raises :class:`UnknownEncoderError` if the directory cannot be loaded.
    """

    batch_size = 32

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.name = str(self.path)
        self.model, self.model_cfg, self.preprocess_cfg, self.marker = load_open_clip_directory(self.path)
        self.dim = int(self.model_cfg["embed_dim"])
        self.modalities = frozenset(self.marker["modalities"])
        self.kind = self.marker["kind"]
        self.context_length = _context_length(self.model_cfg)
        self.max_tokens = self.context_length - 2

    def _fingerprint(self) -> str:
        return weights_fingerprint(self.path)

    @cached_property
    def transform(self) -> Any:
        """open_clip's eval transform: PIL image -> float tensor ``(3, size, size)``."""
        return eval_transform(self.model_cfg, self.preprocess_cfg)

    @cached_property
    def tokenizer(self) -> Any:
        """open_clip's tokenizer: list of texts -> int tensor ``(n, context_length)``."""
        return text_tokenizer(self.model_cfg)

    def _embed_images(self, images: list[Any]) -> np.ndarray:
        import torch

        pixels = torch.stack([self.transform(_decoded(image)) for image in images])
        with torch.inference_mode():
            return self.model.encode_image(pixels).float().numpy()

    def _embed_texts(self, texts: list[str]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            tokens = trim_padding(self.tokenizer(texts), pad_id(self.model))
            return self.model.encode_text(tokens).float().numpy()


def weights_fingerprint(path: Path) -> str:
    """sha256 of the directory's weights file (first 16 hex digits): computed without loading anything."""
    digest = hashlib.sha256()
    with (Path(path) / WEIGHTS_FILE).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def eval_transform(model_cfg: dict, preprocess_cfg: dict) -> Any:
    """open_clip's eval image transform for this config (``size`` defaults to the vision tower's image size),
    less its conversion to RGB: every image reaches it through :func:`_decoded`, which made it RGB already (a
    second ``convert("RGB")`` copied every query image for nothing)."""
    from open_clip.transform import MaybeConvertMode, PreprocessCfg, image_transform

    defaults = PreprocessCfg(size=model_cfg.get("vision_cfg", {}).get("image_size", 224))
    cfg = {**defaults.__dict__, **preprocess_cfg}
    transform = image_transform(
        cfg["size"],
        is_train=False,
        mean=tuple(cfg["mean"]),
        std=tuple(cfg["std"]),
        resize_mode=cfg["resize_mode"],
        interpolation=cfg["interpolation"],
        fill_color=cfg["fill_color"],
    )
    transform.transforms = [t for t in transform.transforms if not isinstance(t, MaybeConvertMode)]
    return transform


def trim_padding(tokens: torch.Tensor, pad: int | None) -> torch.Tensor:
    """``tokens`` ``(n, length)`` without the trailing columns that are padding in every row (``pad`` None: as
    is). Exact for a Hugging Face tower (padding is masked out and positions count from the start) and ten times
    cheaper for short captions padded to 77 tokens."""
    if pad is None:
        return tokens
    used = (tokens != pad).any(0).nonzero()
    return tokens[:, : int(used.max()) + 1] if len(used) else tokens


def pad_id(model: torch.nn.Module) -> int | None:
    """The padding token of a Hugging Face text tower; None for open_clip's, whose ``CLIP.encode_text`` needs
    the full context length."""
    config = getattr(getattr(model, "text", None), "config", None)
    return getattr(config, "pad_token_id", None)


def text_tokenizer(model_cfg: dict) -> Any:
    """open_clip's tokenizer for this config: ``HFTokenizer`` for a Hugging Face tower, else ``SimpleTokenizer``."""
    from open_clip.tokenizer import HFTokenizer, SimpleTokenizer

    text_cfg = model_cfg.get("text_cfg") or {}
    length = _context_length(model_cfg)
    if text_cfg.get("hf_tokenizer_name"):
        return HFTokenizer(text_cfg["hf_tokenizer_name"], context_length=length)
    return SimpleTokenizer(context_length=length)


def _context_length(model_cfg: dict) -> int:
    from open_clip.model import CLIPTextCfg

    return int((model_cfg.get("text_cfg") or {}).get("context_length", CLIPTextCfg.context_length))


def _decoded(image: Any) -> Any:
    """RGB with transparency on white (as in training); :class:`InvalidInputError` naming an unreadable image."""
    try:
        return load_image(image)
    except ValueError as err:
        source = image if isinstance(image, str | Path) else f"a {type(image).__name__} image"
        raise InvalidInputError(f"{source}: {err}") from None


def _check_marker_values(modalities: list[str], kind: str) -> None:
    if not modalities or "image" not in modalities or not set(modalities) <= set(MODALITIES):
        raise ValueError(f"modalities must be ['image'] or ['image', 'text'], got {modalities!r}")
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")


def _copy_text_tower(source: Path, target: Path) -> None:
    if not (source / "config.json").is_file():
        raise ValueError(f"text tower folder {source} has no config.json")
    target.mkdir(exist_ok=True)
    for name in TEXT_TOWER_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


def _contiguous_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict with every tensor contiguous and owning its memory (safetensors refuses shared storage)."""
    seen: set[int] = set()
    state = {}
    for key, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        pointer = tensor.untyped_storage().data_ptr()
        state[key] = tensor.clone().contiguous() if pointer in seen else tensor.contiguous()
        seen.add(pointer)
    return state


def _write_json(file: Path, value: dict) -> None:
    file.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _read_json(file: Path) -> dict:
    try:
        value = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UnknownEncoderError(f"{file}: missing") from None
    except (OSError, ValueError) as err:
        raise UnknownEncoderError(f"{file}: unreadable JSON ({err})") from None
    if not isinstance(value, dict):
        raise UnknownEncoderError(f"{file}: expected a JSON object")
    return value


def _read_marker(path: Path) -> dict:
    marker = _read_json(path / MARKER_FILE)
    if marker.get("format") != FORMAT or marker.get("version") != VERSION:
        raise UnknownEncoderError(
            f"{path / MARKER_FILE}: format {marker.get('format')!r} version {marker.get('version')!r}; "
            f"this embedsearch reads {FORMAT!r} version {VERSION}"
        )
    try:
        _check_marker_values(list(marker.get("modalities") or []), marker.get("kind"))
    except ValueError as err:
        raise UnknownEncoderError(f"{path / MARKER_FILE}: {err}") from None
    return marker


def _absolute_text_tower(model_cfg: dict, path: Path) -> dict:
    cfg = copy.deepcopy(model_cfg)
    text_cfg = cfg.get("text_cfg") or {}
    if "hf_model_name" in text_cfg:
        tower = path / TEXT_TOWER
        if not (tower / "config.json").is_file():
            raise UnknownEncoderError(f"{tower / 'config.json'}: missing (the Hugging Face text tower's config)")
        for key in _HF_PATH_KEYS:
            if text_cfg.get(key) == TEXT_TOWER:
                text_cfg[key] = str(tower)
        text_cfg["hf_model_pretrained"] = False  # the weights are in the state dict; never fetch them
    return cfg


def _build_model(model_cfg: dict, path: Path) -> torch.nn.Module:
    from open_clip.model import CLIP, CustomTextCLIP

    custom_text = "hf_model_name" in (model_cfg.get("text_cfg") or {})
    try:
        return (CustomTextCLIP if custom_text else CLIP)(**model_cfg)
    except (TypeError, ValueError, KeyError, OSError, RuntimeError) as err:
        raise UnknownEncoderError(f"{path / CONFIG_FILE}: cannot build the model ({_one_line(err)})") from None


def _load_weights(model: torch.nn.Module, file: Path) -> None:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if not file.is_file():
        raise UnknownEncoderError(f"{file}: missing")
    try:
        state = load_file(str(file))
    except (SafetensorError, OSError) as err:
        raise UnknownEncoderError(f"{file}: unreadable safetensors file ({_one_line(err)})") from None
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UnknownEncoderError(f"{file}: weights do not fit {CONFIG_FILE} ({_one_line(err)})") from None


def _one_line(err: Exception) -> str:
    text = " ".join(str(err).split())
    return text if len(text) <= 300 else text[:299] + "…"
