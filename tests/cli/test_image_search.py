"""``embedsearch search --image``, image lines in ``--queries``, and ``embedsearch eval pairs``, as a user meets
them: ``fake-clip`` (an image is the word of its nearest primary colour) and a tiny real open_clip directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import error_line, hits, one_line_error, run_cli, write_jsonl
from tests.fake_encoder import COLOURS

CAPTIONS = [
    {"_id": "c-red", "text": "a red sign"},
    {"_id": "c-green", "text": "green grass"},
    {"_id": "c-blue", "text": "the blue sea"},
]


@pytest.fixture
def pictures(image_folder: Path) -> Path:
    (image_folder / "broken.gif").unlink()
    return image_folder


@pytest.fixture
def pics(es, pictures: Path) -> Path:
    """Index ``pics`` of the colour images, built with fake-clip."""
    es("index", "build", "pics", pictures, "--encoder", "fake-clip")
    return pictures


@pytest.fixture
def captions(es, tmp_path: Path) -> None:
    """Index ``captions`` of CAPTIONS (text documents), built with fake-clip."""
    es("index", "build", "captions", write_jsonl(tmp_path / "captions.jsonl", CAPTIONS), "--encoder", "fake-clip")


def test_image_to_image(es, pics):
    found = hits(es, "pics", "--image", pics / "red.png", "-k", "2")
    assert [h["id"] for h in found][:1] == ["red.png"] and found[0]["score"] == pytest.approx(1.0, abs=1e-5)
    text = es("search", "pics", "--image", pics / "alpha" / "blue.webp", "-k", "1").stdout
    assert text.splitlines()[0].endswith("alpha/blue.webp") and text.startswith("  1. 1.0000")


def test_image_to_text_on_a_caption_index(es, captions, pictures):
    found = hits(es, "captions", "--image", pictures / "green.jpg", "-k", "3")
    assert [h["id"] for h in found][0] == "c-green" and found[0]["snippet"] == "green grass"


def test_queries_file_mixes_text_and_image_lines(es, captions, pictures, tmp_path):
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "red.png").write_bytes((pictures / "red.png").read_bytes())
    queries = write_jsonl(
        tmp_path / "q" / "queries.jsonl",
        [
            {"_id": "q-sea", "text": "blue sea"},
            {"_id": "q-red", "image": "red.png"},  # relative to the queries file
            {"_id": "q-green", "image": str(pictures / "green.jpg")},
        ],
    )
    rows = [json.loads(line) for line in es("search", "captions", "--queries", queries, "-k", "2").stdout.splitlines()]
    assert [r["query_id"] for r in rows] == ["q-sea", "q-red", "q-green"]
    assert [r["results"][0]["id"] for r in rows] == ["c-blue", "c-red", "c-green"]
    single = hits(es, "captions", "--image", pictures / "green.jpg", "-k", "2")
    assert rows[2]["results"] == [{"id": h["id"], "score": pytest.approx(h["score"], abs=1e-5)} for h in single]


def test_a_queries_file_naming_a_missing_image(es, captions, tmp_path):
    queries = write_jsonl(tmp_path / "queries.jsonl", [{"_id": "q1", "text": "red"}, {"_id": "q2", "image": "no.png"}])
    message = one_line_error(es("search", "captions", "--queries", queries, code=2))
    assert f"{queries}:2: query image 'no.png' is not a file" in message


def test_an_image_query_on_a_text_only_index(es, animals_file, pictures):
    es("index", "build", "zoo", animals_file, "--encoder", "fake")
    message = one_line_error(es("search", "zoo", "--image", pictures / "red.png", code=1))
    assert message == "Error: index 'zoo' cannot answer image queries: its encoder 'fake' embeds only text"


def test_an_unreadable_query_image(es, pics, tmp_path):
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG but truncated")
    message = one_line_error(es("search", "pics", "--image", broken, code=2))
    assert message.startswith(f"Error: query image {broken}: unreadable image (")
    assert "does not exist" in error_line(es("search", "pics", "--image", tmp_path / "none.png", code=2))


@pytest.mark.parametrize("args", [("pics", "red", "--image", "{red}"), ("pics", "--image", "{red}", "--queries", "q")])
def test_one_kind_of_query_at_a_time(es, pics, args):
    words = [a.format(red=pics / "red.png") for a in args]
    assert "give one of QUERY, --image FILE or --queries FILE" in error_line(es("search", *words, code=2))


def test_a_real_image_only_encoder_refuses_text_queries(es, pictures, tmp_path):
    from tests.open_clip_tiny import make_tiny_open_clip_dir

    model = make_tiny_open_clip_dir(tmp_path / "simclr", ("image",), kind="simclr")
    assert "indexed 4 images" in es("index", "build", "shapes", pictures, "--encoder", model).stdout
    assert [h["id"] for h in hits(es, "shapes", "--image", pictures / "red.png", "-k", "1")] == ["red.png"]
    message = one_line_error(es("search", "shapes", "red", code=1))
    assert message == f"Error: index 'shapes' cannot answer text queries: its encoder {str(model)!r} embeds only image"


# eval pairs


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    """Five images and four distinct captions whose Recall@1 is known with fake-clip: ``red2.png`` embeds like
    ``red.png`` but is captioned "crimson", so it ranks "red" first (a miss), and its tie with ``red.png``
    costs both "red" and "crimson" their first place; both green images share the caption "green"."""
    from PIL import Image

    folder = tmp_path / "set" / "img"
    folder.mkdir(parents=True)
    colours = {"red": "red", "red2": "red", "green": "green", "green2": "green", "blue": "blue"}
    for name, colour in colours.items():
        Image.new("RGB", (8, 8), COLOURS[colour]).save(folder / f"{name}.png")
    captions = {"red": "red", "red2": "crimson", "green": "green", "green2": "green", "blue": "blue"}
    lines = [{"image": f"img/{name}.png", "text": text, "split": "test"} for name, text in captions.items()]
    return write_jsonl(tmp_path / "set" / "pairs.jsonl", [*lines, {"image": "img/blue.png", "text": "x", "split": "a"}])


def test_eval_pairs_reports_recall_both_ways(pairs_file):
    args = ("eval", "pairs", "--encoder", "fake-clip", "--pairs", pairs_file, "--split", "test")
    report = json.loads(run_cli(*args, "--json").stdout)
    assert report == {
        "image_to_text_R@1": 0.8,
        "image_to_text_R@5": 1.0,
        "image_to_text_R@10": 1.0,
        "text_to_image_R@1": 0.5,
        "text_to_image_R@5": 1.0,
        "text_to_image_R@10": 1.0,
        "images": 5,
        "captions": 4,
        "pairs": 5,
    }
    assert run_cli(*args).stdout.splitlines() == [
        "                 R@1     R@5    R@10",
        "image→text    0.8000  1.0000  1.0000",
        "text→image    0.5000  1.0000  1.0000",
        "5 images, 4 distinct captions, 5 pairs",
    ]


def test_eval_pairs_with_an_images_root_and_a_real_encoder(pairs_file, tiny_clip_dir, tmp_path):
    moved = pairs_file.rename(tmp_path / "pairs.jsonl")
    args = ("eval", "pairs", "--encoder", tiny_clip_dir, "--pairs", moved, "--json")
    missing = run_cli(*args, code=2)  # the images are beside the file no longer
    assert "5 image file(s) named in" in error_line(missing) and f"{tmp_path / 'img' / 'blue.png'}" in missing.stderr
    report = json.loads(run_cli(*args, "--images-root", pairs_file.parent).stdout)
    assert (report["images"], report["captions"], report["pairs"]) == (5, 5, 6)
    from embedsearch.eval import evaluate_pairs

    expected = evaluate_pairs(str(tiny_clip_dir), moved, pairs_file.parent).metrics  # what the command must print
    assert {key: report[key] for key in expected} == expected
    (pairs_file.parent / "img" / "green2.png").write_bytes(b"\x89PNG but truncated")
    broken = one_line_error(run_cli(*args, "--images-root", pairs_file.parent, code=2))
    assert broken.startswith(f"Error: {pairs_file.parent / 'img' / 'green2.png'}: unreadable image (")


def test_eval_pairs_errors(pairs_file, tmp_path):
    (pairs_file.parent / "img" / "green2.png").unlink()
    missing = run_cli("eval", "pairs", "--encoder", "fake-clip", "--pairs", pairs_file, code=2)
    assert "1 image file(s) named in" in error_line(missing) and "green2.png" in error_line(missing)
    (pairs_file.parent / "img" / "green2.png").write_bytes(b"")
    text_only = run_cli("eval", "pairs", "--encoder", "fake", "--pairs", pairs_file, code=1)
    assert one_line_error(text_only) == (
        "Error: encoder 'fake' embeds only text; image-text retrieval needs an encoder with an image tower and a "
        "text tower"
    )
    message = one_line_error(run_cli("eval", "pairs", "--encoder", "fake-clip", "--pairs", tmp_path / "no", code=2))
    assert "cannot read" in message


def test_eval_of_an_index_still_works_without_naming_the_subcommand(es, animals_file, tmp_path):
    es("index", "build", "zoo", animals_file, "--encoder", "fake", "--no-chunking")
    queries = write_jsonl(tmp_path / "q.jsonl", [{"_id": "q", "text": "eagle bird of prey"}])
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq\teagle\t1\n", encoding="utf-8")
    short = json.loads(es("eval", "zoo", "--queries", queries, "--qrels", qrels, "--json").stdout)
    assert short == json.loads(es("eval", "index", "zoo", "--queries", queries, "--qrels", qrels, "--json").stdout)
    assert short["recall@10"] == 1.0
