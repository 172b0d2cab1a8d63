"""Hard negatives mined from an index: for each training pair, documents that the index's encoder ranks
high for the anchor but that are not its positives.

Two filters keep likely false negatives out (NV-Retriever, Moreira et al., 2024, calls this positive-aware
mining): every known positive of the anchor is skipped, and so is every candidate whose score is within
``margin`` of the positive's score or above it (an unlabelled positive is usually scored like a labelled one).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from embedsearch.errors import InvalidInputError, OutputExistsError
from embedsearch.runtime import use_batch_threads
from embedsearch.search import Hit, Searcher
from embedsearch.train.text.pairs import Pair, positives_by_anchor, read_beir_pairs, read_pairs_file


@dataclass
class MiningReport:
    """What a mining run wrote: one line per pair to ``out``, with ``negatives`` negatives in all."""

    out: Path
    pairs: int
    negatives: int
    without_negatives: int
    skipped_positives: int
    skipped_by_margin: int


def mine_hard_negatives(
    index: str | Searcher,
    data: str | Path,
    out: str | Path,
    *,
    home: str | Path | None = None,
    split: str = "train",
    ranks: tuple[int, int] = (10, 50),
    margin: float = 0.0,
    per_pair: int = 10,
    overwrite: bool = False,
    progress: bool = False,
) -> MiningReport:
    """Write ``out``: one JSON line ``{"anchor", "positive", "negatives": [texts]}`` per pair of ``data`` (a
    BEIR folder, pairs of ``qrels/<split>.tsv``; or a pairs JSONL file), the format ``train text`` reads.

    A pair's negatives are the full texts of the documents at ranks ``ranks[0]..ranks[1]`` (1-based, both
    included) of a search of ``index`` for its anchor, best first, at most ``per_pair``, leaving out the
    anchor's known positives and any document scored ``>= positive score - margin``.

    Raises :class:`InvalidInputError` for bad ranks, margin or count, :class:`OutputExistsError` if ``out``
    exists without ``overwrite``, :class:`UnknownIndexError` and :class:`SourceError` for bad inputs.
    """
    _check_settings(ranks, margin, per_pair)
    out = Path(out)
    if out.exists() and not overwrite:
        raise OutputExistsError(f"{out} already exists; pass --overwrite to replace it")
    pairs = read_beir_pairs(data, split).pairs if Path(data).is_dir() else read_pairs_file(data)
    searcher = index if isinstance(index, Searcher) else Searcher.open(index, home)
    use_batch_threads()
    miner = _Miner(searcher, pairs, ranks[1], progress)
    lines = [miner.negatives_of(pair, ranks[0], margin, per_pair) for pair in pairs]
    _write_lines(
        out, [{"anchor": p.anchor, "positive": p.positive, "negatives": n} for p, n in zip(pairs, lines, strict=True)]
    )
    return MiningReport(
        out=out,
        pairs=len(pairs),
        negatives=sum(len(n) for n in lines),
        without_negatives=sum(1 for n in lines if not n),
        skipped_positives=miner.skipped_positives,
        skipped_by_margin=miner.skipped_by_margin,
    )


class _Miner:
    """Searches every distinct anchor once and scores every positive once."""

    def __init__(self, searcher: Searcher, pairs: list[Pair], depth: int, progress: bool) -> None:
        self.positives = positives_by_anchor(pairs)
        anchors = list(self.positives)
        vectors = searcher.encoder.encode_text(anchors, progress=progress)
        rows = searcher.search_vectors(vectors, k=depth)
        self.text_of = _full_texts(searcher, rows)
        self.hits = dict(zip(anchors, rows, strict=True))
        self.query_vector = dict(zip(anchors, vectors, strict=True))
        self.positive_score = self._positive_scores(searcher, progress)
        self.skipped_positives = 0
        self.skipped_by_margin = 0

    def _positive_scores(self, searcher: Searcher, progress: bool) -> dict[tuple[str, str], float]:
        """The score of each (anchor, positive): from the search if the positive was found (the same
        best-chunk score as the candidates), else the cosine of the positive's embedding."""
        scores = {}
        for anchor, hits in self.hits.items():
            scores.update(
                {(anchor, self.text_of[h.id]): h.score for h in hits if self.text_of[h.id] in self.positives[anchor]}
            )
        missing = list(dict.fromkeys(p for a, ps in self.positives.items() for p in ps if (a, p) not in scores))
        vectors = (
            dict(zip(missing, searcher.encoder.encode_text(missing, progress=progress), strict=True)) if missing else {}
        )
        for anchor, positives in self.positives.items():
            for positive in positives:
                if (anchor, positive) not in scores:
                    scores[anchor, positive] = float(np.dot(self.query_vector[anchor], vectors[positive]))
        return scores

    def negatives_of(self, pair: Pair, first_rank: int, margin: float, per_pair: int) -> list[str]:
        """The texts of the kept candidates of ``pair``, best ranked first."""
        ceiling = self.positive_score[pair.anchor, pair.positive] - margin
        kept: list[str] = []
        for hit in self.hits[pair.anchor][first_rank - 1 :]:
            text = self.text_of[hit.id]
            if text in self.positives[pair.anchor]:
                self.skipped_positives += 1
            elif hit.score >= ceiling:
                self.skipped_by_margin += 1
            elif len(kept) < per_pair:
                kept.append(text)
        return kept


def _full_texts(searcher: Searcher, rows: list[list[Hit]]) -> dict[str, str]:
    """``{doc_id: full document text}`` of every hit (a hit's snippet is only its best chunk)."""
    ids = sorted({hit.id for row in rows for hit in row})
    return {doc_id: document.text for doc_id, document in searcher.documents(ids).items()}


def _check_settings(ranks: tuple[int, int], margin: float, per_pair: int) -> None:
    if not (1 <= ranks[0] <= ranks[1]):
        raise InvalidInputError(f"ranks must be FIRST-LAST with 1 <= FIRST <= LAST, got {ranks[0]}-{ranks[1]}")
    if not math.isfinite(margin):
        raise InvalidInputError(f"margin must be a number, got {margin}")
    if per_pair < 1:
        raise InvalidInputError(f"negatives per pair must be at least 1, got {per_pair}")


def _write_lines(out: Path, records: list[dict]) -> None:
    """Write JSON lines atomically: a temporary file beside ``out``, then a rename."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    with tmp.open("w", encoding="utf-8") as handle:
        handle.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, out)
