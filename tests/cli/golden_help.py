"""Saved copies of outputs (golden files): ``EMBEDSEARCH_REGEN_GOLDEN=1``, and only ``1``, rewrites them.

:func:`assert_help_matches` compares a command's ``--help`` with its copy; :func:`saved_copy` is the one place
that decides whether a golden file is rewritten, for every kind of golden file."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from embedsearch.cli import cli

REGEN_VARIABLE = "EMBEDSEARCH_REGEN_GOLDEN"


def regenerating() -> bool:
    """True only when ``EMBEDSEARCH_REGEN_GOLDEN`` is exactly ``1`` (read at each call): ``0``, ``false`` or an
    empty value leave the saved copies alone."""
    return os.environ.get(REGEN_VARIABLE) == "1"


def saved_copy(golden: Path, actual: str) -> str:
    """The text saved in ``golden``, first rewritten to ``actual`` if :func:`regenerating`."""
    if regenerating():
        golden.parent.mkdir(parents=True, exist_ok=True)
        golden.write_text(actual, encoding="utf-8")
    return golden.read_text(encoding="utf-8")


def assert_help_matches(path: list[str], golden_dir: Path) -> None:
    """``embedsearch <path> --help`` must equal ``golden_dir/embedsearch_<path>.txt``."""
    result = CliRunner().invoke(
        cli,
        [*path, "--help"],
        prog_name="embedsearch",
        terminal_width=100,
        env={"EMBEDSEARCH_HOME": None, "COLUMNS": None},
    )
    assert result.exit_code == 0, result.output
    golden = golden_dir / ("_".join(["embedsearch", *path]) + ".txt")
    assert result.stdout == saved_copy(golden, result.stdout), (
        f"{golden.name} differs; if the change is intended, rerun with {REGEN_VARIABLE}=1"
    )
