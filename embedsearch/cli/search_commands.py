"""``embedsearch search`` and ``embedsearch eval``."""

from __future__ import annotations

import json

import click

from embedsearch.cli.main import cli
from embedsearch.cli.options import home_option, json_option, parse_where, quiet_option

SNIPPET_CHARS = 160


@cli.command()
@click.argument("name")
@click.argument("query", required=False)
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="How many documents.")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Keep documents whose metadata matches.")
@click.option("--queries", type=click.Path(dir_okay=False), help="JSONL of {_id, text}: one JSON line out per query.")
@click.option("--encoder", help="Query encoder (must match the index's; default: the one it was built with).")
@click.option("--ef-search", type=click.IntRange(min=1), help="HNSW search breadth.")
@click.option("--nprobe", type=click.IntRange(min=1), help="IVF lists visited.")
@home_option
@json_option
@quiet_option
def search(name, query, k, where, queries, encoder, ef_search, nprobe, home, as_json, quiet) -> None:
    """Search index NAME for QUERY (or for every line of --queries)."""
    from embedsearch import load_index, read_queries
    from embedsearch.runtime import use_batch_threads, use_query_threads

    if (query is None) == (queries is None):
        raise click.UsageError("give either QUERY or --queries FILE")
    # input is checked before the index and its encoder are loaded, which can take seconds
    filters = parse_where(where)
    texts = read_queries(queries) if queries is not None else None
    searcher = load_index(name, home, encoder)
    knobs = {key: v for key, v in (("ef_search", ef_search), ("nprobe", nprobe)) if v is not None}
    if texts is None:
        use_query_threads()
        _print_hits(searcher.search(query, k, filters, **knobs), as_json)
        return
    use_batch_threads()
    results = searcher.search_many(list(texts.values()), k, filters, progress=not quiet, **knobs)
    for query_id, hits in zip(texts, results, strict=True):
        line = {"query_id": query_id, "results": [{"id": h.id, "score": h.score} for h in hits]}
        click.echo(json.dumps(line, ensure_ascii=False))


def _print_hits(hits, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps([h.to_dict() for h in hits], indent=2, ensure_ascii=False))
        return
    if not hits:
        click.echo("no results")
    for rank, hit in enumerate(hits, 1):
        snippet = " ".join(hit.snippet.split())
        snippet = snippet if len(snippet) <= SNIPPET_CHARS else snippet[: SNIPPET_CHARS - 1] + "…"
        click.echo(f"{rank:>3}. {hit.score:.4f}  {hit.id}")
        click.echo(f"     {snippet}")
        if hit.metadata:
            click.echo(f"     {json.dumps(hit.metadata, ensure_ascii=False)}")


@cli.command("eval")
@click.argument("name")
@click.option("--queries", type=click.Path(dir_okay=False), required=True, help="BEIR queries.jsonl.")
@click.option("--qrels", type=click.Path(dir_okay=False), required=True, help="BEIR qrels TSV (with header).")
@click.option("-k", "k", type=click.IntRange(min=100), default=100, show_default=True, help="Documents per query.")
@home_option
@json_option
@quiet_option
def evaluate(name, queries, qrels, k, home, as_json, quiet) -> None:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 of index NAME on the queries judged in QRELS."""
    from embedsearch import load_index
    from embedsearch.eval import evaluate_index
    from embedsearch.runtime import use_batch_threads

    use_batch_threads()
    report = evaluate_index(load_index(name, home), queries, qrels, k=k, progress=not quiet)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for metric, value in report.metrics.items():
        click.echo(f"{metric:<11}{value:.4f}")
    click.echo(
        f"{'queries':<11}{report.queries}"
        + (f" ({report.missing_queries} without text)" if report.missing_queries else "")
    )
