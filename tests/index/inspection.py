"""What an index on disk holds, with every invariant of the storage checked on the way (for the index tests)."""

from __future__ import annotations

import numpy as np

import embedsearch
from embedsearch.errors import UnknownIndexError
from embedsearch.index.search_segments import route


def contents(name: str, home, *, check_vectors: bool = True) -> dict[str, str] | None:
    """``{doc_id: text}`` of index ``name`` (``None`` if there is none), after checking that its store, segments
    and tombstones agree: every stored chunk lies in exactly one segment and is no tombstone; every id a segment
    file holds is a stored chunk or a tombstone; the committed counts are the rows'; stored vectors are the
    encoder's vectors of the chunks' texts; and a search finds a stored document."""
    try:
        searcher = embedsearch.load_index(name, home)
    except UnknownIndexError:
        return None
    try:
        with searcher.index.reading() as view:
            docs = _check(view, searcher, check_vectors)
        if docs:
            first = sorted(docs)[0]
            assert first in {h.id for h in searcher.search(docs[first], k=len(docs))}
        return docs
    finally:
        searcher.close()


def _check(view, searcher, check_vectors: bool) -> dict[str, str]:
    store, segment_set = view.store, view.segment_set
    ids = store.document_ids()
    documents = store.documents(ids)
    live = store.live_chunk_ids()
    counts = store.counts()
    state = view.state
    assert (state["documents"], state["chunks"]) == (len(ids), len(live)) == (counts["documents"], counts["chunks"])
    held = np.concatenate([s.ids for s in segment_set.segments]) if segment_set.segments else np.zeros(0, np.int64)
    assert len(held) == len(np.unique(held)), "a chunk id is in two segments"
    dead = np.concatenate([segment_set.dead[s.number].ids for s in segment_set.segments] or [np.zeros(0, np.int64)])
    assert not np.isin(live, dead).any(), "a stored chunk is a tombstone"
    assert np.isin(live, held).all(), "a stored chunk is in no segment"
    assert np.isin(held, np.concatenate([live, dead])).all(), "a segment holds a chunk that is neither stored nor dead"
    assert counts["tombstones"] == len(dead) and np.isin(dead, held).all()
    if check_vectors and len(live):
        _check_vectors(view, searcher, live)
    if searcher.index.analyzer is not None:
        _check_lexical(view, searcher.index.analyzer, live, documents)
    return {doc_id: document.text for doc_id, document in documents.items()}


def _check_lexical(view, analyzer, live: np.ndarray, documents) -> None:
    """The lexical side holds exactly the stored chunks, each as the analysed words of its text."""
    rows = dict(view.store._db.execute("SELECT rowid, terms FROM lexical").fetchall())
    assert sorted(rows) == live.tolist(), "the lexical side and the stored chunks differ"
    owners = view.store.chunk_owners(live.tolist())
    for chunk_id, (doc_id, start, end) in owners.items():
        assert rows[chunk_id] == " ".join(analyzer.words(documents[doc_id].text[start:end])), chunk_id


def _check_vectors(view, searcher, live: np.ndarray) -> None:
    owners = view.store.chunk_owners(live.tolist())
    texts = view.store.documents(sorted({o[0] for o in owners.values()}))
    for segment, mine in zip(view.segment_set.segments, route(view.segment_set.segments, live), strict=True):
        if not len(mine):
            continue
        chunk_texts = [texts[owners[c][0]].text[owners[c][1] : owners[c][2]] for c in mine.tolist()]
        expected = searcher.encoder.encode_text(chunk_texts)
        stored = segment.vectors(mine, searcher.index.directory)
        # A stored vector is a copy of the one encoded when it was written; encoding it again in another batch
        # may round its normalisation differently: a norm summed over d terms and one division are within
        # (d + 2) float32 epsilons of each other, relative to a unit vector's entries.
        bound = (segment.index.d + 2) * np.finfo(np.float32).eps
        np.testing.assert_allclose(stored, expected, rtol=0, atol=bound)


def files_of(directory) -> list[str]:
    """The index's files, lock files aside."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))
