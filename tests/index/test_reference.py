"""Reference test of every write path: after any sequence of builds, upserts, deletes and compactions, searches
give what a freshly built single-segment index of the same documents gives (property-based)."""

from __future__ import annotations

import itertools
import random
import shutil

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedsearch import add_documents, build_index, delete_documents, load_index
from embedsearch.data import Document
from embedsearch.index import CompactionPolicy, compact_if_needed, compact_index
from tests.index.inspection import contents

WORDS = [f"w{i}" for i in range(60)]
IDS = [f"d{i:02d}" for i in range(40)]
QUERIES = ["w1 w2 w3", "w10 w20", "w33", "w5 w6 w7 w8 w9", "w59 w0"]
# small thresholds, so that few documents exercise every merge: tiers, the floor, the segment cap, tombstones
POLICY = CompactionPolicy(max_segments=4, merge_factor=2, floor_vectors=4, max_deleted_fraction=0.3)
# search knobs that make HNSW and IVF exhaustive on these few vectors, so that they must equal exact search
EXHAUSTIVE = {"ef_search": 4096, "nprobe": 4096}
# Scores of one chunk against one query are computed by the same faiss kernel whatever segment holds the chunk,
# but a rebuilt index may sum in another order (BLAS for batches): a unit-vector dot product of d = 32 terms is
# within d float32 epsilons; hits round scores to 1e-6.
TOLERANCE = 32 * 1.2e-7 + 1e-6


def _document(doc_id: str, version: int) -> Document:
    rng = random.Random(f"{doc_id}:{version}")
    text = " ".join(rng.choices(WORDS, k=rng.randint(3, 30)))
    return Document(doc_id, text, {"group": str(rng.randint(0, 3)), "version": version})


operation = st.one_of(
    st.tuples(st.just("add"), st.lists(st.sampled_from(IDS), min_size=1, max_size=8, unique=True), st.integers(1, 5)),
    st.tuples(st.just("delete"), st.lists(st.sampled_from(IDS), min_size=1, max_size=5, unique=True), st.just(0)),
    st.tuples(st.just("compact"), st.just([]), st.just(0)),
    st.tuples(st.just("auto"), st.just([]), st.just(0)),
)


@pytest.mark.parametrize("spec", ["Flat", "HNSW16,Flat", "IVF2,Flat"])
@settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
@given(steps=st.lists(operation, min_size=1, max_size=7))
def test_any_sequence_of_writes_answers_like_a_fresh_build(tmp_path_factory, spec, steps):
    home = tmp_path_factory.mktemp("reference")
    expected = {doc_id: _document(doc_id, 0) for doc_id in IDS[:12]}
    build_index("live", list(expected.values()), "fake", home=home, spec=spec, compaction=POLICY)
    long_lived = load_index("live", home)  # sees every write, and keeps its filter cache and segments across them
    for kind, ids, version in steps:
        long_lived.search(QUERIES[0], k=3, where={"group": "1"})
        _apply(kind, ids, version, home, expected)
    assert contents("live", home) == {d.id: d.text for d in expected.values()}
    if expected:
        _compare(home, spec, list(expected.values()), long_lived)
    long_lived.close()
    shutil.rmtree(home)


def _apply(kind: str, ids: list[str], version: int, home, expected: dict[str, Document]) -> None:
    if kind == "add":
        documents = [_document(i, version) for i in ids]
        add_documents("live", documents, home=home, compact=False)
        expected.update((d.id, d) for d in documents)
    elif kind == "delete":
        delete_documents("live", ids, home=home, compact=False)
        for doc_id in ids:
            expected.pop(doc_id, None)
    elif kind == "compact":
        compact_index("live", home)
    else:
        compact_if_needed("live", home, policy=POLICY)


def _compare(home, spec: str, documents: list[Document], long_lived) -> None:
    build_index("fresh", documents, "fake", home=home, spec="Flat", overwrite=True)
    live, fresh = load_index("live", home), load_index("fresh", home)
    try:
        # both sides; hybrid fuses ranks, and tied documents may take either rank, so it is compared in
        # tests/search/test_hybrid.py on documents without ties
        for mode, where in itertools.product(
            ("dense", "lexical"), (None, {"group": "1"}, {"group": "2", "version": 0})
        ):
            for query in QUERIES:
                want = fresh.search(query, k=5, where=where, mode=mode)
                for searcher in (live, long_lived):
                    got = searcher.search(query, k=5, where=where, mode=mode, **EXHAUSTIVE)
                    assert_same_hits(got, want, f"{spec} {mode} {query!r} where={where}")
    finally:
        live.close()
        fresh.close()


def assert_same_hits(got, want, what: str) -> None:
    """Same documents in the same order with the same scores, except that documents whose scores tie (within
    :data:`TOLERANCE`) may swap places, also across the k-th place."""
    assert len(got) == len(want), what
    for g, w in zip(got, want, strict=True):  # where the ids differ, their scores tie
        assert abs(g.score - w.score) <= TOLERANCE, (what, g, w)
    only_one_side = {h.id for h in got} ^ {h.id for h in want}
    for hit in [*got, *want]:
        if hit.id in only_one_side:  # a document in one list only must tie the last place
            assert abs(hit.score - want[-1].score) <= TOLERANCE, (what, hit)
