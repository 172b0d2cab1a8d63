"""Removing what no committed state refers to: files of segments a compaction replaced, files a crashed writer
left behind. Runs under the writer's lock; a compaction's unfinished files (``*.tmp``) are left alone while it
runs."""

from __future__ import annotations

from pathlib import Path

from embedsearch.index.storage import EPOCH_FILE, try_lock
from embedsearch.index.store import Store

COMPACT_LOCK = ".compact.lock"


def referenced_files(store: Store) -> set[str]:
    """The file names the store's committed state needs: itself, its segments, their raw vectors, quantizers."""
    names = {store.path.name, f"{store.path.name}-wal", f"{store.path.name}-shm"}
    for info in store.segments():
        names |= {info.file, *(n for n in (info.raw, info.quantizer) if n)}
    quantizer = store.state().get("quantizer")
    if quantizer:
        names.add(quantizer)
    return names


def remove_unreferenced(directory: Path, store: Store) -> list[str]:
    """Delete the current epoch's files that nothing refers to; returns their names."""
    epoch = EPOCH_FILE.fullmatch(store.path.name).group(1)
    keep = referenced_files(store)
    lock = try_lock(directory, COMPACT_LOCK)  # None while a compaction runs: its *.tmp files are in use
    removed = []
    try:
        for path in directory.iterdir():
            unfinished = path.name.endswith(".tmp")
            match = EPOCH_FILE.fullmatch(path.name.removesuffix(".tmp"))
            if not match or match.group(1) != epoch or path.name in keep or (unfinished and lock is None):
                continue
            path.unlink(missing_ok=True)
            removed.append(path.name)
    finally:
        if lock is not None:
            lock.release()
    return removed


def remove_unfinished(directory: Path, epoch: int) -> list[str]:
    """Delete the epoch's ``*.tmp`` files: a compaction's that was killed. Call with both the compaction's lock
    (no other compaction runs) and the writer's (no writer is between writing a file and renaming it)."""
    removed = []
    for path in directory.iterdir():
        match = EPOCH_FILE.fullmatch(path.name.removesuffix(".tmp"))
        if path.name.endswith(".tmp") and match and int(match.group(1)) == epoch:
            path.unlink(missing_ok=True)
            removed.append(path.name)
    return removed
