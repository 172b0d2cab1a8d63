"""Hostile requests: bounded work per request, nothing stored that cannot be read back, a broken index served
as broken alone, no server path in an answer, writes not open by surprise, URLs and tokens that work."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
import zlib

import pytest
from PIL import Image

from embedsearch import build_index, load_index
from embedsearch.data import Document, read_documents
from embedsearch.errors import InvalidInputError
from embedsearch.serve import ServeSettings
from embedsearch.serve.settings import TOKEN_VARIABLE


def _post_raw(client, path: str, body: str):
    return client.post(
        path, content=body.encode("utf-8", "surrogatepass"), headers={"content-type": "application/json"}
    )


def _json_error(response, status: int, kind: str | None = None) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["message"] and (kind is None or error["type"] == kind), error
    return error["message"]


def test_a_huge_query_is_refused_at_once_and_does_not_hold_up_a_small_one(client):
    start = time.perf_counter()
    message = _json_error(client.post("/indexes/zoo/search", json={"query": "cat " * 2_000_000}), 413, "TooLargeError")
    assert "8,000,000 characters is over the limit" in message and time.perf_counter() - start < 2
    assert client.post("/indexes/zoo/search", json={"query": "cat"}).status_code == 200


def test_a_document_over_the_size_limit_is_413_and_nothing_is_written(make_client, zoo_home):
    client = make_client(max_body_bytes=4 * 2**20)
    body = {"documents": [{"_id": "huge", "text": "word " * 300_000}]}  # 1.5 MB of text, under the body limit
    assert "over the limit" in _json_error(client.post("/indexes/zoo/documents", json=body), 413, "TooLargeError")
    assert load_index("zoo", zoo_home).info()["count"] == 5


def test_where_with_many_keys_is_413_not_500(client):
    where = {f"key{i}": "x" for i in range(999)}
    message = _json_error(client.post("/indexes/zoo/search", json={"query": "cat", "where": where}), 413)
    assert "999 keys" in message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_are_refused_and_never_poison_later_searches(client, constant):
    body = '{"documents": [{"_id": "p", "text": "poison", "score": CONSTANT}]}'.replace("CONSTANT", constant)
    assert "JSON cannot carry" in _json_error(_post_raw(client, "/indexes/zoo/documents", body), 422)
    where = '{"query": "cat", "where": {"kind": CONSTANT}}'.replace("CONSTANT", constant)
    _json_error(_post_raw(client, "/indexes/zoo/search", where), 422)
    hits = client.post("/indexes/zoo/search", json={"query": "cat", "where": {"kind": "pet"}})
    assert hits.status_code == 200 and {h["id"] for h in hits.json()["hits"]} == {"cat", "dog"}


@pytest.mark.parametrize(
    "path,body",
    [
        ("/indexes/zoo/documents", '{"documents": [{"_id": "\\ud800", "text": "x"}]}'),
        ("/indexes/zoo/documents", '{"documents": [{"_id": "a", "text": "x \\udc00"}]}'),
        ("/indexes/zoo/documents", '{"documents": [{"_id": "a", "text": "x", "m": {"\\ud800": 1}}]}'),
        ("/indexes/zoo/search", '{"query": "cat \\ud800"}'),
        ("/indexes/zoo/search", '{"query": "cat", "where": {"kind": "\\ud800"}}'),
    ],
)
def test_lone_surrogates_are_a_json_422(client, path, body):
    message = _json_error(_post_raw(client, path, body), 422)
    assert "surrogate" in message or "unicode" in message  # ours, or pydantic's for a str field


def test_duplicate_ids_in_one_upsert_are_a_json_422(client):
    docs = {"documents": [{"_id": "a", "text": "one"}, {"_id": "a", "text": "two"}]}
    assert "more than once" in _json_error(client.post("/indexes/zoo/documents", json=docs), 422, "InvalidInputError")


def test_deeply_nested_json_is_a_json_4xx(client):
    body = '{"documents": [{"_id": "a", "text": "x", "m": ' + "[" * 50_000 + "]" * 50_000 + "}]}"
    response = _post_raw(client, "/indexes/zoo/documents", body)
    assert 400 <= response.status_code < 500 and response.json()["error"]["message"]


def _png_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buffer, "PNG")
    data = bytearray(buffer.getvalue())
    data[16:24] = width.to_bytes(4, "big") + height.to_bytes(4, "big")
    data[29:33] = zlib.crc32(bytes(data[12:29])).to_bytes(4, "big")
    return bytes(data)


def test_an_image_bomb_is_refused_from_its_header_and_not_decoded_for_a_text_index(
    make_client, zoo_home, image_folder, monkeypatch
):
    pictures = read_documents([image_folder], skip_invalid=True, embeds={"text", "image"}).documents
    build_index("pics", pictures, "fake-clip", home=zoo_home)
    client = make_client()
    bomb = {"image": ("bomb.png", _png_claiming(13_000, 13_000), "image/png")}
    start = time.perf_counter()
    assert "pixels" in _json_error(client.post("/indexes/pics/search/image", files=bomb), 413, "TooLargeError")
    assert time.perf_counter() - start < 1

    import embedsearch.serve.routes as routes

    monkeypatch.setattr(routes, "_read_image", lambda *a: pytest.fail("decoded an upload for a text index"))
    _json_error(client.post("/indexes/zoo/search/image", files=bomb), 400, "UnsupportedModalityError")


def test_hits_and_items_show_no_server_path_and_items_come_from_the_store(make_client, zoo_home, image_folder):
    pictures = read_documents([image_folder], skip_invalid=True, embeds={"text", "image"}).documents
    build_index("pics", pictures, "fake-clip", home=zoo_home)
    client = make_client()
    body = client.post("/indexes/pics/search", json={"query": "red", "k": 4}).json()
    assert str(image_folder) not in json.dumps(body) and str(image_folder.resolve()) not in json.dumps(body)
    shutil.rmtree(image_folder)  # nothing the server answers with is read from the files any more
    assert all(client.get(h["url"]).status_code == 200 for h in body["hits"])


def test_a_foreign_index_cannot_make_the_server_load_a_model_folder_with_other_weights(zoo_home, tmp_path, monkeypatch):
    from embedsearch.encoders import registry

    model = tmp_path / "model"
    model.mkdir()
    (model / "modules.json").write_text("[]")
    (model / "pytorch_model.bin").write_bytes(b"anything at all")
    manifest_path = zoo_home / "zoo" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["encoder"]["name"] = str(model)
    manifest_path.write_text(json.dumps(manifest))
    monkeypatch.setattr(registry, "_load", lambda *a: pytest.fail("a model folder was loaded before its check"))
    with pytest.raises(Exception, match="not loaded") as err:
        load_index("zoo", zoo_home)
    assert "fingerprint" in str(err.value)


def _break(home, name: str, how: str) -> None:
    directory = home / name
    if how == "store-missing":
        (directory / "store.1.sqlite").unlink()
    elif how == "store-garbage":
        (directory / "store.1.sqlite").write_bytes(b"not a database at all" * 100)
    elif how == "segment-truncated":
        segment = directory / "seg.1.1.faiss"
        segment.write_bytes(segment.read_bytes()[:-10])
    elif how == "manifest-field-missing":
        manifest = json.loads((directory / "manifest.json").read_text())
        del manifest["dim"]
        (directory / "manifest.json").write_text(json.dumps(manifest))
    elif how == "manifest-wrong-type":
        manifest = json.loads((directory / "manifest.json").read_text())
        manifest["dim"] = "32"
        (directory / "manifest.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "how,file",
    [
        ("store-missing", "store.1.sqlite"),
        ("store-garbage", "store.1.sqlite"),
        ("segment-truncated", "seg.1.1.faiss"),
        ("manifest-field-missing", "manifest.json"),
        ("manifest-wrong-type", "manifest.json"),
    ],
)
def test_one_broken_index_is_503_alone_and_listed_as_broken(make_client, zoo_home, how, file):
    build_index("other", [Document("a", "alpha"), Document("b", "beta")], "fake", home=zoo_home)
    _break(zoo_home, "zoo", how)
    client = make_client()
    message = _json_error(client.post("/indexes/zoo/search", json={"query": "cat"}), 503, "CorruptIndexError")
    assert "'zoo'" in message and file in message
    assert client.post("/indexes/other/search", json={"query": "alpha"}).status_code == 200
    listed = {i["name"]: i for i in client.get("/indexes").json()}
    assert listed["zoo"]["status"] == "broken" and file in listed["zoo"]["error"]
    assert listed["other"]["status"] == "ok" and listed["other"]["count"] == 2
    assert client.get("/health").json()["broken"] == ["zoo"]


def test_item_urls_are_percent_encoded_and_lead_back_to_the_document(client):
    odd = "a b/c?d#e%f&g"
    client.post("/indexes/zoo/documents", json={"documents": [{"_id": odd, "text": "an odd identifier zebra"}]})
    [hit] = client.post("/indexes/zoo/search", json={"query": "odd identifier zebra", "k": 1}).json()["hits"]
    assert hit["id"] == odd and hit["url"].endswith("/items/a%20b%2Fc%3Fd%23e%25f%26g")
    assert client.get(hit["url"]).json()["_id"] == odd


def test_a_non_ascii_token_matches(make_client):
    client = make_client(api_token="sécret-токен")
    doc = {"documents": [{"_id": "owl", "text": "owl"}]}
    header = "Bearer sécret-токен".encode()  # a client sends the UTF-8 bytes
    ok = client.post("/indexes/zoo/documents", json=doc, headers={"Authorization": header})
    assert ok.status_code == 200, ok.text
    assert (
        client.post("/indexes/zoo/documents", json=doc, headers={"Authorization": "Bearer secret"}).status_code == 401
    )


def test_made_up_http_methods_do_not_grow_the_metrics_labels(client):
    for method in ("FOO", "BAR", "BAZ"):
        client.request(method, "/health")
    text = client.get("/metrics").text
    assert 'method="FOO"' not in text and 'method="other"' in text


def test_an_empty_token_is_an_error_not_no_token(monkeypatch):
    monkeypatch.setenv(TOKEN_VARIABLE, "  ")
    with pytest.raises(InvalidInputError, match="set but empty"):
        ServeSettings.from_environment()


def test_writes_open_beyond_loopback_need_a_flag():
    settings = ServeSettings(api_token=None)
    assert "anyone who can reach" in settings.check_exposure("127.0.0.1", False)
    with pytest.raises(InvalidInputError, match="--allow-open-writes"):
        settings.check_exposure("0.0.0.0", False)
    assert settings.check_exposure("0.0.0.0", True)
    assert ServeSettings(api_token="t").check_exposure("0.0.0.0", False) is None


def test_searches_are_answered_while_writes_and_compactions_run(make_client, zoo_home):
    """Upserts through HTTP (each a segment, compacted in the background) while searches keep coming: every
    search is answered, and each sees a committed state (the two halves of a pair always agree)."""
    client = make_client()
    stop, failures, answered = threading.Event(), [], [0]

    def search() -> None:
        while not stop.is_set():
            response = client.post("/indexes/zoo/search", json={"query": "pair left right", "k": 50})
            if response.status_code != 200:
                failures.append(response.text)
                continue
            ids = {h["id"] for h in response.json()["hits"]}
            lefts = {i[5:] for i in ids if i.startswith("left-")}
            rights = {i[6:] for i in ids if i.startswith("right-")}
            if lefts != rights:
                failures.append(f"half a write: {sorted(lefts ^ rights)}")
            answered[0] += 1

    readers = [threading.Thread(target=search) for _ in range(2)]
    for reader in readers:
        reader.start()
    for n in range(25):
        pair = [{"_id": f"left-{n}", "text": "pair left right"}, {"_id": f"right-{n}", "text": "pair left right"}]
        assert client.post("/indexes/zoo/documents", json={"documents": pair}).status_code == 200
    deadline = time.monotonic() + 30
    while load_index("zoo", zoo_home).info()["count"] != 55 and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    for reader in readers:
        reader.join()
    assert not failures, failures[:3]
    assert answered[0] > 10 and len(load_index("zoo", zoo_home).info()["segments"]) <= 16
