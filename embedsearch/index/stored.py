"""An index opened for reading: its manifest, faiss index and document store, all of one generation."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from embedsearch.errors import CorruptIndexError
from embedsearch.index import factory
from embedsearch.index.docstore import DocStore
from embedsearch.index.factory import SearchKnobs
from embedsearch.index.storage import generation_paths, index_directory, read_manifest


class StoredIndex:
    """A read-only snapshot of one index generation. Writers never change the files it has open."""

    def __init__(self, directory: Path, manifest: dict[str, Any], vectors: faiss.Index, docs: DocStore) -> None:
        self.directory = directory
        self.manifest = manifest
        self.vectors = vectors
        self.docs = docs

    @classmethod
    def open(cls, name: str, home: str | Path | None = None) -> StoredIndex:
        """Open the current generation of index ``name``.

        Raises :class:`UnknownIndexError` if there is no such index, :class:`CorruptIndexError` if its files
        are missing or unreadable.
        """
        directory = index_directory(name, home)
        for _attempt in range(3):
            manifest = read_manifest(directory)
            try:
                return cls._open_generation(directory, manifest)
            except (FileNotFoundError, sqlite3.OperationalError, CorruptIndexError):
                if read_manifest(directory)["generation"] == manifest["generation"]:
                    raise
                # writers moved on two generations while we read and removed these files: read the new manifest
        raise CorruptIndexError(f"index {name!r}: files named by its manifest keep disappearing in {directory}")

    @classmethod
    def _open_generation(cls, directory: Path, manifest: dict[str, Any]) -> StoredIndex:
        store_path, faiss_path = generation_paths(directory, manifest["generation"])
        if not store_path.exists() or not faiss_path.exists():
            raise FileNotFoundError(store_path)
        try:
            vectors = faiss.read_index(str(faiss_path))
        except RuntimeError as err:
            raise CorruptIndexError(f"unreadable faiss file {faiss_path}: {err}") from err
        return cls(directory, manifest, vectors, DocStore.open_readonly(store_path, manifest["dim"]))

    @property
    def name(self) -> str:
        return self.directory.name

    @property
    def generation(self) -> int:
        return self.manifest["generation"]

    @property
    def count(self) -> int:
        return self.manifest["count"]

    def search(
        self, queries: np.ndarray, k: int, knobs: SearchKnobs | None = None, allowed: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Nearest chunks: ``(D, I)`` of shape ``(len(queries), k)``, scores descending, padded with -1 ids.

        With ``allowed`` (chunk ids), only those chunks are candidates; small allowed sets are scored exactly
        from the stored vectors, so filtering never loses results to an approximate index.
        """
        knobs = knobs or SearchKnobs(**self.manifest.get("search", {}))
        if allowed is not None and len(allowed) <= EXACT_FILTER_LIMIT:
            return self._exact_search(queries, k, allowed)
        return factory.search(self.vectors, queries, k, knobs, allowed)

    def _exact_search(self, queries: np.ndarray, k: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids, vectors = self.docs.vectors_of(allowed.tolist())
        return exact_top_k(queries, ids, vectors, k)

    def close(self) -> None:
        self.docs.close()


EXACT_FILTER_LIMIT = 20_000


def exact_top_k(queries: np.ndarray, ids: np.ndarray, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact inner-product top-``k`` in faiss's ``(D, I)`` form, padded with ``-inf`` / ``-1``."""
    scores = np.asarray(queries, dtype=np.float32) @ vectors.T
    take = min(k, len(ids))
    D = np.full((len(queries), k), -np.inf, dtype=np.float32)
    I = np.full((len(queries), k), -1, dtype=np.int64)
    if take:
        top = np.argpartition(-scores, take - 1, axis=1)[:, :take]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.argsort(-top_scores, axis=1, kind="stable")
        D[:, :take] = np.take_along_axis(top_scores, order, axis=1)
        I[:, :take] = ids[np.take_along_axis(top, order, axis=1)]
    return D, I
