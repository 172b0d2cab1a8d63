"""The JSON API. Each route parses, calls the Python API (off the event loop) and shapes the response."""

from __future__ import annotations

import io
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from embedsearch.data import document_from_record
from embedsearch.errors import InvalidInputError, NotFoundError, TooLargeError
from embedsearch.index import add_documents, delete_documents
from embedsearch.search import Hit
from embedsearch.serve.errors import UnauthorizedError, UnsupportedMediaError
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
    status: {"model": ErrorResponse} for status in (400, 404, 409, 413, 415, 422)
}
router = APIRouter(responses=ERRORS)


def get_hub(request: Request) -> IndexHub:
    return request.app.state.hub


Hub = Annotated[IndexHub, Depends(get_hub)]


def require_token(request: Request, hub: Hub) -> None:
    """When the server has a token, writes need ``Authorization: Bearer <token>`` (compared in constant time)."""
    expected = hub.settings.api_token
    if expected is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode(), expected.encode()):
        raise UnauthorizedError("missing or wrong bearer token for a write endpoint")


@router.get("/health", response_model=Health, tags=["service"])
def health(hub: Hub) -> Health:
    return Health(status="ok", indexes=len(hub.names))


@router.get("/indexes", response_model=list[IndexSummary], tags=["indexes"])
def list_served_indexes(hub: Hub) -> list[IndexSummary]:
    return [_summary(manifest) for manifest in hub.manifests()]


@router.get("/indexes/{name}", response_model=IndexDetail, tags=["indexes"])
def describe_index(name: str, hub: Hub) -> IndexDetail:
    manifest = hub.searcher(name).manifest
    return IndexDetail(**_summary(manifest).model_dump(), manifest=manifest)


@router.post("/indexes/{name}/search", response_model=SearchResponse, tags=["search"])
async def search(name: str, body: SearchRequest, request: Request, hub: Hub) -> SearchResponse:
    start = time.perf_counter()
    searcher = hub.searcher(name)
    _check_k(body.k, hub)
    if body.query is not None:
        vector = (await hub.batcher(searcher).embed(body.query))[None, :]
    else:
        vector = np.asarray(body.vector, dtype=np.float32)[None, :]
    knobs = {k: v for k, v in (("ef_search", body.ef_search), ("nprobe", body.nprobe)) if v is not None}
    hits = await run_in_threadpool(lambda: searcher.search_vectors(vector, body.k, body.where, **knobs)[0])
    return _response(name, hits, request, start)


@router.post("/indexes/{name}/search/image", response_model=SearchResponse, tags=["search"])
async def search_image(
    name: str,
    request: Request,
    hub: Hub,
    image: Annotated[UploadFile, File(description="A PNG, JPEG, WebP or GIF image.")],
    k: Annotated[int, Form(ge=1)] = 10,
) -> SearchResponse:
    start = time.perf_counter()
    searcher = hub.searcher(name)
    _check_k(k, hub)
    picture = _read_image(await image.read(hub.settings.max_image_bytes + 1), hub.settings.max_image_bytes)
    hits = await run_in_threadpool(lambda: searcher.search_images([picture], k)[0])
    return _response(name, hits, request, start)


@router.get(
    "/indexes/{name}/items/{item_id:path}",
    tags=["indexes"],
    responses={200: {"content": {"application/json": {}, "image/*": {}}}},
)
def get_item(name: str, item_id: str, hub: Hub) -> Response:
    """The stored document as JSON, or for an image index the image file itself."""
    searcher = hub.searcher(name)
    document = searcher.index.docs.documents([item_id]).get(item_id)
    if document is None:
        raise NotFoundError(f"index {name!r} has no document {item_id!r}")
    if searcher.manifest["content"] == "image":
        image = Path(document.metadata["image_path"])
        if not image.is_file():
            raise NotFoundError(f"the image of {item_id!r} in index {name!r} is no longer at {image}")
        return FileResponse(image)
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
    report = await hub.write(name, lambda: add_documents(name, documents, home=hub.settings.home))
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
    report = await hub.write(name, lambda: delete_documents(name, [doc_id], home=hub.settings.home))
    if report.missing:
        raise NotFoundError(f"index {name!r} has no document {doc_id!r}")
    return _write_response(name, report, start)


def _check_k(k: int, hub: IndexHub) -> None:
    if k > hub.settings.max_k:
        raise TooLargeError(f"k={k} is over this server's limit of {hub.settings.max_k}")


def _read_image(data: bytes, limit: int):
    from PIL import Image, UnidentifiedImageError

    if len(data) > limit:
        raise TooLargeError(f"image over {limit} bytes")
    try:
        picture = Image.open(io.BytesIO(data))
        picture.load()
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as err:
        raise UnsupportedMediaError(f"the upload is not a readable image ({type(err).__name__})") from None
    return picture


def _document(position: int, record: dict[str, Any]):
    try:
        return document_from_record(record)
    except ValueError as err:
        raise InvalidInputError(f"documents[{position}]: {err}") from None


def _response(name: str, hits: list[Hit], request: Request, start: float) -> SearchResponse:
    base = str(request.base_url).rstrip("/")
    out = [HitOut(**h.to_dict(), url=f"{base}/indexes/{name}/items/{h.id}") for h in hits]
    return SearchResponse(index=name, hits=out, took_ms=round((time.perf_counter() - start) * 1000, 3))


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


def _summary(manifest: dict[str, Any]) -> IndexSummary:
    fields = ("name", "count", "chunks", "spec", "metric", "dim", "generation", "created", "updated")
    return IndexSummary(
        **{f: manifest[f] for f in fields},
        encoder=manifest["encoder"]["name"],
        towers=manifest["encoder"]["modalities"],
        content=manifest["content"],
    )
