"""Stage 3: query an index by text or vector and get ranked document hits."""

from __future__ import annotations

from embedsearch.search.hits import Hit
from embedsearch.search.searcher import Searcher

__all__ = ["Hit", "Searcher"]
