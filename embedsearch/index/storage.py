"""Index folders on disk: names, the manifest, the writer's lock, file names and atomic file replacement.

Layout of ``<home>/<name>/`` (format 2)::

    manifest.json              what the index is: format version, encoder, dim, metric, spec, search knobs,
                               chunking, content, compaction policy, lexical settings (or null), created, and
                               the epoch whose store is current
    store.<epoch>.sqlite       the document store (SQLite, WAL): documents, chunks, the metadata index, image
                               thumbnails, the segment list, tombstones, the committed state (generation, counts)
                               and the lexical side (FTS5)
    seg.<epoch>.<n>.faiss      an immutable segment: a faiss index of the spec's type over some chunks
    seg.<epoch>.<n>.f32.npy    its raw float32 vectors, only for specs that compress them (PQ, SQ, ...)
    quantizer.<epoch>.<n>.faiss the trained, empty index that IVF/PQ segments of this epoch are built from
    .lock / .compact.lock      one writer at a time / one compaction at a time

Two commit points, both atomic:

- a write (add, upsert, delete, compaction) commits one SQLite transaction that records its new segment,
  tombstones, rows and generation together; its segment file is complete and synced before that;
- a build (or ``--overwrite``) writes a whole new epoch beside the current one and then replaces
  ``manifest.json`` (temporary file, fsync, rename, fsync the folder).

A crash at any moment leaves the last committed state; what a crashed writer left behind (files of another
epoch, segment files no transaction recorded) is removed by the next writer.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from embedsearch.errors import CorruptIndexError, IndexLockedError, InvalidInputError, UnknownIndexError
from embedsearch.files import write_atomically

log = logging.getLogger("embedsearch")
FORMAT_VERSION = 2
MANIFEST = "manifest.json"
HOME_VARIABLE = "EMBEDSEARCH_HOME"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# files an index folder may hold (the lock files aside); group 1: the epoch, group 2: a segment or quantizer number
EPOCH_FILE = re.compile(r"(?:store|seg|quantizer)\.(\d+)(?:\.(\d+))?\.(?:sqlite|faiss|f32\.npy)(?:-wal|-shm|-journal)?")
FORMAT_1_FILE = re.compile(r"(?:docs|vectors)\.\d+\.(?:sqlite|faiss)(?:\.tmp|-journal|-wal|-shm)?")

# what a manifest must hold, and the type of each field
REQUIRED_FIELDS: dict[str, type | tuple[type, ...]] = {
    "format_version": int,
    "content": str,
    "encoder": dict,
    "dim": int,
    "metric": str,
    "spec": str,
    "search": dict,
    "chunking": dict,
    "epoch": int,
    "created": str,
}
ENCODER_FIELDS: dict[str, type | tuple[type, ...]] = {"name": str, "fingerprint": str, "dim": int, "modalities": list}


def resolve_home(home: str | Path | None = None) -> Path:
    """``home``, else ``$EMBEDSEARCH_HOME``, else ``./indexes``; :class:`InvalidInputError` if it exists and is
    not a folder."""
    path = Path(home or os.environ.get(HOME_VARIABLE) or "indexes")
    if path.exists() and not path.is_dir():
        raise InvalidInputError(f"the index home {str(path)!r} is not a folder")
    return path


def index_directory(name: str, home: str | Path | None = None) -> Path:
    """The folder of index ``name``; raises :class:`InvalidInputError` for a name that is not a safe folder name."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise InvalidInputError(
            f"invalid index name {name!r}: use up to 128 letters, digits, '.', '_' and '-', starting with a "
            "letter or digit"
        )
    return resolve_home(home) / name


