"""embedsearch: self-supervised embeddings and semantic search over your own documents and images.

The Python API (the CLI and the HTTP service only call it)::

    from embedsearch import read_documents, build_index, load_index
    build_index("docs", read_documents(["corpus.jsonl"]).documents, encoder="minilm")
    for hit in load_index("docs").search("how do plants make sugar", k=5):
        print(hit.id, hit.score, hit.snippet)

Names are imported lazily so that ``import embedsearch`` (and the CLI's start) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "Document": "embedsearch.data",
    "read_documents": "embedsearch.data",
    "read_queries": "embedsearch.data",
    "read_qrels": "embedsearch.data",
    "read_image_pairs": "embedsearch.data",
    "Encoder": "embedsearch.encoders",
    "get_encoder": "embedsearch.encoders",
    "list_encoders": "embedsearch.encoders",
    "register_encoder": "embedsearch.encoders",
    "ChunkingPolicy": "embedsearch.index",
    "build_index": "embedsearch.index",
    "add_documents": "embedsearch.index",
    "delete_documents": "embedsearch.index",
    "index_info": "embedsearch.index",
    "list_indexes": "embedsearch.index",
    "Hit": "embedsearch.search",
    "Searcher": "embedsearch.search",
    "evaluate_index": "embedsearch.eval",
    "evaluate_run": "embedsearch.eval",
    "evaluate_pairs": "embedsearch.eval",
    "TextTrainConfig": "embedsearch.train",
    "train_text": "embedsearch.train",
    "mine_hard_negatives": "embedsearch.mining",
}

__all__ = [*_EXPORTS, "load_index", "__version__"]


def load_index(name: str, home: str | None = None, encoder: Any = None, *, query_kinds: Any = ()) -> Any:
    """Open index ``name`` for search (a :class:`Searcher`), with the encoder its manifest names; ``query_kinds``
    (``"text"``, ``"image"``) are checked against the manifest before the encoder is loaded."""
    from embedsearch.search import Searcher

    return Searcher.open(name, home, encoder, query_kinds=query_kinds)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'embedsearch' has no attribute {name!r}")
