"""Adding (or rebuilding) the lexical side of an existing index: for indexes built before it existed.

One transaction of the document store fills the ``lexical`` table from every stored chunk; then the manifest,
replaced atomically, records the settings. A crash before that leaves the index as it was (dense only; a table
the manifest does not name is never read, and the next run rebuilds it).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from embedsearch.errors import InvalidInputError
from embedsearch.index.lexical import LexicalSettings
from embedsearch.index.storage import index_directory, read_manifest, store_name, write_lock, write_manifest
from embedsearch.index.store import Store

DEFAULT_LOCK_TIMEOUT = 300.0


def add_lexical_side(
    name: str,
    home: str | Path | None = None,
    settings: LexicalSettings | None = None,
    *,
    progress: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
) -> dict[str, Any]:
    """Give text index ``name`` a lexical (BM25) side with ``settings`` (default: English stemming and stopwords),
    replacing one it has; returns ``{"chunks": n, "lexical": settings}``. :class:`InvalidInputError` for an image
    index or unknown settings."""
    settings = (settings or LexicalSettings()).checked()
    directory = index_directory(name, home)
    read_manifest(directory)  # an unknown index fails here, without creating its folder
    with write_lock(directory, lock_timeout):
        manifest = read_manifest(directory)
        if manifest["content"] != "text":
            raise InvalidInputError(f"index {name!r} holds images: an image index has no lexical side")
        store = Store.open(directory / store_name(manifest["epoch"]), name, writable=True)
        try:
            with store.transaction():
                chunks = store.rebuild_lexical(settings, progress)
                state = store.state()
                store.set_state(generation=state["generation"] + 1)
            store.checkpoint()
        finally:
            store.close()
        write_manifest(directory, {**manifest, "lexical": settings.to_dict()})
    return {"chunks": chunks, "lexical": settings.to_dict()}
