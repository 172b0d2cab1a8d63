"""The lexical side and hybrid search: BM25 as its formula says, kept in step with every write, fused as the
fusion functions say, filtered, refused where there is no lexical side."""

from __future__ import annotations

import math
import sqlite3

import numpy as np
import pytest

from embedsearch import build_index, load_index
from embedsearch.data import Document
from embedsearch.errors import InvalidInputError, UnsupportedModeError
from embedsearch.index import (
    LexicalSettings,
    add_documents,
    add_lexical_side,
    compact_index,
    delete_documents,
    index_info,
)
from embedsearch.index.lexical import Analyzer, match_expression
from embedsearch.search.fusion import convex_fusion, ranked, reciprocal_rank_fusion

WORDS = "river stone cloud forest ember glacier meadow harbor lantern orchard canyon tundra".split()


def _corpus(n: int = 120, seed: int = 0) -> list[Document]:
    rng = np.random.default_rng(seed)
    return [
        Document(f"d{i}", " ".join(rng.choice(WORDS, size=int(rng.integers(3, 30)))), {"group": str(i % 4)})
        for i in range(n)
    ]


@pytest.fixture
def searcher(home):
    build_index("h", _corpus(), "fake", home=home)
    searcher = load_index("h", home)
    yield searcher
    searcher.close()


# ---- analysis -----------------------------------------------------------------------------------------------


def test_english_analysis_stems_and_drops_stopwords():
    analyzer = Analyzer(LexicalSettings())
    assert analyzer.words("The Rivers are running into the stones") == ["river", "run", "stone"]
    assert analyzer.terms("rivers river RIVER of the") == ["river"]
    assert analyzer.matching_words("Rivers and a river, RIVERS!", ["river"]) == ["Rivers", "river", "RIVERS"]


def test_analysis_is_configurable_and_bad_settings_are_named():
    plain = Analyzer(LexicalSettings(stemmer="none", stopwords="none"))
    assert plain.words("The rivers") == ["the", "rivers"]
    own = Analyzer(LexicalSettings(stemmer="none", stopwords=("rivers",)))
    assert own.words("The rivers") == ["the"]
    with pytest.raises(InvalidInputError, match="unknown stemmer 'klingon'"):
        LexicalSettings(stemmer="klingon").checked()
    with pytest.raises(InvalidInputError, match="unknown stopword set"):
        LexicalSettings(stopwords="klingon").checked()
    letters = Analyzer(LexicalSettings(stemmer="none", stopwords="none", tokens=r"[a-z]+"))
    assert letters.words("x1y under_score") == ["x", "y", "under", "score"]
    for bad in ("[a-", "(a)+"):
        with pytest.raises(InvalidInputError, match="token pattern"):
            LexicalSettings(tokens=bad).checked()


def test_query_words_cannot_inject_fts5_syntax():
    assert match_expression(['a"b', "NEAR"]) == '"a""b" OR "NEAR"'


# ---- ranking --------------------------------------------------------------------------------------------------


def _reference_bm25(docs: dict[int, list[str]], terms: list[str], k1: float = 1.2, b: float = 0.75):
    """BM25 as FTS5 documents it (k1 1.2, b 0.75, idf log((N - n + 0.5) / (n + 0.5)), at least 1e-6), in float64."""
    n_docs = len(docs)
    average = sum(map(len, docs.values())) / n_docs
    scores = {}
    for chunk_id, words in docs.items():
        score = 0.0
        for term in terms:
            having = sum(term in w for w in docs.values())
            idf = max(math.log((n_docs - having + 0.5) / (having + 0.5)), 1e-6)
            tf = words.count(term)
            score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(words) / average))
        if score > 0:
            scores[chunk_id] = score
    return scores


