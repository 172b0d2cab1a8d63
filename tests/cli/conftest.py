"""The ``es`` fixture: ``embedsearch`` run in-process against the test's own index home."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import Result

from tests.cli.helpers import run_cli


@pytest.fixture
def es(home: Path):
    """``es(*args, code=0)`` runs ``embedsearch ARGS --home HOME [--quiet]`` (see :func:`run_cli`)."""

    def run(*args: str | Path, code: int = 0) -> Result:
        return run_cli(*args, home=home, code=code)

    return run
