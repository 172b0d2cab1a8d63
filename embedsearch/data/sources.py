"""Read documents from JSONL files, CSV files and folders of .txt/.md files or of images.

Policy for bad records: every problem is collected with ``file:line: reason``. By default any problem rejects
the whole read (:class:`SourceError` listing them), so nothing is half-indexed; with ``skip_invalid=True`` the
bad records are skipped and the problems are returned to the caller to report. Nothing is dropped silently.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from embedsearch.data.documents import MAX_DOCUMENT_BYTES, Document, check_size, document_from_record, parse_json
from embedsearch.data.images import IMAGE_SUFFIXES, image_document
from embedsearch.errors import SourceError

TEXT_SUFFIXES = (".txt", ".md")
MAX_PROBLEMS_SHOWN = 5
# A JSONL line or CSV record may carry a document of MAX_DOCUMENT_BYTES plus its metadata and JSON escapes;
# a longer one is refused without being held in memory whole.
MAX_RECORD_BYTES = 4 * MAX_DOCUMENT_BYTES


@dataclass
class SourceReport:
    """What a read produced: the documents, and every skipped record as ``file:line: reason``."""

    documents: list[Document] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def read_documents(
    sources: Iterable[str | Path], skip_invalid: bool = False, *, embeds: Collection[str] = ("text",)
) -> SourceReport:
    """Read every source into one list of documents with unique ids.

    ``embeds`` is what the encoder can embed (its ``modalities``): when it includes ``"image"``, a folder that
    holds images yields its images (and not its text files); otherwise a folder yields its .txt/.md files.
    Raises :class:`SourceError` if a source does not exist or has an unknown type, if a folder holds only
    images that cannot be embedded, and, unless ``skip_invalid``, if any record is malformed (an image that
    does not decode), has no id or no text, or repeats an earlier id.
    """
    report = SourceReport()
    seen: dict[str, str] = {}
    for source in sources:
        for where, item in _records_of(Path(source), frozenset(embeds)):
            _accept(report, seen, where, item)
    if report.problems and not skip_invalid:
        raise SourceError(_summary(report.problems), report.problems)
    if not report.documents:
        raise SourceError(f"no documents found in {', '.join(str(s) for s in sources)}", report.problems)
    return report


def _accept(report: SourceReport, seen: dict[str, str], where: str, item: Document | str) -> None:
    if isinstance(item, str):
        report.problems.append(f"{where}: {item}")
    elif item.id in seen:
        report.problems.append(f"{where}: duplicate id {item.id!r} (first at {seen[item.id]})")
    else:
        seen[item.id] = where
        report.documents.append(item)


def _summary(problems: list[str]) -> str:
    shown = "; ".join(problems[:MAX_PROBLEMS_SHOWN])
    more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
    return f"{len(problems)} invalid record(s): {shown}{more}; fix them or pass --skip-invalid"


def _records_of(path: Path, embeds: frozenset[str]) -> Iterator[tuple[str, Document | str]]:
    """Yield ``(location, document or problem)`` for every record of one source."""
    if path.is_dir():
        yield from _read_folder(path, embeds)
    elif not path.exists():
        raise SourceError(f"source not found: {path}")
    elif path.suffix.lower() in (".jsonl", ".ndjson"):
        yield from _read_jsonl(path)
    elif path.suffix.lower() == ".csv":
        yield from _read_csv(path)
    elif path.suffix.lower() in TEXT_SUFFIXES:
        yield from _read_text_files(path.parent, [path])
    elif path.suffix.lower() in IMAGE_SUFFIXES and "image" in embeds:
        yield from _read_image_files(path.parent, [path])
    else:
        raise SourceError(f"unsupported source {path}: expected a .jsonl or .csv file, or a folder of .txt/.md files")


def _read_jsonl(path: Path) -> Iterator[tuple[str, Document | str]]:
    with _open_binary(path) as handle:
        for lineno, raw in bounded_lines(handle, MAX_RECORD_BYTES):
            where = f"{path}:{lineno}"
            if raw is None:
                yield where, f"a line over {MAX_RECORD_BYTES:,} bytes (the limit of one record)"
                continue
            if not raw.strip():
                continue
            try:
                yield where, document_from_record(parse_json(raw.decode("utf-8")))
            except UnicodeDecodeError:
                yield where, "not valid UTF-8"
            except json.JSONDecodeError as err:
                yield where, f"invalid JSON ({err.msg})"
            except ValueError as err:
                yield where, str(err)


def bounded_lines(handle, limit: int) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, bytes)`` of each line of a binary file; ``None`` for a line over ``limit`` bytes, which is
    skipped in pieces, so that memory stays bounded whatever the file holds."""
    lineno = 0
    while True:
        line = handle.readline(limit + 1)
        if not line:
            return
        lineno += 1
        if len(line) <= limit or line.endswith(b"\n"):
            yield lineno, line
            continue
        while line and not line.endswith(b"\n"):
            line = handle.readline(1 << 20)
        yield lineno, None


