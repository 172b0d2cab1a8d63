"""``embedsearch search`` and ``embedsearch eval``."""

from __future__ import annotations

import json
from pathlib import Path

import click

from embedsearch.cli.main import DefaultCommandGroup, cli
from embedsearch.cli.options import home_option, json_option, parse_where, quiet_option

SNIPPET_CHARS = 160

mode_option = click.option(
    "--mode",
    type=click.Choice(["dense", "lexical", "hybrid"]),
    help="Text queries: the dense side, the lexical (BM25) side, or both fused.  [default: hybrid where the index "
    "has a lexical side, else dense]",
)
fusion_option = click.option(
    "--fusion",
    type=click.Choice(["convex", "rrf"]),
    help="Hybrid: a convex combination of normalised scores, or reciprocal rank fusion.  [default: convex]",
)
alpha_option = click.option(
    "--alpha", type=click.FloatRange(0, 1), help="Convex fusion: the weight of the dense side.  [default: 0.5]"
)


@cli.command()
@click.argument("name")
@click.argument("query", required=False)
@click.option(
    "--image",
    type=click.Path(exists=True, dir_okay=False),
    help="Search by this image (the index's encoder must embed images).",
)
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=10, show_default=True, help="How many documents.")
@click.option("--where", multiple=True, metavar="KEY=VALUE", help="Keep documents whose metadata matches.")
@click.option(
    "--queries",
    type=click.Path(dir_okay=False),
    help="JSONL of {_id, text} or {_id, image} (path from the file's folder): one JSON line out per query.",
)
@click.option("--encoder", help="Query encoder (must match the index's; default: the one it was built with).")
@mode_option
@fusion_option
@alpha_option
@click.option("--ef-search", type=click.IntRange(min=1), help="HNSW search breadth.")
@click.option("--nprobe", type=click.IntRange(min=1), help="IVF lists visited.")
@home_option
@json_option
@quiet_option
def search(
    name, query, image, k, where, queries, encoder, mode, fusion, alpha, ef_search, nprobe, home, as_json, quiet
) -> None:
    """Search index NAME for QUERY, for an --image, or for every line of --queries."""
    from embedsearch import load_index, read_queries
    from embedsearch.runtime import use_batch_threads, use_query_threads

    if sum(given is not None for given in (query, image, queries)) != 1:
        raise click.UsageError("give one of QUERY, --image FILE or --queries FILE")
    # input is checked before the index and its encoder are loaded, which can take seconds
    filters = parse_where(where)
    batch = read_queries(queries, images=True) if queries is not None else None
    searcher = load_index(name, home, encoder, query_kinds=_query_kinds(query, batch))
    knobs = {"ef_search": ef_search, "nprobe": nprobe}
    options = {"mode": mode, "fusion": fusion, "alpha": alpha, **knobs}
    if batch is None:
        use_query_threads()
        if image is not None:
            _print_hits(searcher.search_images([Path(image)], k, filters, **knobs)[0], as_json)
        else:
            _print_hits(searcher.search(query, k, filters, **options), as_json)
        return
    use_batch_threads()
    results = searcher.search_mixed(list(batch.values()), k, filters, progress=not quiet, highlight=False, **options)
    for query_id, hits in zip(batch, results, strict=True):
        line = {"query_id": query_id, "results": [{"id": h.id, "score": h.score} for h in hits]}
        click.echo(json.dumps(line, ensure_ascii=False))


def _query_kinds(query: str | None, batch: dict | None) -> set[str]:
    if batch is None:
        return {"text" if query is not None else "image"}
    return {"text" if isinstance(value, str) else "image" for value in batch.values()}


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


@cli.group(
    "eval",
    cls=DefaultCommandGroup,
    default="index",
    short_help="Evaluate an index on BEIR queries, or an image-text encoder on image-caption pairs.",
)
def evaluate() -> None:
    """Measure retrieval quality: of an index on BEIR queries (`eval NAME ...` is `eval index NAME ...`), or
    of an image-text encoder on image-caption pairs."""


@evaluate.command("index")
@click.argument("name")
@click.option("--queries", type=click.Path(dir_okay=False), required=True, help="BEIR queries.jsonl.")
@click.option("--qrels", type=click.Path(dir_okay=False), required=True, help="BEIR qrels TSV (with header).")
@click.option("-k", "k", type=click.IntRange(100, 10_000), default=100, show_default=True, help="Documents per query.")
@mode_option
@fusion_option
@alpha_option
@home_option
@json_option
@quiet_option
def evaluate_index_command(name, queries, qrels, k, mode, fusion, alpha, home, as_json, quiet) -> None:
    """nDCG@10, Recall@10, Recall@100 and MRR@10 of index NAME on the queries judged in QRELS."""
    from embedsearch import load_index
    from embedsearch.eval import evaluate_index
    from embedsearch.runtime import use_batch_threads

    use_batch_threads()
    options = {"mode": mode, "fusion": fusion, "alpha": alpha}
    report = evaluate_index(load_index(name, home), queries, qrels, k=k, progress=not quiet, **options)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    for metric, value in report.metrics.items():
        click.echo(f"{metric:<11}{value:.4f}")
    click.echo(
        f"{'queries':<11}{report.queries}"
        + (f" ({report.missing_queries} without text)" if report.missing_queries else "")
    )


@evaluate.command("pairs")
@click.option("--encoder", required=True, help="Encoder name or model directory; it must embed images and text.")
@click.option(
    "--pairs",
    "pairs_file",
    type=click.Path(dir_okay=False),
    required=True,
    help="JSONL of {image, text} lines; an image may have several captions and a caption several images.",
)
@click.option(
    "--images-root",
    type=click.Path(file_okay=False),
    help="Folder that relative image paths start from.  [default: the pairs file's folder]",
)
@click.option("--split", help="Keep only the lines whose 'split' field is this (e.g. test).")
@json_option
@quiet_option
def evaluate_pairs_command(encoder, pairs_file, images_root, split, as_json, quiet) -> None:
    """Recall@1/5/10 from each image to its captions and from each distinct caption to its images."""
    from embedsearch.eval import evaluate_pairs
    from embedsearch.runtime import use_batch_threads

    use_batch_threads()
    report = evaluate_pairs(encoder, pairs_file, images_root, split=split, progress=not quiet)
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
        return
    ks = sorted({int(key.rsplit("@", 1)[1]) for key in report.metrics})
    click.echo(f"{'':<12}" + "".join(f"{f'R@{k}':>8}" for k in ks))
    for direction, label in (("image_to_text", "image→text"), ("text_to_image", "text→image")):
        click.echo(f"{label:<12}" + "".join(f"{report.metrics[f'{direction}_R@{k}']:>8.4f}" for k in ks))
    click.echo(f"{report.images} images, {report.captions} distinct captions, {report.pairs} pairs")
