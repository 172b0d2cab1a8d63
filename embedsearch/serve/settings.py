"""What a server serves and the limits it enforces."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

TOKEN_VARIABLE = "EMBEDSEARCH_API_TOKEN"


@dataclass(frozen=True)
class ServeSettings:
    """``names=None`` serves every index in ``home``. Limits answer 413 when exceeded. ``api_token`` (default
    ``$EMBEDSEARCH_API_TOKEN``) protects the write endpoints when set."""

    home: Path = Path("indexes")
    names: tuple[str, ...] | None = None
    max_k: int = 1000
    max_body_bytes: int = 8 * 2**20
    max_image_bytes: int = 8 * 2**20
    max_batch: int = 32
    api_token: str | None = None

    @classmethod
    def from_environment(cls, **overrides) -> ServeSettings:
        return cls(**{"api_token": os.environ.get(TOKEN_VARIABLE) or None, **overrides})
