"""What a server serves, the limits it enforces, and who may write."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from embedsearch.errors import InvalidInputError

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
        """Settings with the token from ``$EMBEDSEARCH_API_TOKEN``; :class:`InvalidInputError` if it is set but
        empty (which would otherwise read as "no token", leaving writes open by mistake)."""
        token = os.environ.get(TOKEN_VARIABLE)
        if token is not None and not token.strip():
            raise InvalidInputError(
                f"${TOKEN_VARIABLE} is set but empty; set a token, or unset it to serve without one"
            )
        return cls(**{"api_token": token, **overrides})

    def check_exposure(self, host: str, allow_open_writes: bool) -> str | None:
        """Refuse (:class:`InvalidInputError`) to serve writes without a token on an address other than loopback,
        unless ``allow_open_writes``; returns the warning to log when writes are open."""
        if self.api_token is not None:
            return None
        if not is_loopback(host) and not allow_open_writes:
            raise InvalidInputError(
                f"refusing to listen on {host} without a token: anyone who reaches it could change the indexes; "
                f"set ${TOKEN_VARIABLE}, or pass --allow-open-writes"
            )
        return f"no ${TOKEN_VARIABLE} set: anyone who can reach {host} can add and delete documents"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
