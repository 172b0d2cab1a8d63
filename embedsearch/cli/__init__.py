"""The command-line interface (click). Every command only parses input, calls the API and prints."""

from __future__ import annotations

from embedsearch.cli import (  # noqa: F401 (each module registers its commands on ``cli``)
    demo_command,
    index_commands,
    mine_command,
    search_commands,
    serve_command,
    train_commands,
)
from embedsearch.cli.main import cli, main

__all__ = ["cli", "main"]
