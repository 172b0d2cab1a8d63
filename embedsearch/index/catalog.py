"""What indexes a home folder holds, and the manifest of each."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedsearch.index.storage import index_directory, list_index_names, read_manifest


def index_info(name: str, home: str | Path | None = None) -> dict[str, Any]:
    """The manifest of index ``name`` plus its ``path``; raises :class:`UnknownIndexError`."""
    directory = index_directory(name, home)
    return {**read_manifest(directory), "path": str(directory.resolve())}


def list_indexes(home: str | Path | None = None) -> list[dict[str, Any]]:
    """The manifests of every committed index in ``home``, by name."""
    return [index_info(name, home) for name in list_index_names(home)]
