"""Reading training pairs: pairs files, BEIR qrels (never the test split), corpora, mined negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from embedsearch.errors import InvalidInputError, SourceError
from embedsearch.train.text.batches import random_crop
from embedsearch.train.text.config import TextTrainConfig
from embedsearch.train.text.pairs import (
    Pair,
    attach_negatives,
    read_beir_pairs,
    read_corpus,
    read_pairs,
    read_pairs_file,
)
from tests.train.conftest import toy_pairs, write_jsonl


def test_a_pairs_file_with_and_without_negatives(tmp_path):
    path = tmp_path / "pairs.jsonl"
    path.write_text(
        '{"anchor": "a", "positive": "p", "negatives": ["n1", "n2"], "source": "ignored"}\n\n'
        '{"anchor": "b", "positive": "q"}\n',
        encoding="utf-8",
    )
    assert read_pairs_file(path) == [Pair("a", "p", ("n1", "n2")), Pair("b", "q")]


def test_every_bad_line_is_named_with_file_and_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    lines = [
        b'{"anchor": "a", "positive": "p"}',
        b'{"anchor": "a", "positive": ',
        b'{"anchor": "a"}',
        b'{"anchor": "a", "positive": "p", "negatives": "n"}',
        b'["a", "p"]',
        b'{"anchor": "\xff", "positive": "p"}',
        b'{"anchor": " ", "positive": "p"}',
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    with pytest.raises(SourceError) as caught:
        read_pairs_file(path)
    assert [p.split(": ", 1)[0] for p in caught.value.problems] == [f"{path}:{n}" for n in range(2, 8)]
    assert "invalid JSON" in caught.value.problems[0]
    assert "'anchor' and 'positive' must be non-empty strings" in caught.value.problems[1]
    assert "'negatives' must be a list" in caught.value.problems[2]
    assert "not valid UTF-8" in caught.value.problems[4]
    message = str(caught.value)
    assert message.startswith(f"6 invalid line(s) in {path}: {path}:2: ") and "(and 1 more)" in message
    assert "\n" not in message


@pytest.mark.parametrize("content", ["", "\n\n"])
def test_an_empty_pairs_file(tmp_path, content):
    path = tmp_path / "pairs.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(SourceError, match="no pairs in the file"):
        read_pairs_file(path)


def test_a_missing_pairs_file(tmp_path):
    with pytest.raises(SourceError, match="pairs file not found"):
        read_pairs_file(tmp_path / "nope.jsonl")


def test_beir_pairs_come_from_the_train_qrels_only(beir_folder):
    beir = read_beir_pairs(beir_folder)
    pairs = toy_pairs()
    assert beir.pairs == [Pair(p["anchor"], p["positive"]) for p in pairs[:100]]
    test_anchors = {p["anchor"] for p in pairs[100:]}
    assert not test_anchors & {p.anchor for p in beir.pairs}
    assert [f.name for f in beir.files] == ["corpus.jsonl", "queries.jsonl", "train.tsv"]


def test_beir_document_text_is_title_and_text_like_index_build(tmp_path):
    folder = tmp_path / "beir"
    (folder / "qrels").mkdir(parents=True)
    write_jsonl(folder / "corpus.jsonl", [{"_id": "d1", "title": "Cats", "text": "purr"}])
    write_jsonl(folder / "queries.jsonl", [{"_id": "q1", "text": "what purrs"}, {"_id": "q2", "text": "nothing"}])
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\tgone\t1\nq1\td1\t0\n")
    assert read_beir_pairs(folder).pairs == [Pair("what purrs", "Cats\n\npurr")]


def test_a_beir_folder_with_missing_files_names_them_and_the_splits_there_are(beir_folder):
    (beir_folder / "queries.jsonl").unlink()
    with pytest.raises(SourceError) as caught:
        read_beir_pairs(beir_folder, split="dev")
    assert str(caught.value) == (
        f"{beir_folder} is not a BEIR folder with split 'dev': missing queries.jsonl, qrels/dev.tsv "
        "(qrels splits there: test, train)"
    )


@pytest.mark.parametrize("field", ["split", "dev_split"])
def test_the_test_split_is_never_used_for_training_or_model_selection(tmp_path, field):
    with pytest.raises(InvalidInputError, match="'test' qrels are for the final evaluation only"):
        TextTrainConfig(data=tmp_path, out=tmp_path / "out", **{field: "test"})


def test_a_corpus_is_a_beir_folder_s_corpus_or_any_source_index_build_reads(beir_folder, tmp_path):
    assert len(read_corpus(beir_folder).documents) == 120
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("alpha beta", encoding="utf-8")
    assert [d.text for d in read_corpus(notes).documents] == ["alpha beta"]


def test_skip_invalid_leaves_bad_records_out_and_lists_them(beir_folder, tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"anchor": "a", "positive": "p"}\n{"anchor": "a"}\nnot json\n', encoding="utf-8")
    with pytest.raises(SourceError, match="2 invalid line"):
        read_pairs(pairs)
    report = read_pairs(pairs, skip_invalid=True)
    assert report.pairs == [Pair("a", "p")]
    assert report.skipped == [
        f"{pairs}:2: 'anchor' and 'positive' must be non-empty strings",
        f"{pairs}:3: invalid JSON (Expecting value)",
    ]
    with (beir_folder / "corpus.jsonl").open("a", encoding="utf-8") as corpus:
        corpus.write('{"_id": "empty", "text": ""}\n')
    with pytest.raises(SourceError, match=r"corpus\.jsonl:121: "):
        read_beir_pairs(beir_folder)
    beir = read_beir_pairs(beir_folder, skip_invalid=True)
    assert len(beir.pairs) == 100 and len(beir.corpus) == 120
    corpus = beir_folder / "corpus.jsonl"
    assert len(beir.skipped) == 1 and beir.skipped[0].startswith(f"{corpus}:121: document 'empty'")  # file:line
    assert len(read_corpus(beir_folder, skip_invalid=True).documents) == 120


def test_mined_negatives_attach_to_the_pair_with_the_same_anchor_and_positive(tmp_path):
    pairs = [Pair("a", "p"), Pair("a", "q"), Pair("b", "r", ("old",))]
    mined = [Pair("a", "q", ("n1",)), Pair("b", "r", ("n2", "n3")), Pair("z", "p", ("n4",))]
    assert attach_negatives(pairs, mined, tmp_path / "mined.jsonl") == [
        Pair("a", "p"),
        Pair("a", "q", ("n1",)),
        Pair("b", "r", ("n2", "n3")),
    ]


def test_a_negatives_file_for_other_data_is_refused(tmp_path):
    with pytest.raises(InvalidInputError, match="was it mined from this data"):
        attach_negatives([Pair("a", "p")], [Pair("x", "y", ("n",))], tmp_path / "mined.jsonl")


def test_random_crops_are_seeded_spans_of_whole_words():
    text = " ".join(f"w{i}" for i in range(100))
    crops = [random_crop(text, np.random.default_rng(7), (0.1, 0.5)) for _ in range(2)]
    assert crops[0] == crops[1]
    rng = np.random.default_rng(0)
    for _ in range(50):
        words = random_crop(text, rng, (0.1, 0.5)).split()
        assert 10 <= len(words) <= 50
        first = int(words[0][1:])
        assert words == [f"w{i}" for i in range(first, first + len(words))]
    assert random_crop("single", rng) == "single"


def test_settings_are_validated(tmp_path: Path):
    with pytest.raises(InvalidInputError, match="batch size must be at least 2"):
        TextTrainConfig(data=tmp_path, out=tmp_path / "o", batch_size=1)
    with pytest.raises(InvalidInputError, match="unknown self-supervised mode 'mask'; choose one of crop, dropout"):
        TextTrainConfig(data=tmp_path, out=tmp_path / "o", self_supervised="mask")
    with pytest.raises(InvalidInputError, match="--negatives does not apply"):
        TextTrainConfig(data=tmp_path, out=tmp_path / "o", self_supervised="crop", negatives=tmp_path / "n.jsonl")
