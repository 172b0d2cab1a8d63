"""Index folders on disk: names, manifests, the writer's lock, and atomic generation switches.

Layout of ``<home>/<name>/``::

    manifest.json          the truth: format version, encoder, dim, metric, spec, counts, generation, files
    docs.<gen>.sqlite      document store of generation <gen> (never changed once committed)
    vectors.<gen>.faiss    faiss index of generation <gen> (never changed once committed)
    .lock                  held by the one writer at a time

A writer builds generation g+1 beside g, syncs it, then replaces manifest.json atomically (write a temporary
file, fsync, rename, fsync the folder). A crash at any moment leaves the manifest naming complete files: the
old state before the rename, the new one after. Generation g is kept for readers still opening it; older
generations and files of crashed writers are removed by the next writer.
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

log = logging.getLogger("embedsearch")
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HOME_VARIABLE = "EMBEDSEARCH_HOME"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_GENERATION_FILE = re.compile(r"^(docs|vectors)\.(\d+)\.(sqlite|faiss)(\.tmp|-journal|-wal|-shm)?$")


def resolve_home(home: str | Path | None = None) -> Path:
    """``home``, else ``$EMBEDSEARCH_HOME``, else ``./indexes``."""
    return Path(home or os.environ.get(HOME_VARIABLE) or "indexes")


def index_directory(name: str, home: str | Path | None = None) -> Path:
    """The folder of index ``name``; raises :class:`InvalidInputError` for a name that is not a safe folder name."""
    if not _NAME.match(name or ""):
        raise InvalidInputError(
            f"invalid index name {name!r}: use letters, digits, '.', '_' and '-', starting with a letter or digit"
        )
    return resolve_home(home) / name


def list_index_names(home: str | Path | None = None) -> list[str]:
    """Names of the committed indexes in ``home`` (folders with a manifest), sorted."""
    root = resolve_home(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST).is_file() and _NAME.match(p.name))


def read_manifest(directory: Path) -> dict[str, Any]:
    """The manifest of a committed index; :class:`UnknownIndexError` if there is none."""
    try:
        manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        known = ", ".join(list_index_names(directory.parent)) or "none"
        raise UnknownIndexError(f"no index named {directory.name!r} in {directory.parent} (known: {known})") from None
    except (OSError, json.JSONDecodeError) as err:
        raise CorruptIndexError(f"unreadable manifest {directory / MANIFEST}: {err}") from err
    manifest["name"] = directory.name  # the folder's name wins: an index folder may be renamed or copied
    manifest.setdefault("content", "text")  # indexes written before image indexes existed hold text
    if manifest.get("format_version") != FORMAT_VERSION:
        raise CorruptIndexError(
            f"index {directory.name!r} has format version {manifest.get('format_version')!r}; "
            f"this embedsearch reads version {FORMAT_VERSION}"
        )
    return manifest


def generation_paths(directory: Path, generation: int) -> tuple[Path, Path]:
    """``(document store, faiss file)`` of one generation."""
    return directory / f"docs.{generation}.sqlite", directory / f"vectors.{generation}.faiss"


@contextmanager
def write_lock(directory: Path, timeout: float) -> Iterator[None]:
    """Hold the index's writer lock; waits up to ``timeout`` seconds, then :class:`IndexLockedError`."""
    directory.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(directory / ".lock"))
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


def commit_manifest(directory: Path, manifest: dict[str, Any]) -> None:
    """Atomically make ``manifest`` (and so its generation's files) the current state, then tidy up."""
    manifest = {**manifest, "format_version": FORMAT_VERSION, "updated": now()}
    write_atomically(directory / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True).encode())
    remove_stale_files(directory, keep={manifest["generation"], manifest["generation"] - 1})


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a reader sees the old bytes or the new ones, never a mix."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
    sync_directory(path.parent)


def sync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())


def sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_stale_files(directory: Path, keep: set[int]) -> None:
    """Delete generation files not in ``keep`` (old generations, leftovers of crashed writers)."""
    for path in directory.iterdir():
        match = _GENERATION_FILE.match(path.name)
        if match and (int(match.group(2)) not in keep or match.group(4)):
            path.unlink(missing_ok=True)


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
