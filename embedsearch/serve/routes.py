"""The JSON API. Each route parses, calls the Python API (off the event loop) and shapes the response."""

from __future__ import annotations

import secrets
import time
from typing import Annotated, Any
from urllib.parse import quote

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from embedsearch.data import document_from_record, load_image
from embedsearch.data.documents import RecordTooLarge
from embedsearch.errors import (
    InvalidInputError,
    NotFoundError,
    TooLargeError,
    UnauthorizedError,
    UnsupportedMediaError,
    UnsupportedModeError,
)
from embedsearch.index import add_documents, delete_documents
from embedsearch.search import Hit
from embedsearch.search.searcher import require_query_kind
from embedsearch.serve.hub import IndexHub
from embedsearch.serve.schemas import (
    DocumentsRequest,
    ErrorResponse,
    Health,
    HitOut,
    IndexDetail,
    IndexSummary,
    SearchRequest,
    SearchResponse,
    WriteResponse,
)

ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse} for status in (400, 404, 409, 413, 415, 422, 503)
}
router = APIRouter(responses=ERRORS)


def get_hub(request: Request) -> IndexHub:
    return request.app.state.hub


Hub = Annotated[IndexHub, Depends(get_hub)]


def require_token(request: Request, hub: Hub) -> None:
    """When the server has a token, writes need ``Authorization: Bearer <token>`` (compared in constant time, as
    the bytes the client sent: a header arrives as Latin-1, so a UTF-8 token is compared as its UTF-8 bytes)."""
    expected = hub.settings.api_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode("latin-1"), expected.encode("utf-8")):
        raise UnauthorizedError("missing or wrong bearer token for a write endpoint")


@router.get("/health", response_model=Health, tags=["service"])
def health(hub: Hub) -> Health:
    return Health(status="ok", indexes=len(hub.names), broken=sorted(hub.broken))


@router.get("/indexes", response_model=list[IndexSummary], tags=["indexes"])
async def list_served_indexes(hub: Hub) -> list[IndexSummary]:
    return [_summary(info) for info in await hub.summaries()]


@router.get("/indexes/{name}", response_model=IndexDetail, tags=["indexes"])
async def describe_index(name: str, hub: Hub) -> IndexDetail:
    searcher = await hub.searcher(name)
    info = await run_in_threadpool(searcher.info)
    return IndexDetail(**_summary(info).model_dump(), manifest=info)


@router.post("/indexes/{name}/search", response_model=SearchResponse, tags=["search"])
async def search(name: str, body: SearchRequest, request: Request, hub: Hub) -> SearchResponse:
    start = time.perf_counter()
    searcher = await hub.searcher(name)
    _check_k(body.k, hub)
    knobs = {"ef_search": body.ef_search, "nprobe": body.nprobe}
    if body.query is None:
        _dense_only(body)
        vector = np.asarray(body.vector, dtype=np.float32)[None, :]
        hits = await run_in_threadpool(lambda: searcher.search_vectors(vector, body.k, body.where, **knobs)[0])
        return _response(name, hits, request, start)
    options = {"mode": body.mode, "fusion": body.fusion, "alpha": body.alpha, **knobs}
    retrieval, knobs = searcher.check_query(body.query, body.k, body.where, **options)  # before any encoding
    ahead = searcher.prefetch_lexical([body.query], body.k, body.where, retrieval)  # while the query is encoded
    vector = (await hub.batcher(searcher).embed(body.query)) if retrieval.dense else None
    hits = await run_in_threadpool(
        lambda: searcher.search_text_with_vector(
            body.query, vector, body.k, body.where, retrieval=retrieval, knobs=knobs, ahead=ahead
        )
    )
    return _response(name, hits, request, start)


def _dense_only(body: SearchRequest) -> None:
    if body.mode not in (None, "dense"):
        raise UnsupportedModeError(
            f"a 'vector' query is answered by the dense side only; mode {body.mode!r} needs 'query'"
        )


@router.post("/indexes/{name}/search/image", response_model=SearchResponse, tags=["search"])
async def search_image(
    name: str,
    request: Request,
    hub: Hub,
    image: Annotated[UploadFile, File(description="A PNG, JPEG, WebP or GIF image.")],
    k: Annotated[int, Form(ge=1)] = 10,
) -> SearchResponse:
    start = time.perf_counter()
    searcher = await hub.searcher(name)
    _check_k(k, hub)
    require_query_kind(searcher.identity, "image")  # before the upload is read or decoded
    data = await image.read(hub.settings.max_image_bytes + 1)
    picture = await run_in_threadpool(_read_image, data, hub.settings.max_image_bytes)
    hits = await run_in_threadpool(lambda: searcher.search_images([picture], k)[0])
    return _response(name, hits, request, start)


