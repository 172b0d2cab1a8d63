"""Stage 2: FAISS indexes in segments with a document store and a manifest, kept under ``<home>/<name>/``."""

from __future__ import annotations

from embedsearch.index.catalog import index_info, index_stamp, list_indexes
from embedsearch.index.compaction import compact_if_needed, compact_index
from embedsearch.index.encoding import ChunkingPolicy
from embedsearch.index.factory import SearchKnobs, choose_spec
from embedsearch.index.identity import check_encoder, encoder_of
from embedsearch.index.lexical import LexicalSettings
from embedsearch.index.lexical_side import add_lexical_side
from embedsearch.index.merge_policy import CompactionPolicy, CompactionReport
from embedsearch.index.reader import IndexView, StoredIndex
from embedsearch.index.storage import list_index_names
from embedsearch.index.writer import WriteReport, add_documents, build_index, delete_documents

__all__ = [
    "ChunkingPolicy",
    "CompactionPolicy",
    "CompactionReport",
    "IndexView",
    "LexicalSettings",
    "SearchKnobs",
    "StoredIndex",
    "WriteReport",
    "add_documents",
    "add_lexical_side",
    "build_index",
    "check_encoder",
    "choose_spec",
    "compact_if_needed",
    "compact_index",
    "delete_documents",
    "encoder_of",
    "index_info",
    "index_stamp",
    "list_index_names",
    "list_indexes",
]
