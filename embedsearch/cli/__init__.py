"""The command-line interface (click). Every command only parses input, calls the API and prints."""

from __future__ import annotations

from embedsearch.cli import demo_command, index_commands, search_commands  # noqa: F401 (they register commands)
from embedsearch.cli.main import cli, main

__all__ = ["cli", "main"]
