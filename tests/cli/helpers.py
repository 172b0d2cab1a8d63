"""Running ``embedsearch`` in-process as a user would, and reading its output (shared by the CLI test modules)."""

from __future__ import annotations

import json
from pathlib import Path

import click
from click.testing import CliRunner, Result

from embedsearch.cli import cli
from embedsearch.cli.main import DefaultCommandGroup


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def accepted_options(args: tuple[str, ...]) -> set[str]:
    """The options of the (sub)command that ``args`` names, e.g. ``("index", "build", ...)``."""
    command: click.Command = cli
    for word in args:
        if not isinstance(command, click.Group):
            break
        if word not in command.commands:
            if isinstance(command, DefaultCommandGroup):
                command = command.commands[command.default]
            break
        command = command.commands[word]
    return {option for param in command.params for option in param.opts}


def run_cli(*args: str | Path, home: Path | None = None, code: int = 0) -> Result:
    """Run ``embedsearch ARGS [--home HOME] [--quiet]`` in-process; check the exit code and that no traceback
    escaped (an error is ``SystemExit`` from the CLI's error mapping, never another exception)."""
    words = tuple(str(a) for a in args)
    extra = (["--home", str(home)] if home is not None else []) + (
        ["--quiet"] if "--quiet" in accepted_options(words) else []
    )
    result = CliRunner().invoke(cli, [*words, *extra], env={"EMBEDSEARCH_HOME": None})
    shown = f"args {words}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.exception is None or isinstance(result.exception, SystemExit), shown
    assert "Traceback" not in result.output, shown
    assert result.exit_code == code, shown
    return result


def error_line(result: Result) -> str:
    """The one ``Error: ...`` line of a failed command (click's usage errors put a usage text above it)."""
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(lines) == 1, result.stderr
    assert result.stdout == ""
    return lines[0]


def one_line_error(result: Result) -> str:
    """An embedsearch error: exactly one line on stderr, nothing on stdout."""
    assert result.stderr.count("\n") == 1, result.stderr
    return error_line(result)


def hits(es, *args: str | Path) -> list[dict]:
    return json.loads(es("search", *args, "--json").stdout)


def manifest(es, name: str = "zoo") -> dict:
    return json.loads(es("index", "info", name, "--json").stdout)