def _read_csv(path: Path) -> Iterator[tuple[str, Document | str]]:
    csv.field_size_limit(MAX_RECORD_BYTES)
    with _open_text(path, newline="") as handle:
        reader = csv.DictReader(handle, strict=True)
        start = 2  # the line the next record begins on (the header is line 1)
        try:
            for row in reader:
                yield _csv_row(f"{path}:{start}", row)
                start = reader.line_num + 1
        except UnicodeDecodeError as err:
            yield f"{path}:{start}", f"not valid UTF-8 ({err.reason}); the rest of the file is skipped"
        except csv.Error as err:
            yield f"{path}:{start}", f"{_csv_problem(err)}; the rest of the file is skipped"


def _csv_problem(err: csv.Error) -> str:
    message = str(err)
    if "unexpected end of data" in message:
        return "a quoted field that is never closed (unterminated quote)"
    if "field larger than field limit" in message:
        return f"a field over {MAX_RECORD_BYTES:,} bytes (the limit of one record)"
    return f"unreadable CSV ({message})"


def _csv_row(where: str, row: dict) -> tuple[str, Document | str]:
    if None in row:
        return where, f"{len(row[None])} more field(s) than the header has"
    try:
        return where, document_from_record({k: v for k, v in row.items() if v not in (None, "")})
    except ValueError as err:
        return where, str(err)


def _read_folder(folder: Path, embeds: frozenset[str]) -> Iterator[tuple[str, Document | str]]:
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    texts = [p for p in files if p.suffix.lower() in TEXT_SUFFIXES]
    images = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
    if images and "image" in embeds:
        yield from _read_image_files(folder, images)
    elif images and not texts:
        raise SourceError(
            f"{folder} holds {len(images)} image(s) and no .txt/.md files, but the encoder embeds only "
            f"{' and '.join(sorted(embeds))}; use an encoder that embeds images"
        )
    else:
        yield from _read_text_files(folder, texts)


def _read_image_files(root: Path, files: list[Path]) -> Iterator[tuple[str, Document | str]]:
    for file in files:
        try:
            yield str(file), image_document(root, file)
        except ValueError as err:
            yield str(file), str(err)


def _read_text_files(root: Path, files: list[Path]) -> Iterator[tuple[str, Document | str]]:
    for file in files:
        doc_id = file.relative_to(root).as_posix()
        try:
            if file.stat().st_size > MAX_RECORD_BYTES:
                raise ValueError(f"a file of {file.stat().st_size:,} bytes, over the limit of {MAX_DOCUMENT_BYTES:,}")
            text = file.read_text(encoding="utf-8").strip()
            check_size(text, doc_id)
        except (OSError, UnicodeDecodeError) as err:
            yield str(file), f"unreadable ({err.__class__.__name__}: {err})"
            continue
        except ValueError as err:
            yield str(file), str(err)
            continue
        yield str(file), Document(doc_id, text, {"path": doc_id}) if text else "empty file"


def _open_text(path: Path, newline: str | None = None):
    try:
        return path.open(encoding="utf-8", errors="strict", newline=newline)
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror}") from err


def _open_binary(path: Path):
    try:
        return path.open("rb")
    except OSError as err:
        raise SourceError(f"cannot read {path}: {err.strerror}") from err
