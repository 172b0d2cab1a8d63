"""Hostile input at the data stage: records too large, values that JSON cannot carry back, invalid Unicode, deep
nesting, unterminated CSV quotes and images too large to decode, each refused with ``file:line: reason`` before
it costs memory or reaches a store."""

from __future__ import annotations

import io
import json
import resource
import zlib

import pytest
from PIL import Image

from embedsearch.data import document_from_record, load_image, read_documents
from embedsearch.data.documents import MAX_DOCUMENT_BYTES, RecordTooLarge
from embedsearch.data.images import MAX_IMAGE_PIXELS
from embedsearch.errors import SourceError


def _problems(path) -> list[str]:
    """The problems of a file whose last line is one good record (a read that finds no document fails)."""
    with path.open("a") as handle:
        handle.write('{"_id": "good", "text": "a good record"}\n')
    report = read_documents([path], skip_invalid=True)
    assert [d.id for d in report.documents] == ["good"]
    return report.problems


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_non_finite_numbers_in_jsonl_are_refused_with_file_and_line(tmp_path, constant):
    path = tmp_path / "docs.jsonl"
    path.write_text(f'{{"_id": "a", "text": "ok"}}\n{{"_id": "b", "text": "x", "score": {constant}}}\n')
    report = read_documents([path], skip_invalid=True)
    assert [d.id for d in report.documents] == ["a"]
    assert len(report.problems) == 1 and report.problems[0].startswith(f"{path}:2: ")
    assert "null or a string" in report.problems[0] or "too large" in report.problems[0]


def test_non_finite_numbers_from_other_sources_are_refused_too():
    with pytest.raises(ValueError, match="JSON cannot carry"):
        document_from_record({"_id": "a", "text": "x", "meta": {"deep": [1.0, float("nan")]}})


@pytest.mark.parametrize(
    "line,where",
    [
        ('{"_id": "\\ud800", "text": "x"}', "the id"),
        ('{"_id": "a", "text": "bad \\udfff text"}', "the text"),
        ('{"_id": "a", "text": "x", "tag": "\\ud83d"}', "the metadata"),
        ('{"_id": "a", "text": "x", "\\ud800key": 1}', "a key of"),
    ],
)
def test_lone_surrogates_are_refused_not_stored(tmp_path, line, where):
    path = tmp_path / "docs.jsonl"
    path.write_text(line + "\n")
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:1: ") and where in problem and "lone surrogate" in problem


def test_deeply_nested_json_is_one_problem_not_a_crash(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text('{"_id": "a", "text": "x", "deep": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    [problem] = _problems(path)
    assert problem.startswith(f"{path}:1: ") and "nest" in problem
    path.write_text('{"_id": "a", "text": "x", "deep": ' + "[" * 40 + "]" * 40 + "}\n")
    assert "deeper than" in _problems(path)[0]


def test_a_document_over_the_size_limit_is_refused_without_reading_it_whole(tmp_path):
    path = tmp_path / "docs.jsonl"
    with path.open("w") as handle:
        handle.write('{"_id": "small", "text": "fine"}\n')
        handle.write('{"_id": "huge", "text": "' + "word " * (12 * MAX_DOCUMENT_BYTES // 5) + '"}\n')
        handle.write('{"_id": "after", "text": "also fine"}\n')
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    report = read_documents([path], skip_invalid=True)
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert [d.id for d in report.documents] == ["small", "after"]
    assert report.problems == [f"{path}:2: a line over {4 * MAX_DOCUMENT_BYTES:,} bytes (the limit of one record)"]
    assert grown_kib < 8 * MAX_DOCUMENT_BYTES / 1024  # the 12 MiB line was skipped in pieces, never held


def test_a_text_over_the_limit_is_refused_as_too_large():
    with pytest.raises(RecordTooLarge, match="over the limit"):
        document_from_record({"_id": "a", "text": "é" * (MAX_DOCUMENT_BYTES // 2 + 1)})  # 2 bytes each in UTF-8
    assert document_from_record({"_id": "a", "text": "é" * (MAX_DOCUMENT_BYTES // 2)}).id == "a"


def test_an_unterminated_csv_quote_is_an_error_at_its_line_not_merged_records(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text('id,text\n1,first\n2,"never closed\n3,third\n4,fourth\n')
    with pytest.raises(SourceError) as err:
        read_documents([path])
    assert err.value.problems == [
        f"{path}:3: a quoted field that is never closed (unterminated quote); the rest of the file is skipped"
    ]
    report = read_documents([path], skip_invalid=True)
    assert [d.id for d in report.documents] == ["1"]


def test_a_text_file_over_the_limit_is_a_problem(tmp_path):
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "big.txt").write_text("x" * (4 * MAX_DOCUMENT_BYTES + 10))
    (tmp_path / "notes" / "ok.txt").write_text("fine")
    report = read_documents([tmp_path / "notes"], skip_invalid=True)
    assert [d.id for d in report.documents] == ["ok.txt"] and "over the limit" in report.problems[0]


def _png_header_claiming(width: int, height: int) -> bytes:
    """A valid PNG of one row, whose header is rewritten to claim ``width`` x ``height`` pixels."""
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")  # IHDR's width and height
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")  # and its checksum
    return bytes(data)


def test_an_image_over_the_pixel_limit_is_refused_from_its_header_before_decoding():
    side = int(MAX_IMAGE_PIXELS**0.5) + 1
    with pytest.raises(ValueError, match="pixels is over the limit"):
        load_image(_png_header_claiming(13_000, 13_000))  # decoding it would take 500 MB+ (a bomb of 80 bytes)
    with pytest.raises(ValueError, match=f"{side}x{side} pixels"):
        load_image(_png_header_claiming(side, side))


def test_the_id_is_a_string_or_a_number():
    assert document_from_record({"_id": 7, "text": "x"}).id == "7"
    with pytest.raises(ValueError, match="string or a number"):
        document_from_record({"_id": {"a": 1}, "text": "x"})
    assert json.dumps(document_from_record({"_id": "a", "text": "x", "n": 1.5}).metadata) == '{"n": 1.5}'
