"""An index in format 1 (embedsearch before segments) is refused with the command that upgrades it, and that
command keeps every document, chunk id and vector."""

from __future__ import annotations

import json
import sqlite3

import faiss
import numpy as np
import pytest

from embedsearch import load_index
from embedsearch.data.documents import document_from_record
from embedsearch.encoders import get_encoder
from embedsearch.errors import CorruptIndexError
from embedsearch.index import ChunkingPolicy, compact_index, index_info
from embedsearch.index.encoding import chunks_of
from tests.conftest import ANIMALS
from tests.index.inspection import contents, files_of

# the schema format 1 wrote (embedsearch/index/docstore.py before segments)
FORMAT_1_SCHEMA = """
CREATE TABLE documents (id TEXT PRIMARY KEY, text TEXT NOT NULL, metadata TEXT NOT NULL, hash TEXT NOT NULL);
CREATE TABLE chunks (chunk_id INTEGER PRIMARY KEY AUTOINCREMENT, doc_id TEXT NOT NULL REFERENCES documents(id)
    ON DELETE CASCADE, start INTEGER NOT NULL, end INTEGER NOT NULL, vector BLOB NOT NULL);
CREATE INDEX chunks_by_doc ON chunks(doc_id);
"""


def write_format_1(directory, documents, generation: int = 3, first_chunk: int = 40) -> None:
    """An index as format 1 left it after a few writes: generation files, chunk ids not starting at 0."""
    encoder = get_encoder("fake")
    directory.mkdir(parents=True)
    db = sqlite3.connect(directory / f"docs.{generation}.sqlite")
    db.executescript(FORMAT_1_SCHEMA)
    db.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('chunks', ?)", (first_chunk - 1,))
    chunks = chunks_of(documents, encoder, ChunkingPolicy(overlap=2))
    vectors = encoder.encode_text(
        [next(d for d in documents if d.id == c.doc_id).text[c.start : c.end] for c in chunks]
    )
    ids = []
    for document in documents:
        db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?)",
            (document.id, document.text, json.dumps(document.metadata), document.content_hash()),
        )
        for chunk, vector in zip(chunks, vectors, strict=True):
            if chunk.doc_id == document.id:
                cursor = db.execute(
                    "INSERT INTO chunks (doc_id, start, end, vector) VALUES (?, ?, ?, ?)",
                    (chunk.doc_id, chunk.start, chunk.end, vector.tobytes()),
                )
                ids.append((cursor.lastrowid, vector))
    db.commit()
    db.close()
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(encoder.dim))
    index.add_with_ids(np.stack([v for _, v in ids]), np.array([i for i, _ in ids], dtype=np.int64))
    faiss.write_index(index, str(directory / f"vectors.{generation}.faiss"))
    manifest = {
        "format_version": 1,
        "name": directory.name,
        "content": "text",
        "encoder": encoder.describe(),
        "dim": encoder.dim,
        "metric": "inner_product",
        "spec": "Flat",
        "search": {"ef_search": 64, "nprobe": 16},
        "chunking": {"enabled": True, "overlap": 2, "max_tokens": 12},
        "count": len(documents),
        "chunks": len(ids),
        "generation": generation,
        "created": "2026-11-01T00:00:00+00:00",
        "updated": "2026-11-02T00:00:00+00:00",
    }
    (directory / "manifest.json").write_text(json.dumps(manifest))


def test_a_format_1_index_is_refused_with_the_command_that_upgrades_it(home):
    documents = [document_from_record(r) for r in ANIMALS]
    write_format_1(home / "old", documents)
    with pytest.raises(CorruptIndexError, match="format 1.*`embedsearch index compact old`"):
        load_index("old", home)


def test_compact_upgrades_it_keeping_documents_chunk_ids_and_vectors(home):
    documents = [document_from_record(r) for r in ANIMALS]
    write_format_1(home / "old", documents)
    old_index = faiss.read_index(str(home / "old" / "vectors.3.faiss"))
    old_ids = faiss.vector_to_array(old_index.id_map)
    report = compact_index("old", home)
    assert report.upgraded
    info = index_info("old", home)
    assert (info["format_version"], info["count"], info["created"]) == (2, 5, "2026-11-01T00:00:00+00:00")
    assert files_of(home / "old") == ["manifest.json", "seg.1.1.faiss", "store.1.sqlite"]
    assert contents("old", home) == {d.id: d.text for d in documents}
    searcher = load_index("old", home)
    with searcher.index.reading() as view:
        [segment] = view.segment_set.segments
        assert sorted(segment.ids.tolist()) == sorted(old_ids.tolist())
        np.testing.assert_array_equal(
            segment.vectors(np.sort(old_ids), home / "old"), old_index.reconstruct_batch(np.sort(old_ids))
        )
    assert searcher.search("small domestic feline", k=1)[0].id == "cat"
    assert compact_index("old", home).upgraded is False  # upgraded once
