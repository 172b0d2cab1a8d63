"""Every route and every error status, through TestClient with the lifespan running."""

from __future__ import annotations

import io
import json
import time
from pathlib import Path

import pytest
from PIL import Image

from tests.cli.golden_help import regenerating

GOLDEN_OPENAPI = Path(__file__).parent / "golden" / "openapi.json"


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", (8, 8), (255, 0, 0, 128)).save(buffer, "PNG")
    return buffer.getvalue()


def test_health_and_index_listing(client):
    assert client.get("/health").json() == {"status": "ok", "indexes": 1, "broken": []}
    [summary] = client.get("/indexes").json()
    assert (summary["name"], summary["count"], summary["encoder"], summary["towers"]) == ("zoo", 5, "fake", ["text"])
    detail = client.get("/indexes/zoo").json()
    assert detail["manifest"]["encoder"]["fingerprint"] and detail["count"] == 5


def test_text_search_returns_ranked_hits_with_urls(client):
    start = time.perf_counter()
    response = client.post("/indexes/zoo/search", json={"query": "small domestic feline", "k": 3})
    elapsed_ms = (time.perf_counter() - start) * 1000
    body = response.json()
    assert response.status_code == 200 and body["index"] == "zoo" and 0 < body["took_ms"] <= elapsed_ms
    assert [h["id"] for h in body["hits"]][0] == "cat" and len(body["hits"]) == 3
    scores = [h["score"] for h in body["hits"]]
    assert scores == sorted(scores, reverse=True)
    item = client.get(body["hits"][0]["url"].replace("http://testserver", ""))
    assert item.json()["_id"] == "cat" and item.json()["metadata"] == {"kind": "pet"}


def test_where_filter_and_vector_search(client):
    hits = client.post("/indexes/zoo/search", json={"query": "eagle bird", "k": 2, "where": {"kind": "pet"}}).json()
    assert [h["metadata"]["kind"] for h in hits["hits"]] == ["pet", "pet"]
    text_hit = client.post("/indexes/zoo/search", json={"query": "shark teeth", "k": 1}).json()["hits"][0]
    from embedsearch.encoders import get_encoder

    vector = get_encoder("fake").encode_text(["shark teeth"])[0].tolist()
    vector_hit = client.post("/indexes/zoo/search", json={"vector": vector, "k": 1}).json()["hits"][0]
    assert vector_hit["id"] == text_hit["id"] == "shark"


def test_upsert_then_delete_is_seen_by_the_next_search(client):
    added = client.post(
        "/indexes/zoo/documents", json={"documents": [{"_id": "owl", "text": "an owl hoots at night", "kind": "wild"}]}
    )
    assert added.status_code == 200 and added.json()["added"] == ["owl"] and added.json()["count"] == 6
    assert (
        client.post("/indexes/zoo/search", json={"query": "owl hoots night", "k": 1}).json()["hits"][0]["id"] == "owl"
    )
    again = client.post(
        "/indexes/zoo/documents", json={"documents": [{"_id": "owl", "text": "an owl hoots at night", "kind": "wild"}]}
    )
    assert again.json()["unchanged"] == ["owl"]
    deleted = client.delete("/indexes/zoo/documents/owl")
    assert deleted.json()["deleted"] == ["owl"] and deleted.json()["count"] == 5
    ids = [h["id"] for h in client.post("/indexes/zoo/search", json={"query": "owl hoots", "k": 10}).json()["hits"]]
    assert "owl" not in ids


def test_a_write_by_another_process_is_picked_up(client, zoo_home):
    from embedsearch import add_documents
    from embedsearch.data import Document

    add_documents("zoo", [Document("cli-doc", "written by the command line")], home=zoo_home)
    assert client.get("/indexes/zoo").json()["count"] == 6


