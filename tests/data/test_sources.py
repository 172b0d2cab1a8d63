from __future__ import annotations

import json

import pytest

from embedsearch.data import chunk_spans, read_documents, read_qrels, read_queries
from embedsearch.data.documents import document_from_record
from embedsearch.errors import SourceError


def test_jsonl_beir_layout_joins_title_and_text_and_keeps_metadata(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps({"_id": "1", "title": "T", "text": "body", "metadata": {"y": 1}, "lang": "en"}) + "\n")
    [doc] = read_documents([path]).documents
    assert (doc.id, doc.text, doc.metadata) == ("1", "T\n\nbody", {"y": 1, "lang": "en"})


def test_csv_accepts_id_column(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text('id,text,source\n7,"hello, world",web\n')
    [doc] = read_documents([path]).documents
    assert (doc.id, doc.text, doc.metadata) == ("7", "hello, world", {"source": "web"})


def test_folder_ids_are_relative_paths(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.txt").write_text("alpha")
    (tmp_path / "sub" / "b.md").write_text("# beta")
    (tmp_path / "skip.bin").write_bytes(b"\0")
    docs = read_documents([tmp_path]).documents
    assert [d.id for d in docs] == ["a.txt", "sub/b.md"]


def test_malformed_lines_are_rejected_with_file_and_line(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "text": "ok"}\n{not json\n{"_id": "3", "text": ""}\n{"text": "no id"}\n')
    with pytest.raises(SourceError) as err:
        read_documents([path])
    assert f"{path}:2: invalid JSON" in str(err.value)
    assert [p.split(": ")[0] for p in err.value.problems] == [f"{path}:2", f"{path}:3", f"{path}:4"]


def test_skip_invalid_keeps_good_records_and_reports_the_rest(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_text('{"_id": "1", "text": "ok"}\n{not json\n{"_id": "1", "text": "again"}\n')
    report = read_documents([path], skip_invalid=True)
    assert [d.id for d in report.documents] == ["1"]
    assert len(report.problems) == 2 and "duplicate id '1'" in report.problems[1]


def test_invalid_utf8_line_is_reported(tmp_path):
    path = tmp_path / "c.jsonl"
    path.write_bytes(b'{"_id": "1", "text": "ok"}\n{"_id": "2", "text": "\xff"}\n')
    report = read_documents([path], skip_invalid=True)
    assert report.problems == [f"{path}:2: not valid UTF-8"]


@pytest.mark.parametrize("name", ["missing.jsonl", "data.parquet"])
def test_bad_source_paths(tmp_path, name):
    path = tmp_path / name
    if name.endswith("parquet"):
        path.write_bytes(b"x")
    with pytest.raises(SourceError):
        read_documents([path])


def test_record_without_text_is_an_error():
    with pytest.raises(ValueError, match="no text"):
        document_from_record({"_id": "x", "title": " ", "text": ""})


def test_chunk_spans_cover_text_with_overlap():
    tokens = [(i * 2, i * 2 + 1) for i in range(10)]  # "a a a ..." one-char tokens
    spans = chunk_spans(tokens, 19, max_tokens=4, overlap=1)
    assert spans == [(0, 7), (6, 13), (12, 19)]
    assert chunk_spans(tokens[:4], 7, max_tokens=4, overlap=1) == [(0, 7)]
    with pytest.raises(ValueError):
        chunk_spans(tokens, 19, max_tokens=4, overlap=4)


def test_beir_queries_and_graded_qrels(tmp_path):
    queries = tmp_path / "q.jsonl"
    queries.write_text('{"_id": "q1", "text": "what"}\n')
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\td1\t2\nq1\td2\t0\n")
    assert read_queries(queries) == {"q1": "what"}
    assert read_qrels(qrels) == {"q1": {"d1": 2}}
    qrels.write_text("q1\td1\t1\n")
    with pytest.raises(SourceError, match="header"):
        read_qrels(qrels)


# folders of images


def test_an_image_folder_yields_one_image_document_per_file_and_reports_corrupt_ones(image_folder):
    from PIL import Image

    report = read_documents([image_folder], skip_invalid=True, embeds={"text", "image"})
    documents = {d.id: d for d in report.documents}
    assert sorted(documents) == ["alpha/blue.webp", "alpha/yellow.png", "green.jpg", "red.png"]
    red = documents["red.png"]
    assert (red.kind, red.text, red.metadata["path"]) == ("image", "red.png", "red.png")
    assert red.source == str((image_folder / "red.png").resolve()) and "image_path" not in red.metadata
    assert len(report.problems) == 1 and report.problems[0].startswith(f"{image_folder / 'broken.gif'}: unreadable")

    before = red.content_hash()
    Image.new("RGB", (16, 16), (0, 0, 0)).save(image_folder / "red.png")
    again = read_documents([image_folder], skip_invalid=True, embeds={"text", "image"}).documents
    assert next(d for d in again if d.id == "red.png").content_hash() != before  # the hash follows the bytes
    with pytest.raises(SourceError, match="broken.gif"):
        read_documents([image_folder], embeds={"image"})  # without skip_invalid, nothing is half-read


def test_transparent_pixels_are_composited_on_white(image_folder):
    from embedsearch.data import load_image

    picture = load_image(image_folder / "alpha" / "yellow.png")
    assert picture.mode == "RGB"
    assert picture.getpixel((0, 9)) == (255, 255, 255)  # hidden red under alpha 0 becomes white
    assert picture.getpixel((0, 0)) == (230, 220, 30)


def test_a_text_only_encoder_reads_text_files_and_refuses_a_folder_of_only_images(image_folder):
    assert [d.id for d in read_documents([image_folder]).documents] == ["notes.txt"]
    (image_folder / "notes.txt").unlink()
    with pytest.raises(SourceError, match=r"holds 5 image\(s\) and no .txt/.md files, but the encoder embeds only"):
        read_documents([image_folder])
