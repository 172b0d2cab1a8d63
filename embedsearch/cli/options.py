"""Options shared by several commands, and small parsers."""

from __future__ import annotations

import click

from embedsearch.index.storage import HOME_VARIABLE

home_option = click.option(
    "--home",
    envvar=HOME_VARIABLE,
    type=click.Path(file_okay=False),
    default="indexes",
    show_default=True,
    help=f"Folder that holds the indexes (or ${HOME_VARIABLE}).",
)
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress output on stderr.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")
lock_timeout_option = click.option(
    "--lock-timeout",
    type=float,
    default=300.0,
    show_default=True,
    help="Seconds to wait while another process writes the index.",
)


def parse_where(values: tuple[str, ...]) -> dict[str, str] | None:
    """``("lang=en", "year=2020")`` -> ``{"lang": "en", "year": "2020"}``; a value without ``=`` is a usage error."""
    where = {}
    for value in values:
        key, sep, text = value.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected key=value, got {value!r}", param_hint="--where")
        where[key] = text
    return where or None


def parse_size(value: str | None) -> int | None:
    """``"2GB"``, ``"512MiB"``, ``"1000000"`` -> bytes; anything else, zero or less is a usage error."""
    if value is None:
        return None
    units = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}
    text = value.strip().upper()
    number = text.rstrip("KMGIB")
    invalid = click.BadParameter(f"expected a size like 2GB or 512MiB, got {value!r}", param_hint="--memory-budget")
    try:
        size = int(float(number) * units[text[len(number) :]])
    except (ValueError, KeyError, OverflowError):  # OverflowError: "inf"
        raise invalid from None
    if size <= 0:
        raise invalid
    return size