@pytest.mark.parametrize(
    "method,path,kwargs,status,error_type",
    [
        ("post", "/indexes/nope/search", {"json": {"query": "x"}}, 404, "UnknownIndexError"),
        ("get", "/indexes/nope", {}, 404, "UnknownIndexError"),
        ("get", "/indexes/zoo/items/nope", {}, 404, "NotFoundError"),
        ("delete", "/indexes/zoo/documents/nope", {}, 404, "NotFoundError"),
        ("post", "/indexes/zoo/search", {"json": {"query": "x", "k": 100000}}, 413, "TooLargeError"),
        ("post", "/indexes/zoo/search", {"json": {"vector": [0.5] * 7}}, 400, "DimensionMismatchError"),
        (
            "post",
            "/indexes/zoo/search/image",
            {"files": {"image": ("a.png", _png(), "image/png")}},
            400,
            "UnsupportedModalityError",
        ),
        (
            "post",
            "/indexes/pics/search/image",
            {"files": {"image": ("a.txt", b"text", "text/plain")}},
            415,
            "UnsupportedMediaError",
        ),
        (
            "post",
            "/indexes/zoo/documents",
            {"json": {"documents": [{"_id": "x", "text": ""}]}},
            422,
            "InvalidInputError",
        ),
    ],
)
def test_errors_are_json_with_the_right_status(
    make_client, zoo_home, image_folder, method, path, kwargs, status, error_type
):
    _image_index(zoo_home, image_folder)
    response = getattr(make_client(), method)(path, **kwargs)
    assert response.status_code == status
    assert response.json()["error"]["type"] == error_type and response.json()["error"]["message"]


@pytest.mark.parametrize(
    "body", [{}, {"query": "x", "vector": [1.0]}, {"query": "   "}, {"query": "x", "k": 0}, {"query": "x", "zz": 1}]
)
def test_invalid_search_bodies_are_422(client, body):
    assert client.post("/indexes/zoo/search", json=body).status_code == 422


def test_oversized_body_and_image_are_413(make_client, zoo_home, image_folder):
    _image_index(zoo_home, image_folder)
    client = make_client(max_body_bytes=1000, max_image_bytes=100)
    big = {"documents": [{"_id": "x", "text": "y" * 5000}]}
    assert client.post("/indexes/zoo/documents", json=big).status_code == 413
    image = client.post("/indexes/pics/search/image", files={"image": ("a.png", b"\x89PNG" + b"0" * 500, "image/png")})
    assert image.status_code == 413 and image.json()["error"]["type"] == "TooLargeError"


def _image_index(home, image_folder) -> None:
    from embedsearch import build_index
    from embedsearch.data import read_documents

    pictures = read_documents([image_folder], skip_invalid=True, embeds={"text", "image"}).documents
    build_index("pics", pictures, "fake-clip", home=home)


