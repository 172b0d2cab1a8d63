"""Stage 0: documents, queries and relevance judgements read from the user's files."""

from __future__ import annotations

from embedsearch.data.beir import read_qrels, read_queries
from embedsearch.data.chunking import Chunk, chunk_spans
from embedsearch.data.documents import Document, document_from_record
from embedsearch.data.image_pairs import ImagePairs, read_image_pairs
from embedsearch.data.images import IMAGE_SUFFIXES, load_image
from embedsearch.data.sources import read_documents

__all__ = [
    "Chunk",
    "Document",
    "IMAGE_SUFFIXES",
    "ImagePairs",
    "chunk_spans",
    "document_from_record",
    "load_image",
    "read_documents",
    "read_image_pairs",
    "read_qrels",
    "read_queries",
]
