"""Property-based fuzzing of the whole API from its OpenAPI schema (schemathesis, bounded): never a 5xx."""

from __future__ import annotations

import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings

from embedsearch.serve import ServeSettings, create_app

EXAMPLES_PER_OPERATION = 25


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