def test_write_endpoints_need_the_token_when_one_is_set(make_client):
    client = make_client(api_token="s3cret")
    doc = {"documents": [{"_id": "owl", "text": "owl"}]}
    assert client.post("/indexes/zoo/documents", json=doc).status_code == 401
    wrong = client.post("/indexes/zoo/documents", json=doc, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
    assert client.delete("/indexes/zoo/documents/cat").status_code == 401
    ok = client.post("/indexes/zoo/documents", json=doc, headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200
    assert client.post("/indexes/zoo/search", json={"query": "owl"}).status_code == 200  # reads stay open


def test_metrics_count_requests_and_report_index_sizes(client):
    client.post("/indexes/zoo/search", json={"query": "cat"})
    client.post("/indexes/nope/search", json={"query": "cat"})
    text = client.get("/metrics").text
    assert 'embedsearch_requests_total{method="POST",route="/indexes/{name}/search",status="200"} 1.0' in text
    assert 'embedsearch_requests_total{method="POST",route="/indexes/{name}/search",status="404"} 1.0' in text
    assert 'embedsearch_index_documents{index="zoo"} 5.0' in text
    assert "embedsearch_request_seconds_bucket" in text


def test_page_is_self_contained(client):
    page = client.get("/")
    assert page.status_code == 200 and "<form" in page.text
    assert "http://" not in page.text and "https://" not in page.text  # no CDN or other network resource


def test_api_docs_page_needs_no_network(client):
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert "https://" not in docs.text and "http://" not in docs.text
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        path = next(part.split('"')[0] for part in docs.text.split('"') if part.endswith(asset))
        assert client.get(path).status_code == 200


def test_serving_only_named_indexes(make_client, zoo_home):
    from embedsearch import build_index
    from embedsearch.data import Document

    build_index("other", [Document("a", "alpha")], "fake", home=zoo_home)
    client = make_client(names=("other",))
    assert [i["name"] for i in client.get("/indexes").json()] == ["other"]
    assert client.post("/indexes/zoo/search", json={"query": "cat"}).status_code == 404


def test_openapi_schema_matches_the_saved_copy(client):
    schema = client.get("/openapi.json").json()
    if regenerating():
        GOLDEN_OPENAPI.write_text(json.dumps(schema, indent=1, sort_keys=True) + "\n")
    assert schema == json.loads(GOLDEN_OPENAPI.read_text())


def test_an_image_index_serves_stored_thumbnails_and_a_caption_index_its_documents(make_client, zoo_home, image_folder):
    from PIL import Image

    from embedsearch import build_index
    from embedsearch.data import Document

    _image_index(zoo_home, image_folder)
    build_index("captions", [Document("red.png", "a red square", {"image_path": "x.png"})], "fake-clip", home=zoo_home)
    client = make_client()
    assert client.get("/indexes/pics").json()["content"] == "image"
    assert client.get("/indexes/captions").json()["content"] == "text"

    [hit] = client.post("/indexes/pics/search", json={"query": "red", "k": 1}).json()["hits"]
    assert str(image_folder) not in json.dumps(hit)  # no server path in a hit
    response = client.get(hit["url"])
    assert (hit["id"], response.status_code, response.headers["content-type"]) == ("red.png", 200, "image/webp")
    thumbnail = Image.open(io.BytesIO(response.content))
    assert thumbnail.size == (16, 16) and thumbnail.convert("RGB").getpixel((8, 8)) == pytest.approx(
        (220, 30, 30),
        abs=12,  # WebP at quality 85 of a flat colour: within a few levels of it
    )
    (image_folder / "green.jpg").unlink()  # the store's thumbnail does not need the file
    assert client.get("/indexes/pics/items/green.jpg").status_code == 200
    caption = client.get("/indexes/captions/items/red.png")  # image-capable encoder, but a text index: JSON
    assert caption.json() == {"_id": "red.png", "text": "a red square", "metadata": {"image_path": "x.png"}}
    assert client.get("/indexes/pics/items/nope.png").status_code == 404


def test_search_modes_over_http_match_the_python_api(client, zoo_home):
    from embedsearch import load_index

    searcher = load_index("zoo", zoo_home)
    for body in (
        {"mode": "dense"},
        {"mode": "lexical"},
        {"mode": "hybrid"},
        {"mode": "hybrid", "fusion": "convex", "alpha": 0.2},
        {},
    ):
        response = client.post("/indexes/zoo/search", json={"query": "purring cats hunt mice", "k": 4, **body})
        assert response.status_code == 200, response.text
        want = searcher.search("purring cats hunt mice", k=4, **body)
        got = response.json()["hits"]
        assert [(h["id"], h["score"], h["highlights"]) for h in got] == [(h.id, h.score, h.highlights) for h in want]
    lexical = client.post("/indexes/zoo/search", json={"query": "Mice", "k": 4, "mode": "lexical"}).json()["hits"]
    assert lexical and all(h["highlights"] == ["mice"] for h in lexical)
    assert client.get("/indexes").json()[0]["lexical"] is True
    searcher.close()


@pytest.mark.parametrize(
    ("body", "status", "error_type"),
    [
        ({"vector": [0.1] * 32, "mode": "lexical"}, 400, "UnsupportedModeError"),
        ({"query": "cat", "mode": "fuzzy"}, 422, None),
        ({"query": "cat", "fusion": "max"}, 422, None),
        ({"query": "cat", "alpha": 2}, 422, None),
    ],
)
def test_bad_modes_are_4xx_json(client, body, status, error_type):
    response = client.post("/indexes/zoo/search", json=body)
    assert response.status_code == status
    if error_type:
        assert response.json()["error"]["type"] == error_type


def test_an_image_index_answers_lexical_search_with_400(make_client, zoo_home, image_folder):
    _image_index(zoo_home, image_folder)
    response = make_client().post("/indexes/pics/search", json={"query": "red", "mode": "lexical"})
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "UnsupportedModeError"
    assert "no lexical side" in response.json()["error"]["message"]
