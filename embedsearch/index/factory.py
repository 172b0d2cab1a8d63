"""faiss indexes from factory strings, the ``auto`` choice, id handling and search-time knobs.

Every index uses inner product on L2-normalised vectors (= cosine). Flat and HNSW indexes are wrapped in
``IndexIDMap2`` so that they hold our chunk ids; IVF indexes hold ids natively.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import faiss
import numpy as np

from embedsearch.errors import InvalidInputError

METRIC = "inner_product"

# ``auto`` keeps exact search up to this many vectors. Measured by benchmarks/bench_auto_spec.py (d=384, one
# thread): Flat single-query p50 is 2 ms at 20k vectors, 4 ms at 50k, 10 ms at 100k, while HNSW32 stays under
# 0.4 ms with recall@10 >= 0.96. Encoding the query with MiniLM takes ~20 ms here, so up to 50k the exact
# search costs a fifth of the query or less and is worth its perfect recall.
EXACT_SEARCH_LIMIT = 50_000
HNSW_LINKS = 32
# measured there too: an HNSW32 index takes 4*d + 272 bytes per vector (the graph links).
HNSW_EXTRA_BYTES = 272
# product quantisation trains 256 centroids per sub-quantiser; faiss wants 39 points per centroid
MIN_PQ_TRAINING = 39 * 256
DEFAULT_EF_SEARCH = 64
DEFAULT_NPROBE = 16
# HNSW recall at a fixed efSearch falls as the graph grows (benchmarks/bench_hnsw_ef.py, HNSW32, clustered 384-d
# vectors, recall@10 / single-query p50: 100k at efSearch 64 0.998 / 0.30 ms; 1M at 64 0.874 / 0.79 ms, at 192
# 0.954 / 1.24 ms, at 256 0.959 / 1.46 ms). Unless efSearch is given, a graph of n vectors searches with
# efSearch 64 x sqrt(n / EF_REFERENCE_VECTORS), never less than 64 (1M: 203).
EF_REFERENCE_VECTORS = 100_000


@dataclass(frozen=True)
class SearchKnobs:
    """Search-time parameters, separate from the build spec. ``ef_auto``: ``ef_search`` grows with the size of
    an HNSW graph (:func:`hnsw_ef`); false once a caller gives ``ef_search``."""

    ef_search: int = DEFAULT_EF_SEARCH
    nprobe: int = DEFAULT_NPROBE
    ef_auto: bool = True


def hnsw_ef(knobs: SearchKnobs, vectors: int) -> int:
    """The efSearch of a search over an HNSW graph of ``vectors`` vectors."""
    if not knobs.ef_auto:
        return knobs.ef_search
    return max(knobs.ef_search, math.ceil(knobs.ef_search * math.sqrt(vectors / EF_REFERENCE_VECTORS)))


def choose_spec(n_vectors: int, dim: int, memory_budget: int | None = None) -> str:
    """The ``auto`` spec: exact search up to :data:`EXACT_SEARCH_LIMIT` vectors, else HNSW, and IVF-PQ where
    an HNSW index of the raw vectors would not fit ``memory_budget`` bytes."""
    if n_vectors <= EXACT_SEARCH_LIMIT and (memory_budget is None or 4 * dim * n_vectors <= memory_budget):
        return "Flat"
    hnsw_bytes = n_vectors * (4 * dim + HNSW_EXTRA_BYTES)
    if memory_budget is None or hnsw_bytes <= memory_budget:
        return f"HNSW{HNSW_LINKS},Flat"
    if n_vectors < MIN_PQ_TRAINING:
        raise InvalidInputError(
            f"a memory budget of {memory_budget} bytes cannot hold {n_vectors} vectors of dimension {dim} "
            f"exactly ({4 * dim * n_vectors} bytes), and a compressed index needs at least {MIN_PQ_TRAINING} "
            "vectors to train; raise --memory-budget"
        )
    # about 4*sqrt(n) lists, each with at least 39 training points (faiss's minimum for k-means)
    nlist = max(1, min(65536, n_vectors // 39, 2 ** round(math.log2(4 * math.sqrt(n_vectors)))))
    # "np": no polysemous training, which the search does not use and which took 30x longer to build
    return f"IVF{nlist},PQ{_pq_subquantizers(dim, n_vectors, nlist, memory_budget)}np"


def _pq_subquantizers(dim: int, n_vectors: int, nlist: int, memory_budget: int) -> int:
    """The most PQ bytes per vector (a divisor of ``dim``) whose codes fit the budget."""
    per_vector = (memory_budget - nlist * dim * 4) / max(n_vectors, 1) - 8  # 8 bytes: the id
    candidates = [m for m in range(1, dim + 1) if dim % m == 0 and m <= max(per_vector, 1)]
    return max(candidates)


def make_index(spec: str, dim: int) -> faiss.Index:
    """An empty index for ``spec`` (a faiss index_factory string, used verbatim) that accepts our ids.

    Raises :class:`InvalidInputError` quoting the spec and faiss's reason if faiss rejects it.
    """
    try:
        index = faiss.index_factory(dim, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        raise InvalidInputError(f"invalid index spec {spec!r}: {faiss_reason(err)}") from err
    return index if _has_native_ids(index) else faiss.IndexIDMap2(index)


def _has_native_ids(index: faiss.Index) -> bool:
    return isinstance(index, faiss.IndexIDMap) or faiss.try_extract_index_ivf(index) is not None


def train_and_add(index: faiss.Index, ids: np.ndarray, vectors: np.ndarray, spec: str) -> None:
    """Train ``index`` on ``vectors`` if it needs it, then add them under ``ids``."""
    if not index.is_trained:
        train(index, vectors, spec)
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.ascontiguousarray(ids, dtype=np.int64))


def train(index: faiss.Index, vectors: np.ndarray, spec: str) -> None:
    """Train an empty index (IVF, PQ, ...) on ``vectors``; :class:`InvalidInputError` if there are too few."""
    try:
        index.train(np.ascontiguousarray(vectors, dtype=np.float32))
    except RuntimeError as err:
        raise InvalidInputError(
            f"index spec {spec!r} cannot be trained on {len(vectors)} vectors ({faiss_reason(err)}); "
            "use 'Flat' or fewer lists/sub-quantizers"
        ) from err


def load_index_file(path) -> faiss.Index:
    """A faiss index read from ``path`` (a quantizer file this package wrote)."""
    return faiss.read_index(str(path))


def is_hnsw(spec: str, dim: int) -> bool:
    return isinstance(_inner(make_index(spec, dim)), faiss.IndexHNSW)


def kind(index: faiss.Index) -> str:
    """``"flat"``, ``"hnsw"``, ``"ivf"`` or ``"other"``: what a search of the index costs like."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexFlat):
        return "flat"
    if isinstance(inner, faiss.IndexHNSW):
        return "hnsw"
    return "ivf" if faiss.try_extract_index_ivf(inner) is not None else "other"


