"""Compare a command's ``--help`` with a saved copy; ``EMBEDSEARCH_REGEN_GOLDEN=1`` rewrites the copies."""

from __future__ import annotations

import os
from pathlib import Path

from click.testing import CliRunner

from embedsearch.cli import cli

REGENERATE = os.environ.get("EMBEDSEARCH_REGEN_GOLDEN") == "1"


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
    if REGENERATE:
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(result.stdout, encoding="utf-8")
    assert result.stdout == golden.read_text(encoding="utf-8"), (
        f"{golden.name} differs; if the change is intended, rerun with EMBEDSEARCH_REGEN_GOLDEN=1"
    )