def list_index_names(home: str | Path | None = None) -> list[str]:
    """Names of the indexes in ``home`` (folders with a manifest), sorted."""
    root = resolve_home(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _NAME.fullmatch(p.name) and (p / MANIFEST).is_file())


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of an index, checked: :class:`UnknownIndexError` if there is none, :class:`CorruptIndexError`
    (naming the index and the file) if it is unreadable, lacks a field, has a field of the wrong type, or is of
    another format version."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(list_index_names(directory.parent)) or "none"
        raise UnknownIndexError(f"no index named {directory.name!r} in {directory.parent} (known: {known})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CorruptIndexError(f"index {directory.name!r}: unreadable manifest {path}: {err}") from None
    if not isinstance(manifest, dict):
        raise CorruptIndexError(f"index {directory.name!r}: manifest {path} is not a JSON object")
    _check_version(directory, manifest)
    _check_fields(directory, manifest, REQUIRED_FIELDS, "")
    _check_fields(directory, manifest["encoder"], ENCODER_FIELDS, "encoder.")
    if not isinstance(manifest.get("lexical"), dict | None):
        raise CorruptIndexError(f"index {directory.name!r}: manifest {path} field 'lexical' is not an object or null")
    manifest["name"] = directory.name  # the folder's name wins: an index folder may be renamed or copied
    return manifest


def _check_version(directory: Path, manifest: dict[str, Any]) -> None:
    version = manifest.get("format_version")
    if version == 1:
        raise CorruptIndexError(
            f"index {directory.name!r} is in format 1 (whole-copy generations); upgrade it in place with "
            f"`embedsearch index compact {directory.name}`"
        )
    if version != FORMAT_VERSION:
        raise CorruptIndexError(
            f"index {directory.name!r} has format version {version!r}; this embedsearch reads version "
            f"{FORMAT_VERSION} (and upgrades version 1 with `embedsearch index compact`)"
        )


def _check_fields(directory: Path, record: dict[str, Any], fields: dict[str, Any], prefix: str) -> None:
    for field, kind in fields.items():
        value = record.get(field)
        if value is None:
            raise CorruptIndexError(f"index {directory.name!r}: manifest {directory / MANIFEST} has no {prefix}{field}")
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise CorruptIndexError(
                f"index {directory.name!r}: manifest {directory / MANIFEST} field {prefix}{field} is "
                f"{type(value).__name__}, expected {getattr(kind, '__name__', kind)}"
            )


def write_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomically make ``manifest`` the index's manifest (the commit point of a build)."""
    record = {key: value for key, value in manifest.items() if key != "name"}
    record["format_version"] = FORMAT_VERSION
    write_atomically(directory / MANIFEST, json.dumps(record, indent=2, sort_keys=True).encode())


def store_name(epoch: int) -> str:
    return f"store.{epoch}.sqlite"


def segment_name(epoch: int, segment: int) -> str:
    return f"seg.{epoch}.{segment}.faiss"


def raw_vectors_name(epoch: int, segment: int) -> str:
    return f"seg.{epoch}.{segment}.f32.npy"


def quantizer_name(epoch: int, number: int) -> str:
    return f"quantizer.{epoch}.{number}.faiss"


@contextmanager
def file_lock(directory: Path, timeout: float, lock_name: str = ".lock") -> Iterator[None]:
    """Hold one of the index's locks; waits up to ``timeout`` seconds, then :class:`IndexLockedError`."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / lock_name))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("index %r is being written by another process; waiting up to %gs", directory.name, timeout)
        try:
            lock.acquire(timeout=timeout)
        except Timeout:
            raise IndexLockedError(
                f"index {directory.name!r} is still being written by another process after {timeout:g}s; "
                "try again later or raise --lock-timeout"
            ) from None
    try:
        yield
    finally:
        lock.release()


def write_lock(directory: Path, timeout: float) -> Any:
    """The lock every writer of the index holds while it commits."""
    return file_lock(directory, timeout)


def try_lock(directory: Path, lock_name: str) -> FileLock | None:
    """The lock ``lock_name`` of the index, acquired, or ``None`` if another process holds it."""
    lock = FileLock(str(directory / lock_name))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return None
    return lock


def remove_other_epochs(directory: Path, epoch: int) -> None:
    """Delete the files of every epoch but ``epoch`` (an overwritten index, a crashed build) and of format 1."""
    for path in directory.iterdir():
        match = EPOCH_FILE.fullmatch(path.name.removesuffix(".tmp"))
        if (match and int(match.group(1)) != epoch) or FORMAT_1_FILE.fullmatch(path.name):
            path.unlink(missing_ok=True)


def epoch_files(directory: Path, epoch: int) -> list[Path]:
    """The files of ``epoch`` in the folder (store, segments, quantizers), committed or not."""
    files = []
    for path in directory.iterdir():
        match = EPOCH_FILE.fullmatch(path.name)
        if match and int(match.group(1)) == epoch:
            files.append(path)
    return files


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