def test_lexical_scores_are_bm25_of_the_chunks(searcher):
    analyzer = Analyzer(LexicalSettings())
    with searcher.index.reading() as view:
        ids = view.store.live_chunk_ids().tolist()
        owners = view.chunk_owners(ids)
        texts = {d.id: d.text for d in view.documents(sorted({o[0] for o in owners.values()})).values()}
        words = {i: analyzer.words(texts[owners[i][0]][owners[i][1] : owners[i][2]]) for i in ids}
        terms = analyzer.terms("glacier lanterns")
        scores, found, _complete = view.lexical_search(terms, 20)
    reference = _reference_bm25(words, terms)
    best = sorted(reference, key=lambda c: (-reference[c], c))[:20]
    assert found.tolist() == best
    # FTS5 sums in double precision; our float32 copy of each score is within float32 rounding of the reference
    np.testing.assert_allclose(scores, [reference[c] for c in best], rtol=2**-23)


def test_lexical_hits_are_documents_by_best_chunk_with_highlights(searcher):
    hits = searcher.search("Glacier", k=10, mode="lexical")
    assert hits and len(hits) == len({h.id for h in hits})
    assert all("glacier" in h.snippet.lower() for h in hits)
    assert all(h.highlights and {w.lower() for w in h.highlights} == {"glacier"} for h in hits)
    assert searcher.search("zzzunknown", k=5, mode="lexical") == []
    assert all(h.highlights == [] for h in searcher.search("glacier", k=3, mode="dense"))


# ---- fusion ---------------------------------------------------------------------------------------------------


def test_reciprocal_rank_fusion_and_convex_fusion_by_their_formulas():
    fused = reciprocal_rank_fusion([["a", "b"], ["b", "c"]], k=60)
    assert fused == pytest.approx({"a": 1 / 61, "b": 1 / 62 + 1 / 61, "c": 1 / 62})
    convex = convex_fusion([("a", 0.9), ("b", 0.5)], [("b", 10.0), ("c", 2.0)], alpha=0.25)
    assert convex == pytest.approx({"a": 0.25, "b": 0.75, "c": 0.0})
    assert ranked({"x": 1.0, "a": 1.0, "b": 2.0}, 2) == [("b", 2.0), ("a", 1.0)]


def test_hybrid_is_the_fusion_of_the_dense_and_lexical_rankings(searcher):
    query = "ember orchard canyon"
    dense = [h.id for h in searcher.search(query, k=100, mode="dense")]
    lexical = [h.id for h in searcher.search(query, k=100, mode="lexical")]
    expected = ranked(reciprocal_rank_fusion([dense, lexical]), 10)
    hits = searcher.search(query, k=10, mode="hybrid", fusion="rrf")
    assert [(h.id, h.score) for h in hits] == [(d, pytest.approx(s, abs=1e-6)) for d, s in expected]
    default = searcher.search(query, k=10, mode="hybrid", fusion="convex", alpha=0.5)
    assert searcher.search(query, k=10) == default  # hybrid, convex 0.5: the default where there is a lexical side
    only_dense = searcher.search(query, k=10, mode="hybrid", fusion="convex", alpha=1.0)
    assert [h.id for h in only_dense][: len(dense)] == [d for d in dense if d in {h.id for h in only_dense}][:10]


def test_filters_apply_to_both_sides(searcher):
    for mode in ("lexical", "hybrid"):
        hits = searcher.search("river stone", k=15, where={"group": "2"}, mode=mode)
        assert len(hits) == 15 and all(h.metadata["group"] == "2" for h in hits)
    everything = [h.id for h in searcher.search("river stone", k=200, mode="lexical")]
    filtered = [h.id for h in searcher.search("river stone", k=200, where={"group": "2"}, mode="lexical")]
    assert filtered == [d for d in everything if int(d[1:]) % 4 == 2]


def test_bad_modes_and_alphas_are_named(searcher):
    with pytest.raises(InvalidInputError, match="unknown mode 'fuzzy'"):
        searcher.search("river", mode="fuzzy")
    with pytest.raises(InvalidInputError, match="unknown fusion"):
        searcher.search("river", mode="hybrid", fusion="max")
    for alpha in (1.5, -0.1, float("nan"), True):
        with pytest.raises(InvalidInputError, match="alpha"):
            searcher.search("river", mode="hybrid", fusion="convex", alpha=alpha)


# ---- the lexical side follows every write -------------------------------------------------------------------------


def _lexical_rows(home, name: str) -> int:
    info = index_info(name, home)
    db = sqlite3.connect(f"file:{home / name / info['store']}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM lexical").fetchone()[0]
    finally:
        db.close()


