"""Durable file replacement, shared by every stage that writes files a crash must not leave half-written.

The pattern: write a temporary file beside the target, fsync it, ``os.replace`` it over the target (atomic on
POSIX), then fsync the folder so that the rename itself survives a power cut. A reader sees the old bytes or
the new ones, never a mix.
"""

from __future__ import annotations

import os
from pathlib import Path


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old bytes or the new ones, never a mix."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    sync_directory(path.parent)


def replace_durably(source: Path, target: Path) -> None:
    """``os.replace(source, target)`` after syncing ``source`` (a file, or a folder and every file under it),
    then sync ``target``'s folder: once this returns, ``target`` holds ``source``'s complete bytes on disk."""
    source, target = Path(source), Path(target)
    if source.is_dir():
        sync_tree(source)
    else:
        sync_file(source)
    os.replace(source, target)
    sync_directory(target.parent)


def sync_tree(folder: Path) -> None:
    """fsync every file under ``folder`` and every folder in it (``folder`` included)."""
    for root, _, names in os.walk(folder):
        for name in names:
            sync_file(Path(root) / name)
        sync_directory(Path(root))


def sync_file(path: Path) -> None:
    """fsync one file's bytes."""
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def sync_directory(directory: Path) -> None:
    """fsync a folder's entries (the names created, renamed or removed in it)."""
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
