"""Request and response bodies of the HTTP API (they make up its OpenAPI schema)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scalar = str | int | float | bool


class SearchRequest(BaseModel):
    """Exactly one of ``query`` (text) or ``vector`` (already embedded, length = the index's dim)."""

    model_config = ConfigDict(extra="forbid")
    query: str | None = Field(None, min_length=1, examples=["how do plants make sugar"])
    vector: list[float] | None = Field(None, min_length=1)
    k: int = Field(10, ge=1, description="How many documents; more than the server's limit answers 413.")
    where: dict[str, Scalar] | None = Field(None, description="Keep documents whose metadata has key == value.")
    mode: Literal["dense", "lexical", "hybrid"] | None = Field(
        None,
        description="Text queries: dense, lexical (BM25) or hybrid; default hybrid where the index has a "
        "lexical side, else dense. A 'vector' query is dense.",
    )
    fusion: Literal["convex", "rrf"] | None = Field(None, description="Hybrid: 'convex' (default) or 'rrf'.")
    alpha: float | None = Field(None, ge=0, le=1, description="Convex fusion: the weight of the dense side (0.5).")
    ef_search: int | None = Field(None, ge=1, le=10_000)
    nprobe: int | None = Field(None, ge=1, le=65_536)

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        if (self.query is None) == (self.vector is None):
            raise ValueError("give exactly one of 'query' or 'vector'")
        if self.query is not None and not self.query.strip():
            raise ValueError("'query' is blank")
        return self


class HitOut(BaseModel):
    id: str
    score: float
    snippet: str
    metadata: dict[str, Any]
    highlights: list[str] = Field(
        default_factory=list, description="Lexical and hybrid: the snippet's words that matched the query."
    )
    url: str = Field(description="GET it for the document, or the image of an image index.")


class SearchResponse(BaseModel):
    index: str
    hits: list[HitOut]
    took_ms: float


class DocumentsRequest(BaseModel):
    """Documents shaped like JSONL source lines: ``_id`` (or ``id``), ``title``/``text``, other fields = metadata."""

    documents: list[dict[str, Any]] = Field(min_length=1)


class WriteResponse(BaseModel):
    index: str
    added: list[str] = []
    updated: list[str] = []
    unchanged: list[str] = []
    deleted: list[str] = []
    count: int
    generation: int
    took_ms: float


class IndexSummary(BaseModel):
    """A served index; a broken one (``status: "broken"``) has only its ``name`` and the ``error``."""

    name: str
    status: str = Field("ok", description="'ok', or 'broken' when its files cannot be read (see 'error').")
    error: str | None = None
    count: int | None = None
    chunks: int | None = None
    spec: str | None = None
    metric: str | None = None
    dim: int | None = None
    encoder: str | None = None
    towers: list[str] | None = Field(None, description="What the encoder embeds: 'text', 'image'.")
    content: str | None = Field(None, description="What the index holds: 'text' documents or 'image' files.")
    lexical: bool | None = Field(None, description="Whether it has a lexical (BM25) side: lexical and hybrid search.")
    generation: int | None = None
    created: str | None = None
    updated: str | None = None


class IndexDetail(IndexSummary):
    manifest: dict[str, Any]


class Health(BaseModel):
    status: str
    indexes: int
    broken: list[str] = Field(default_factory=list, description="Served indexes that cannot be read now.")


class ErrorBody(BaseModel):
    type: str
    message: str


class ErrorResponse(BaseModel):
    error: ErrorBody
