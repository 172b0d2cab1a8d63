"""Searching: per-document hits, filters, vectors, batches against single queries, HNSW against exact."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch import build_index, load_index
from embedsearch.data import Document
from embedsearch.errors import EncoderMismatchError, InvalidInputError
from embedsearch.index import ChunkingPolicy
from embedsearch.search.hits import best_chunk_per_document
from tests.encoders.tolerances import HIT_ROUNDING, cosine_error

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma".split()


def _corpus(n: int = 300) -> list[Document]:
    rng = np.random.default_rng(0)
    return [
        Document(f"d{i}", " ".join(rng.choice(WORDS, size=int(rng.integers(5, 40)))), {"group": str(i % 7)})
        for i in range(n)
    ]


@pytest.fixture
def corpus_index(home):
    build_index("corpus", _corpus(), "fake", home=home)
    return load_index("corpus", home)


def test_each_document_appears_once_with_its_best_chunk():
    D = np.array([[0.9, 0.8, 0.7, 0.1]], dtype=np.float32)
    I = np.array([[1, 2, 3, -1]])
    owners = {1: ("a", 0, 5), 2: ("a", 5, 9), 3: ("b", 0, 3)}
    [row] = best_chunk_per_document(D, I, owners, k=5)
    assert [(d, a, b) for d, _, a, b in row] == [("a", 0, 5), ("b", 0, 3)]
    assert [s for _, s, _, _ in row] == pytest.approx([0.9, 0.7])
    assert best_chunk_per_document(D, I, owners, k=1) == [[row[0]]]


def test_search_returns_k_distinct_documents_in_score_order(corpus_index):
    hits = corpus_index.search("alpha beta gamma", k=25)
    assert len(hits) == 25 == len({h.id for h in hits})
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_where_filter_still_returns_k_matching_documents(corpus_index):
    hits = corpus_index.search("alpha", k=20, where={"group": "3"})
    assert len(hits) == 20 and all(h.metadata["group"] == "3" for h in hits)
    assert corpus_index.search("alpha", k=5, where={"group": "nope"}) == []


def test_filtered_results_equal_exact_ranking_of_the_matching_documents(corpus_index):
    docs = [d for d in _corpus() if d.metadata["group"] == "2"]
    query = corpus_index.encoder.encode_text(["theta iota"])[0].astype(np.float64)
    best = {
        d.id: max(corpus_index.encoder.encode_text(_chunk_texts(corpus_index, d)).astype(np.float64) @ query)
        for d in docs
    }  # the reference in float64
    expected = sorted(best, key=lambda i: -best[i])[:10]
    hits = corpus_index.search("theta iota", k=10, where={"group": "2"}, mode="dense")
    bound = cosine_error(32) + HIT_ROUNDING  # faiss's float32 cosine and the Hit's rounding, against float64
    assert all(abs(h.score - best[h.id]) <= bound for h in hits)
    ranked = [best[i] for i in sorted(best, key=lambda i: -best[i])[:11]]
    if all(a - b > 2 * bound for a, b in zip(ranked, ranked[1:], strict=False)):  # no near ties to reorder
        assert [h.id for h in hits] == expected
    else:
        assert {h.id for h in hits} <= set(sorted(best, key=lambda i: -best[i])[:11])


def _chunk_texts(searcher, document):
    sql = "SELECT c.start, c.end FROM chunks c JOIN documents d ON d.doc_key = c.doc_key WHERE d.id = ?"
    with searcher.index.reading() as view:
        rows = view.store._guarded(sql, (document.id,)).fetchall()
    return [document.text[a:b] for a, b in rows]


def test_batch_search_equals_single_searches(corpus_index):
    queries = ["alpha beta", "omicron pi rho", "sigma"]
    batch = corpus_index.search_many(queries, k=7)
    # A batch may sum the same dot products in another order (BLAS): two float32 cosines of unit vectors of
    # d = 32 each within cosine_error(32) of the exact one, and both rounded to 6 decimals in a Hit.
    bound = 2 * cosine_error(32) + 2 * HIT_ROUNDING
    for got, want in zip(batch, [corpus_index.search(q, k=7) for q in queries], strict=True):
        assert [h.id for h in got] == [h.id for h in want] or _near_tie(want, bound)
        assert all(abs(g.score - w.score) <= bound for g, w in zip(got, want, strict=True))
        assert [(h.snippet, h.metadata) for h in got if h.id in {w.id for w in want}] == [
            (w.snippet, w.metadata) for w in want if w.id in {h.id for h in got}
        ]


def _near_tie(hits, bound: float) -> bool:
    scores = [h.score for h in hits]
    return any(abs(a - b) <= bound for a, b in zip(scores, scores[1:], strict=False))


def test_vector_search_equals_text_search(corpus_index):
    vector = corpus_index.encoder.encode_text(["kappa lambda"])
    assert corpus_index.search_vectors(vector, k=5)[0] == corpus_index.search("kappa lambda", k=5, mode="dense")


def test_k_larger_than_the_collection_returns_everything(home):
    build_index("small", _corpus(4), "fake", home=home)
    assert len(load_index("small", home).search("alpha", k=50)) == 4


def test_hnsw_index_finds_what_exact_search_finds_where_it_is_not_exhaustive(home):
    """At 6,000 documents in an HNSW8 graph, a search as narrow as the chunks it fetches (efSearch 2 counts as
    the 25 it asks for) misses some of exact search's hits, so this is not an exhaustive search; at the default
    efSearch 64 it finds nearly all of them."""
    corpus = _corpus(6000)
    build_index("flat", corpus, "fake", home=home, spec="Flat", chunking=ChunkingPolicy(enabled=False))
    build_index("hnsw", corpus, "fake", home=home, spec="HNSW8,Flat", chunking=ChunkingPolicy(enabled=False))
    flat, hnsw = load_index("flat", home), load_index("hnsw", home)
    queries = [" ".join(WORDS[i : i + 3]) + f" {WORDS[(7 * i) % len(WORDS)]}" for i in range(0, 16)]
    exact = flat.search_many(queries, k=10)

    def recall(ef: int) -> float:
        found = hnsw.search_many(queries, k=10, ef_search=ef)
        return float(
            np.mean([len({h.id for h in a} & {h.id for h in b}) / 10 for a, b in zip(exact, found, strict=True)])
        )

    assert recall(2) < 0.95 <= recall(64)


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda s: s.search("", k=3), "empty"),
        (lambda s: s.search("alpha", k=0), "at least 1"),
        (lambda s: s.search_vectors(np.ones(5), k=3), "dimension 32"),
        (lambda s: s.search_vectors(np.full(32, np.nan), k=3), "NaN"),
    ],
)
def test_bad_queries_are_invalid_input(corpus_index, call, message):
    with pytest.raises(InvalidInputError, match=message):
        call(corpus_index)


def test_query_encoder_must_match_the_index(home):
    build_index("corpus", _corpus(10), "fake", home=home)
    with pytest.raises(EncoderMismatchError, match="fake-other"):
        load_index("corpus", home, encoder="fake-other")


def test_search_images_over_an_image_index_and_over_a_caption_index(home, image_folder):
    from PIL import Image

    from embedsearch.data import read_documents
    from tests.fake_encoder import COLOURS

    pictures = read_documents([image_folder], skip_invalid=True, embeds={"text", "image"}).documents
    build_index("pics", pictures, "fake-clip", home=home)
    captions = [Document(c, f"a {c} shape", {"colour": c}) for c in COLOURS]
    build_index("captions", captions, "fake-clip", home=home)
    query = Image.new("RGB", (8, 8), (240, 20, 20))

    image_to_image = load_index("pics", home=home).search_images([query], k=4)[0]
    assert [h.id for h in image_to_image][:1] == ["red.png"] and image_to_image[0].score > 0.99
    image_to_text = load_index("captions", home=home).search_images([query], k=4)[0]
    assert image_to_text[0].id == "red" and image_to_text[0].score > image_to_text[1].score
