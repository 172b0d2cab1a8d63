"""Queries and relevance judgements in the BEIR layout (queries.jsonl, qrels/*.tsv)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from embedsearch.errors import SourceError


def read_queries(path: str | Path, *, images: bool = False) -> dict[str, str | Path]:
    """``{query_id: text}`` from a JSONL file of ``{"_id", "text"}`` lines (``id`` is accepted too).

    With ``images=True`` a line may be ``{"_id", "image"}`` instead: its value is the image file's ``Path``
    (a relative one starts from the queries file's folder). Raises :class:`SourceError` naming ``file:line`` for
    a malformed line, a missing id, an empty text or a missing image file.
    """
    path = Path(path)
    queries: dict[str, str | Path] = {}
    for lineno, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            qid = str(record.get("_id", record.get("id", "")))
        except (json.JSONDecodeError, AttributeError) as err:
            raise SourceError(f"{path}:{lineno}: not a JSON object ({err})") from err
        queries[qid] = _query(path, lineno, qid, record, images)
    if not queries:
        raise SourceError(f"{path}: no queries in the file")
    return queries


def _query(path: Path, lineno: int, qid: str, record: dict, images: bool) -> str | Path:
    text = str(record.get("text") or "").strip()
    image = record.get("image") if images else None
    if image is not None and qid and not text:
        if not isinstance(image, str) or not (path.parent / image).is_file():
            raise SourceError(f"{path}:{lineno}: query image {image!r} is not a file")
        return (path.parent / image).resolve()
    if not qid or not text or image is not None:
        wanted = "either a non-empty 'text' or an 'image'" if images else "a non-empty 'text'"
        raise SourceError(f"{path}:{lineno}: a query needs '_id' and {wanted}")
    return text


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: grade}}`` from a BEIR qrels TSV with the header ``query-id corpus-id score``.

    Rows with a grade of 0 or less are judged non-relevant and left out. Raises :class:`SourceError` for a
    missing header or a malformed row.
    """
    path = Path(path)
    rows = list(csv.reader(_lines(path), delimiter="\t"))
    if not rows or [c.strip().lower() for c in rows[0][:3]] != ["query-id", "corpus-id", "score"]:
        raise SourceError(f"{path}:1: expected the header 'query-id<TAB>corpus-id<TAB>score'")
    qrels: dict[str, dict[str, int]] = {}
    for lineno, row in enumerate(rows[1:], 2):
        if not row:
            continue
        try:
            qid, doc_id, grade = row[0], row[1], int(row[2])
        except (IndexError, ValueError) as err:
            raise SourceError(f"{path}:{lineno}: expected query-id, corpus-id and an integer score") from err
        if grade > 0:
            qrels.setdefault(qid, {})[doc_id] = grade
    return qrels


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SourceError(f"cannot read {path}: {err}") from err
