from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from embedsearch import build_index
from embedsearch.data.documents import document_from_record
from embedsearch.serve import ServeSettings, create_app
from tests.conftest import ANIMALS


@pytest.fixture
def zoo_home(home):
    build_index("zoo", [document_from_record(r) for r in ANIMALS], "fake", home=home)
    return home


@pytest.fixture
def make_client(zoo_home):
    """A TestClient with the lifespan running, for settings of the test's choice."""
    clients = []

    def make(**settings) -> TestClient:
        client = TestClient(create_app(ServeSettings(home=zoo_home, **settings)))
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client) -> TestClient:
    return make_client()
