"""``embedsearch demo``: index the standard library's docstrings and run a few searches, fully offline."""

from __future__ import annotations

import time

import click

from embedsearch.cli.main import cli
from embedsearch.cli.options import home_option, quiet_option

DEMO_INDEX = "python-stdlib"
DEMO_QUERIES = (
    "parse command line arguments",
    "compress data with gzip",
    "send an email over SMTP",
    "generate cryptographically secure random numbers",
)


@cli.command()
@click.option("--encoder", default="minilm", show_default=True, help="Encoder name or model directory.")
@click.option("-k", "k", type=click.IntRange(min=1), default=3, show_default=True, help="Hits shown per query.")
@home_option
@quiet_option
def demo(encoder, k, home, quiet) -> None:
    """Index the Python standard library's docstrings (index 'python-stdlib') and search it."""
    from embedsearch import add_documents, build_index, list_indexes, load_index
    from embedsearch.data.stdlib_docs import stdlib_documents

    documents = stdlib_documents()
    start = time.perf_counter()
    if DEMO_INDEX in [m["name"] for m in list_indexes(home)]:
        report = add_documents(DEMO_INDEX, documents, home=home, progress=not quiet)
    else:
        report = build_index(DEMO_INDEX, documents, encoder, home=home, progress=not quiet)
    click.echo(
        f"index {DEMO_INDEX!r}: {report.manifest['count']} docstrings, {report.chunks_encoded} chunks encoded "
        f"in {time.perf_counter() - start:.1f}s (spec {report.manifest['spec']}, home {home})"
    )
    searcher = load_index(DEMO_INDEX, home)
    for query in DEMO_QUERIES:
        click.echo(f"\n$ embedsearch search {DEMO_INDEX} {query!r} -k {k}")
        for rank, hit in enumerate(searcher.search(query, k), 1):
            first_line = hit.snippet.splitlines()[0][:100]
            click.echo(f"{rank:>3}. {hit.score:.3f}  {hit.id:<32} {first_line}")