def test_upserts_deletes_and_compaction_match_a_fresh_build(home):
    docs = {d.id: d for d in _corpus(80)}
    build_index("live", list(docs.values()), "fake", home=home)
    changed = [Document(f"d{i}", "glacier glacier meadow", {"group": "9"}) for i in range(0, 80, 7)]
    added = [Document(f"n{i}", f"lantern harbor {WORDS[i % 12]}", {"group": "1"}) for i in range(15)]
    add_documents("live", changed + added, home=home)
    delete_documents("live", ["d3", "d4", "n2"], home=home)
    docs |= {d.id: d for d in changed + added}
    for gone in ("d3", "d4", "n2"):
        docs.pop(gone)
    build_index("fresh", list(docs.values()), "fake", home=home)
    queries = ["glacier meadow", "lantern harbor tundra", "river"]
    for stage in ("segments", "compacted"):
        live, fresh = load_index("live", home), load_index("fresh", home)
        for query in queries:
            for mode in ("lexical", "hybrid"):
                got = [(h.id, h.score, h.snippet) for h in live.search(query, k=30, mode=mode)]
                want = [(h.id, h.score, h.snippet) for h in fresh.search(query, k=30, mode=mode)]
                assert [g[0] for g in got] == [w[0] for w in want], (stage, query, mode)
                np.testing.assert_allclose([g[1] for g in got], [w[1] for w in want], rtol=1e-5)
        assert not {"d3", "d4", "n2"} & {h.id for h in live.search("river stone glacier", k=200, mode="lexical")}
        assert _lexical_rows(home, "live") == index_info("live", home)["chunks"]
        live.close()
        fresh.close()
        compact_index("live", home)


def test_an_index_without_a_lexical_side_is_dense_and_says_how_to_add_one(home):
    build_index("old", _corpus(40), "fake", home=home, lexical=None)
    searcher = load_index("old", home)
    assert searcher.search("river", k=3) == searcher.search("river", k=3, mode="dense")
    with pytest.raises(UnsupportedModeError, match="embedsearch index add-lexical old"):
        searcher.search("river", mode="hybrid")
    searcher.close()
    report = add_lexical_side("old", home)
    assert report["chunks"] == index_info("old", home)["chunks"] == _lexical_rows(home, "old")
    assert searcher.rebuilt()  # a server reopens it and gets the lexical side
    reopened = load_index("old", home)
    assert reopened.search("river", k=3, mode="lexical")
    reopened.close()


def test_an_image_index_has_no_lexical_side(home, image_folder):
    from embedsearch.data import read_documents

    documents = read_documents([str(image_folder)], skip_invalid=True, embeds={"image", "text"}).documents
    build_index("pics", documents, "fake-clip", home=home)
    assert index_info("pics", home)["lexical"] is None
    searcher = load_index("pics", home)
    with pytest.raises(UnsupportedModeError, match="holds images"):
        searcher.search("red", mode="lexical")
    searcher.close()
    with pytest.raises(InvalidInputError, match="image index has no lexical side"):
        build_index("pics2", documents, "fake-clip", home=home, lexical=LexicalSettings())


def test_a_write_between_the_lexical_prefetch_and_the_search_is_seen(searcher, home):
    retrieval, knobs = searcher.check_query("zebra", 10, None, mode="hybrid")
    ahead = searcher.prefetch_lexical(["zebra"], 10, None, retrieval)
    assert [future.result()[1] for future in ahead] == [[[]]]  # no zebra yet
    add_documents("h", [Document("z", "zebra zebra", {"group": "0"})], home=home)
    vector = searcher.encoder.encode_text(["zebra"])[0]
    hits = searcher.search_text_with_vector("zebra", vector, 10, None, retrieval=retrieval, knobs=knobs, ahead=ahead)
    assert hits[0].id == "z" and hits[0].highlights == ["zebra"]


def test_a_batch_of_hybrid_searches_equals_the_single_searches(searcher):
    queries = ["river stone", "ember", "glacier lantern", "tundra canyon meadow", "harbor"]
    assert searcher.search_many(queries, k=5, where={"group": "1"}) == [
        searcher.search(q, k=5, where={"group": "1"}) for q in queries
    ]
