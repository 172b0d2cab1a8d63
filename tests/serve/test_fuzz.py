"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis, bounded): never a 5xx."""

from __future__ import annotations

import json

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from embedsearch.serve import ServeSettings, create_app

EXAMPLES_PER_OPERATION = 60


def test_no_server_errors_on_any_operation(zoo_home):
    app = create_app(ServeSettings(home=zoo_home, max_k=50, max_body_bytes=64_000))
    with TestClient(app):  # runs the lifespan once: the hub and its encoders load
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 9
        for operation in operations:
            _fuzz(operation)


def _fuzz(operation) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES_PER_OPERATION, deadline=None, suppress_health_check=list(HealthCheck), database=None
    )
    def check(case):
        response = case.call()
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.text[:500]}"
        if response.status_code >= 400:
            assert response.json()["error"]["message"], (
                f"{case.method} {case.formatted_path} {response.status_code} {response.text[:300]}"
            )

    check()


# Values schemathesis does not send (the schema says JSON, and NaN, Infinity and lone surrogates are not JSON), but
# that Python's JSON parser accepts and that once reached the store: sent raw, inside documents and filters.
hostile_scalars = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(alphabet=st.characters(codec=None, categories=None), max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "\x00", "", " "]),
    st.booleans(),
    st.none(),
)
hostile_values = st.recursive(
    hostile_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
hostile_documents = st.lists(
    st.fixed_dictionaries(
        {"_id": st.one_of(st.text(max_size=8), st.sampled_from(["a", "\ud800", "x/y", "..", "%2F"]))},
        optional={"text": st.one_of(st.text(max_size=30), hostile_scalars), "meta": hostile_values},
    ),
    min_size=1,
    max_size=3,
)


def test_hostile_documents_and_filters_never_reach_a_5xx_or_poison_the_index(zoo_home):
    app = create_app(ServeSettings(home=zoo_home, max_k=50, max_body_bytes=64_000))
    with TestClient(app) as client:

        @given(documents=hostile_documents, where=st.dictionaries(st.text(max_size=5), hostile_scalars, max_size=3))
        @settings(max_examples=80, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(documents, where):
            body = json.dumps({"documents": documents}, allow_nan=True).encode("utf-8", "surrogatepass")
            written = client.post("/indexes/zoo/documents", content=body, headers={"content-type": "application/json"})
            assert written.status_code < 500, written.text
            query = json.dumps({"query": "cat", "where": where}, allow_nan=True).encode("utf-8", "surrogatepass")
            found = client.post("/indexes/zoo/search", content=query, headers={"content-type": "application/json"})
            assert found.status_code < 500, found.text
            assert (
                client.post("/indexes/zoo/search", json={"query": "cat", "where": {"kind": "pet"}}).status_code == 200
            )
            for response in (written, found):
                response.json()  # every answer, an error too, is valid JSON

        check()
