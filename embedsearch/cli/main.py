"""The ``embedsearch`` command: a thin client of the Python API.

Errors are mapped to one-line messages and exit codes here, once: invalid input exits 2 (like click's usage
errors), every other :class:`EmbedsearchError` exits 1. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import sys

import click

from embedsearch import __version__
from embedsearch.errors import EmbedsearchError, InvalidInputError, SourceError

MAX_PROBLEM_LINES = 20


class ErrorMappingGroup(click.Group):
    """A click group that turns embedsearch errors into ``Error: ...`` on stderr and an exit code."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EmbedsearchError as err:
            if ctx.params.get("debug"):
                raise
            _report(err)
            sys.exit(2 if isinstance(err, InvalidInputError) else 1)
        except OSError as err:  # a disk that is full, a folder that cannot be written: one line, not a traceback
            if ctx.params.get("debug"):
                raise
            where = f": {err.filename}" if err.filename else ""
            click.echo(f"Error: {err.strerror or err}{where}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


def _report(err: EmbedsearchError) -> None:
    click.echo(f"Error: {err}", err=True)
    if isinstance(err, SourceError) and len(err.problems) > 1:
        for problem in err.problems[:MAX_PROBLEM_LINES]:
            click.echo(f"  {problem}", err=True)


class DefaultCommandGroup(click.Group):
    """A group that runs its ``default`` subcommand when the first argument names none of its subcommands, so
    that ``embedsearch eval NAME ...`` keeps meaning ``embedsearch eval index NAME ...``."""

    def __init__(self, *args, default: str, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.default = default

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in self.get_help_option_names(ctx):
            args = [self.default, *args]
        return super().parse_args(ctx, args)


@click.group(cls=ErrorMappingGroup)
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.version_option(__version__, prog_name="embedsearch")
def cli(debug: bool) -> None:
    """Semantic search over your own documents: build FAISS indexes, search them, evaluate them."""
    logging.basicConfig(format="%(message)s", level=logging.DEBUG if debug else logging.WARNING)


def main() -> None:
    import embedsearch.cli  # noqa: F401 (registers every command on ``cli``)

    cli(prog_name="embedsearch")