def is_flat(index: faiss.Index) -> bool:
    """Whether the index scans every vector anyway (so exact scoring of a subset is never worse)."""
    return isinstance(_inner(index), faiss.IndexFlat)


def needs_training(spec: str, dim: int) -> bool:
    return not make_index(spec, dim).is_trained


def keeps_exact_vectors(spec: str, dim: int) -> bool:
    """Whether the spec stores vectors as they are (Flat, HNSW over Flat, IVF over Flat), so that they can be read
    back exactly; compressing specs (PQ, SQ, PCA, ...) keep the raw vectors beside their segments."""
    inner = _inner(make_index(spec, dim))
    return isinstance(inner, faiss.IndexFlat | faiss.IndexHNSWFlat | faiss.IndexIVFFlat)


def flat_storage(index: faiss.Index) -> faiss.IndexFlat | None:
    """The flat array of vectors inside a Flat or HNSW-over-Flat index (positions = insertion order), else None."""
    inner = _inner(index)
    if isinstance(inner, faiss.IndexFlat):
        return inner
    if isinstance(inner, faiss.IndexHNSW):
        storage = faiss.downcast_index(inner.storage)
        return storage if isinstance(storage, faiss.IndexFlat) else None
    return None


def stored_ids(index: faiss.Index) -> np.ndarray:
    """The int64 ids an index holds, in insertion order (IVF: list by list)."""
    if isinstance(index, faiss.IndexIDMap):
        return faiss.vector_to_array(index.id_map).astype(np.int64)
    ivf = faiss.extract_index_ivf(index)
    lists = ivf.invlists
    parts = [np.zeros(0, dtype=np.int64)]
    for number in range(lists.nlist):
        size = lists.list_size(number)
        if size:
            parts.append(faiss.rev_swig_ptr(lists.get_ids(number), size).astype(np.int64))
    return np.concatenate(parts)


def prepare_for_lookups(index: faiss.Index) -> None:
    """Let an IVF index reconstruct vectors by id (a hash table from id to list entry)."""
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf.set_direct_map_type(faiss.DirectMap.Hashtable)


def empty_copy(index: faiss.Index) -> faiss.Index:
    """An empty index with the same trained state (the quantizer of IVF/PQ) as ``index``."""
    copy = faiss.clone_index(index)
    copy.reset()
    return copy


def search(
    index: faiss.Index, queries: np.ndarray, k: int, knobs: SearchKnobs, selector: faiss.IDSelector | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(D, I)`` of shape ``(len(queries), k)``, padded with ``-inf`` / ``-1``; ``selector`` restricts ids."""
    params = _parameters(index, knobs, selector)
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k, params=params)


def _inner(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap) else index


def _parameters(index: faiss.Index, knobs: SearchKnobs, selector) -> faiss.SearchParameters | None:
    inner = _inner(index)
    if isinstance(inner, faiss.IndexHNSW):
        params = faiss.SearchParametersHNSW()
        params.efSearch = hnsw_ef(knobs, int(inner.ntotal))
    elif faiss.try_extract_index_ivf(inner) is not None:
        params = faiss.SearchParametersIVF()
        params.nprobe = knobs.nprobe
    elif selector is None:
        return None
    else:
        params = faiss.SearchParameters()
    if selector is not None:
        params.sel = selector
    return params


def faiss_reason(err: RuntimeError) -> str:
    """faiss's own sentence, without the C++ location and the failed condition."""
    message = str(err).strip().splitlines()[-1] if str(err).strip() else "unknown error"
    message = re.sub(r"^.*\.cpp:\d+: ", "", message)
    return re.sub(r"^Error: '.*?' failed: ", "", message)
