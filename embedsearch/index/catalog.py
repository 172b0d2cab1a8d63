"""What indexes a home folder holds, and what each is and holds (without reading its segments)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedsearch.errors import CorruptIndexError, EmbedsearchError
from embedsearch.index.reader import describe
from embedsearch.index.storage import index_directory, list_index_names, read_manifest, store_name
from embedsearch.index.store import SegmentInfo, Store


def index_info(name: str, home: str | Path | None = None) -> dict[str, Any]:
    """The manifest of index ``name`` with its committed state (counts, generation, segments with their live and
    tombstoned chunks), ``path`` and ``disk_bytes``. Raises :class:`UnknownIndexError`, or
    :class:`CorruptIndexError` naming the broken file."""
    directory = index_directory(name, home)
    manifest = read_manifest(directory)
    store = Store.open(directory / store_name(manifest["epoch"]), name)
    try:
        with store.reading():
            store.check_counts()
            segments = store.segments()
            info = describe(manifest, store.state(), segments, store.tombstone_counts())
    finally:
        store.close()
    check_segment_files(directory, segments, name)
    return {**info, "path": str(directory.resolve()), "disk_bytes": disk_bytes(directory)}


def check_segment_files(directory: Path, segments: list[SegmentInfo], name: str) -> None:
    """:class:`CorruptIndexError` for a segment file that is missing or not of its committed size (a cheap check:
    reading a segment also checks its sha256)."""
    for info in segments:
        path = directory / info.file
        size = path.stat().st_size if path.is_file() else None
        if size != info.bytes:
            state = "missing" if size is None else f"{size} bytes, {info.bytes} were committed (truncated?)"
            raise CorruptIndexError(f"index {name!r}: segment file {path} is {state}")


def list_indexes(home: str | Path | None = None, *, broken: bool = False) -> list[dict[str, Any]]:
    """The description of every index in ``home``, by name. An index that cannot be read is left out, or with
    ``broken=True`` listed as ``{"name", "broken": message}``, so that one broken index hides no other."""
    listed = []
    for name in list_index_names(home):
        try:
            listed.append(index_info(name, home))
        except EmbedsearchError as err:
            if broken:
                listed.append({"name": name, "broken": str(err)})
    return listed


def disk_bytes(directory: Path) -> int:
    """Bytes the index's files take (the lock files aside)."""
    return sum(p.stat().st_size for p in directory.iterdir() if p.is_file() and not p.name.startswith("."))


def index_stamp(name: str, home: str | Path | None = None) -> tuple[int, ...]:
    """A value that changes whenever any file of index ``name`` is written, renamed or removed (to tell whether a
    broken index may have been repaired, without reading it)."""
    directory = index_directory(name, home)
    try:
        return tuple(sorted(p.stat().st_mtime_ns for p in directory.iterdir())) + (directory.stat().st_mtime_ns,)
    except OSError:
        return ()
