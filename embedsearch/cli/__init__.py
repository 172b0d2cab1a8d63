"""The command-line interface (click). Every command only parses input, calls the API and prints."""

from __future__ import annotations

from embedsearch.cli import demo_command, index_commands, search_commands, serve_command  # noqa: F401
from embedsearch.cli.main import cli, main

__all__ = ["cli", "main"]