@router.get(
    "/indexes/{name}/items/{item_id:path}",
    tags=["indexes"],
    responses={200: {"content": {"application/json": {}, "image/webp": {}}}},
)
async def get_item(name: str, item_id: str, hub: Hub) -> Response:
    """The stored document as JSON, or for an image index its stored thumbnail (WebP, at most 256 pixels)."""
    item = await run_in_threadpool((await hub.searcher(name)).item, item_id)
    if item.document is None:
        return Response(item.image, media_type=item.media_type)
    document = item.document
    return JSONResponse({"_id": document.id, "text": document.text, "metadata": document.metadata})


@router.post(
    "/indexes/{name}/documents",
    response_model=WriteResponse,
    tags=["documents"],
    dependencies=[Depends(require_token)],
    responses={401: {"model": ErrorResponse}},
)
async def upsert_documents(name: str, body: DocumentsRequest, hub: Hub) -> WriteResponse:
    """Add documents, replacing those whose id exists (upsert). Searches keep being answered meanwhile."""
    documents = [_document(i, record) for i, record in enumerate(body.documents)]
    start = time.perf_counter()
    report = await hub.write(name, lambda: add_documents(name, documents, home=hub.settings.home, compact=False))
    return _write_response(name, report, start)


@router.delete(
    "/indexes/{name}/documents/{doc_id:path}",
    response_model=WriteResponse,
    tags=["documents"],
    dependencies=[Depends(require_token)],
    responses={401: {"model": ErrorResponse}},
)
async def delete_document(name: str, doc_id: str, hub: Hub) -> WriteResponse:
    start = time.perf_counter()
    report = await hub.write(name, lambda: delete_documents(name, [doc_id], home=hub.settings.home, compact=False))
    if report.missing:
        raise NotFoundError(f"index {name!r} has no document {doc_id!r}")
    return _write_response(name, report, start)


def _check_k(k: int, hub: IndexHub) -> None:
    if k > hub.settings.max_k:
        raise TooLargeError(f"k={k} is over this server's limit of {hub.settings.max_k}")


def _read_image(data: bytes, limit: int):
    if len(data) > limit:
        raise TooLargeError(f"image over {limit} bytes")
    try:
        return load_image(data)  # refuses more pixels than the limit from the header, before decoding
    except ValueError as err:
        if "pixels is over the limit" in str(err):
            raise TooLargeError(f"the upload has {err}") from None
        raise UnsupportedMediaError(f"the upload is not a readable image ({err})") from None


def _document(position: int, record: Any):
    try:
        return document_from_record(record)
    except RecordTooLarge as err:
        raise TooLargeError(f"documents[{position}]: {err}") from None
    except ValueError as err:
        raise InvalidInputError(f"documents[{position}]: {err}") from None


def _response(name: str, hits: list[Hit], request: Request, start: float) -> SearchResponse:
    base = str(request.base_url).rstrip("/")
    out = [HitOut(**h.to_dict(), url=f"{base}/indexes/{quote(name)}/items/{item_path(h.id)}") for h in hits]
    return SearchResponse(index=name, hits=out, took_ms=round((time.perf_counter() - start) * 1000, 3))


def item_path(doc_id: str) -> str:
    """A document id as one percent-encoded URL path segment (``/``, ``?``, ``#``, ``%`` and spaces encoded;
    the segments ``.`` and ``..``, which clients would resolve, too)."""
    encoded = quote(doc_id, safe="")
    return encoded.replace(".", "%2E") if set(doc_id) <= {"."} else encoded


def _write_response(name: str, report, start: float) -> WriteResponse:
    return WriteResponse(
        index=name,
        added=report.added,
        updated=report.updated,
        unchanged=report.unchanged,
        deleted=report.deleted,
        count=report.manifest["count"],
        generation=report.manifest["generation"],
        took_ms=round((time.perf_counter() - start) * 1000, 3),
    )


def _summary(info: dict[str, Any]) -> IndexSummary:
    if "broken" in info:
        return IndexSummary(name=info["name"], status="broken", error=info["broken"])
    fields = ("name", "count", "chunks", "spec", "metric", "dim", "generation", "created", "updated")
    return IndexSummary(
        **{f: info[f] for f in fields},
        encoder=info["encoder"]["name"],
        towers=info["encoder"]["modalities"],
        content=info["content"],
        lexical=bool(info.get("lexical")),
    )
