"""Stage 2: FAISS indexes with a manifest and a document store, kept under ``<home>/<name>/``."""

from __future__ import annotations

from embedsearch.index.catalog import index_info, list_indexes
from embedsearch.index.factory import SearchKnobs, choose_spec
from embedsearch.index.stored import StoredIndex
from embedsearch.index.writer import ChunkingPolicy, WriteReport, add_documents, build_index, delete_documents

__all__ = [
    "ChunkingPolicy",
    "SearchKnobs",
    "StoredIndex",
    "WriteReport",
    "add_documents",
    "build_index",
    "choose_spec",
    "delete_documents",
    "index_info",
    "list_indexes",
]
