"""Stage 4: the HTTP service (FastAPI) and its web page, over the Python API."""

from __future__ import annotations

from embedsearch.serve.app import create_app
from embedsearch.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app"]
