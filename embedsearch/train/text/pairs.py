"""Training pairs from the user's files: a pairs JSONL file, the qrels of a BEIR folder, or a raw corpus.

A pair is an anchor text (a query), a positive text (a document relevant to it) and optional hard negatives.
Identity is by text: two copies of one document are the same document, whichever file they came from (a mined
negatives file names documents by text, a BEIR qrels file by id; both end up as text here).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from embedsearch.data import Document, read_documents, read_qrels, read_queries
from embedsearch.errors import InvalidInputError, SourceError

if TYPE_CHECKING:
    from embedsearch.data.sources import SourceReport

log = logging.getLogger("embedsearch")
MAX_PROBLEMS_SHOWN = 5
BEIR_FILES = ("corpus.jsonl", "queries.jsonl")


@dataclass(frozen=True)
class Pair:
    """An ``anchor`` with its ``positive`` text and zero or more hard ``negatives`` (texts)."""

    anchor: str
    positive: str
    negatives: tuple[str, ...] = ()


@dataclass
class BeirData:
    """The pairs of one qrels split of a BEIR folder, with the corpus they come from (for dev corpora), and the
    corpus records skipped as invalid (``file:line: reason``)."""

    pairs: list[Pair]
    corpus: list[Document]
    files: list[Path]
    skipped: list[str] = field(default_factory=list)


@dataclass
class PairsReport:
    """What reading a pairs file produced: the pairs, and every line skipped as invalid (``file:line: reason``)."""

    pairs: list[Pair]
    skipped: list[str] = field(default_factory=list)


def read_pairs_file(path: str | Path) -> list[Pair]:
    """Pairs from a JSONL file of ``{"anchor": str, "positive": str, "negatives": [str, ...]}`` lines
    (``negatives`` optional; other keys are ignored).

    Raises :class:`SourceError` listing every bad line as ``file:line: reason`` (invalid JSON or UTF-8, a
    missing or empty anchor/positive, negatives that are not a list of texts), or if the file has no pairs.
    """
    return read_pairs(path).pairs


def read_pairs(path: str | Path, skip_invalid: bool = False) -> PairsReport:
    """:func:`read_pairs_file`, but with ``skip_invalid`` the bad lines are left out and listed in the report
    instead of failing the read (a file without any good line still fails)."""
    path = Path(path)
    pairs, problems = [], []
    for lineno, raw in enumerate(_read_bytes(path).splitlines(), 1):
        if not raw.strip():
            continue
        try:
            pairs.append(_pair_of(raw))
        except ValueError as err:
            problems.append(f"{path}:{lineno}: {err}")
    if problems and not skip_invalid:
        raise SourceError(_summary(path, problems), problems)
    if not pairs:
        raise SourceError(f"{path}: no pairs in the file (expected JSON lines with 'anchor' and 'positive')")
    return PairsReport(pairs, problems)


def _pair_of(raw: bytes) -> Pair:
    try:
        record = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ValueError("not valid UTF-8") from None
    except json.JSONDecodeError as err:
        raise ValueError(f"invalid JSON ({err.msg})") from None
    if not isinstance(record, dict):
        raise ValueError(f"expected a JSON object, got {type(record).__name__}")
    texts = [record.get("anchor"), record.get("positive")]
    if not all(isinstance(t, str) and t.strip() for t in texts):
        raise ValueError("'anchor' and 'positive' must be non-empty strings")
    negatives = record.get("negatives", [])
    if not isinstance(negatives, list) or not all(isinstance(n, str) and n.strip() for n in negatives):
        raise ValueError("'negatives' must be a list of non-empty strings")
    return Pair(texts[0], texts[1], tuple(negatives))


def read_beir_pairs(folder: str | Path, split: str = "train", *, skip_invalid: bool = False) -> BeirData:
    """One pair per relevant (query, document) of ``qrels/<split>.tsv``: the query text and the document's
    text (title and text, as ``index build`` reads it). Judgements whose query or document is missing from
    ``queries.jsonl``/``corpus.jsonl`` are skipped with a warning; so are, with ``skip_invalid``, invalid
    corpus records (listed in ``skipped``).

    Raises :class:`SourceError` naming the missing files (listing the splits there are) or a malformed one.
    """
    folder = Path(folder)
    qrels_path = beir_qrels_path(folder, split)
    report = read_documents([folder / "corpus.jsonl"], skip_invalid=skip_invalid)
    corpus = report.documents
    queries = read_queries(folder / "queries.jsonl")
    text_of = {d.id: d.text for d in corpus}
    pairs, missing = [], 0
    for query_id, judged in read_qrels(qrels_path).items():
        for doc_id in judged:
            if query_id in queries and doc_id in text_of:
                pairs.append(Pair(queries[query_id], text_of[doc_id]))
            else:
                missing += 1
    if missing:
        log.warning(
            "%s: %d judgement(s) name a query or document that is not in the folder; skipped", qrels_path, missing
        )
    if not pairs:
        raise SourceError(f"{qrels_path}: no relevant (query, document) pairs")
    files = [folder / "corpus.jsonl", folder / "queries.jsonl", qrels_path]
    return BeirData(pairs, corpus, files, report.problems)


def beir_qrels_path(folder: Path, split: str) -> Path:
    """``folder/qrels/<split>.tsv``, after checking the BEIR files are there (:class:`SourceError` if not)."""
    qrels = folder / "qrels" / f"{split}.tsv"
    missing = [name for name in (*BEIR_FILES, f"qrels/{split}.tsv") if not (folder / name).is_file()]
    if missing:
        splits = sorted(p.stem for p in (folder / "qrels").glob("*.tsv")) if (folder / "qrels").is_dir() else []
        have = f" (qrels splits there: {', '.join(splits)})" if splits else ""
        raise SourceError(f"{folder} is not a BEIR folder with split {split!r}: missing {', '.join(missing)}{have}")
    return qrels


def read_corpus(source: str | Path, skip_invalid: bool = False) -> SourceReport:
    """Documents for self-supervised training: a BEIR folder's ``corpus.jsonl``, or any JSONL/CSV file or
    folder of .txt/.md that ``index build`` reads. Raises :class:`SourceError` for bad records, unless
    ``skip_invalid`` (then they are left out and listed in the report's ``problems``)."""
    source = Path(source)
    if source.is_dir() and (source / "corpus.jsonl").is_file():
        source = source / "corpus.jsonl"
    return read_documents([source], skip_invalid=skip_invalid)


def attach_negatives(pairs: list[Pair], mined: list[Pair], source: Path) -> list[Pair]:
    """``pairs`` with the negatives of the line of ``mined`` that has the same anchor and positive.

    Raises :class:`InvalidInputError` if no line of ``mined`` matches any pair (a file mined for other data).
    """
    by_pair = {(m.anchor, m.positive): m.negatives for m in mined}
    merged = [Pair(p.anchor, p.positive, by_pair.get((p.anchor, p.positive), p.negatives)) for p in pairs]
    if not any((p.anchor, p.positive) in by_pair for p in pairs):
        raise InvalidInputError(
            f"no line of {source} has the anchor and positive of a training pair; was it mined from this data?"
        )
    return merged


def positives_by_anchor(pairs: Iterable[Pair]) -> dict[str, set[str]]:
    """``{anchor: {every positive text of that anchor}}``: documents never used as negatives of that anchor."""
    found: dict[str, set[str]] = {}
    for pair in pairs:
        found.setdefault(pair.anchor, set()).add(pair.positive)
    return found


def _read_bytes(path: Path) -> bytes:
    if path.is_dir() or not path.exists():
        raise SourceError(f"pairs file not found: {path}")
    try:
        return path.read_bytes()
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror}") from err


def _summary(path: Path, problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
    return f"{len(problems)} invalid line(s) in {path}: {shown}{more}"
