"""``embedsearch index build|add|delete|info|list``."""

from __future__ import annotations

import json
import time

import click

from embedsearch.cli.main import cli
from embedsearch.cli.options import home_option, json_option, lock_timeout_option, parse_size, quiet_option

sources_argument = click.argument("sources", nargs=-1, required=True, type=click.Path())
stemmer_option = click.option(
    "--stemmer", help="Lexical side: a Snowball stemmer language (english, french, ...) or 'none'.  [default: english]"
)
stopwords_option = click.option(
    "--stopwords", help="Lexical side: 'english', 'none', or comma-separated words.  [default: english]"
)
tokens_option = click.option(
    "--token-pattern", help="Lexical side: the regular expression of a word.  [default: two or more word characters]"
)
skip_option = click.option(
    "--skip-invalid", is_flag=True, help="Skip malformed records (each is reported) instead of rejecting the input."
)


@cli.group()
def index() -> None:
    """Build and change indexes."""


@index.command()
@click.argument("name")
@sources_argument
@click.option("--encoder", default="minilm", show_default=True, help="Encoder name or model directory.")
@click.option("--spec", default="auto", show_default=True, help="'auto' or a faiss index_factory string.")
@click.option("--memory-budget", help="For --spec auto: the most memory the index may use, e.g. 2GB.")
@click.option("--chunk-overlap", type=int, help="Tokens shared by neighbouring chunks [default: 1/8 of a chunk].")
@click.option("--no-chunking", is_flag=True, help="One vector per document (the model truncates long ones).")
@click.option("--overwrite", is_flag=True, help="Replace an existing index of that name.")
@click.option("--no-lexical", is_flag=True, help="Dense only: no lexical (BM25) side (image indexes never have one).")
@stemmer_option
@stopwords_option
@tokens_option
@skip_option
@home_option
@lock_timeout_option
@quiet_option
def build(
    name,
    sources,
    encoder,
    spec,
    memory_budget,
    chunk_overlap,
    no_chunking,
    overwrite,
    no_lexical,
    stemmer,
    stopwords,
    token_pattern,
    skip_invalid,
    home,
    lock_timeout,
    quiet,
) -> None:
    """Index the documents of SOURCES (JSONL, CSV, or folders of .txt/.md) as index NAME.

    With an encoder that embeds images, a folder of images (png, jpg, webp, gif) is indexed as images."""
    from embedsearch.encoders import get_encoder
    from embedsearch.index import ChunkingPolicy, build_index

    lexical = None if no_lexical else _lexical(stemmer, stopwords, token_pattern, default="auto")
    model = get_encoder(encoder)
    documents, skipped = _read(sources, skip_invalid, model.modalities)
    start = time.perf_counter()
    report = build_index(
        name,
        documents,
        model,
        spec=spec,
        home=home,
        overwrite=overwrite,
        progress=not quiet,
        chunking=ChunkingPolicy(enabled=not no_chunking, overlap=chunk_overlap),
        memory_budget=parse_size(memory_budget),
        lexical=lexical,
        lock_timeout=lock_timeout,
    )
    _summarize("indexed", report, time.perf_counter() - start, skipped)


def _lexical(stemmer: str | None, stopwords: str | None, tokens: str | None, default):
    """The lexical settings the options ask for (``default`` when none is given)."""
    from embedsearch.index import LexicalSettings
    from embedsearch.index.lexical import TOKEN_PATTERN

    if stemmer is None and stopwords is None and tokens is None:
        return default
    words = stopwords or "english"
    if words not in ("english", "none"):
        words = tuple(w.strip() for w in words.split(",") if w.strip())
    return LexicalSettings(stemmer or "english", words, tokens or TOKEN_PATTERN)


@index.command("add-lexical")
@click.argument("name")
@stemmer_option
@stopwords_option
@tokens_option
@home_option
@lock_timeout_option
@quiet_option
def add_lexical(name, stemmer, stopwords, token_pattern, home, lock_timeout, quiet) -> None:
    """Give index NAME a lexical (BM25) side, for lexical and hybrid search (indexes built before it existed
    have none); rebuilds one it has with the settings given."""
    from embedsearch.index import add_lexical_side

    start = time.perf_counter()
    settings = _lexical(stemmer, stopwords, token_pattern, default=None)
    report = add_lexical_side(name, home, settings, progress=not quiet, lock_timeout=lock_timeout)
    lexical = report["lexical"]
    click.echo(
        f"index {name!r}: lexical side of {report['chunks']} chunks (stemmer {lexical['stemmer']}, stopwords "
        f"{lexical['stopwords'] if isinstance(lexical['stopwords'], str) else len(lexical['stopwords'])}) in "
        f"{time.perf_counter() - start:.1f}s"
    )


@index.command()
@click.argument("name")
@sources_argument
@skip_option
@home_option
@lock_timeout_option
@quiet_option
def add(name, sources, skip_invalid, home, lock_timeout, quiet) -> None:
    """Add documents to index NAME, replacing those whose id is already there (upsert)."""
    from embedsearch.index import add_documents, index_info

    content = index_info(name, home)["content"]  # an image index takes images, a text index takes text
    documents, skipped = _read(sources, skip_invalid, {content})
    start = time.perf_counter()
    report = add_documents(name, documents, home=home, progress=not quiet, lock_timeout=lock_timeout)
    click.echo(f"added {len(report.added)}, updated {len(report.updated)}, unchanged {len(report.unchanged)}")
    _summarize("encoded", report, time.perf_counter() - start, skipped)
    _echo_compaction(report.compaction)


@index.command()
@click.argument("name")
@click.argument("ids", nargs=-1, required=True)
@home_option
@lock_timeout_option
def delete(name, ids, home, lock_timeout) -> None:
    """Delete documents IDS from index NAME."""
    from embedsearch.index import delete_documents

    report = delete_documents(name, list(ids), home=home, lock_timeout=lock_timeout)
    if report.deleted:
        click.echo(f"deleted {len(report.deleted)}; {report.manifest['count']} documents remain")
    else:
        click.echo(f"nothing deleted (none of the ids is in index {name!r}); nothing was written")
    if report.missing:
        click.echo(f"not in the index: {', '.join(report.missing)}", err=True)
    _echo_compaction(report.compaction)


@index.command()
@click.argument("name")
@home_option
@lock_timeout_option
@quiet_option
def compact(name, home, lock_timeout, quiet) -> None:
    """Merge the segments of index NAME into one and drop deleted chunks (upgrades an older format too)."""
    from embedsearch.index import compact_index, index_info

    start = time.perf_counter()
    report = compact_index(name, home, progress=not quiet, lock_timeout=lock_timeout)
    info = index_info(name, home)
    if report.upgraded:
        click.echo(f"upgraded index {name!r} to the current format")
    merged = sum(len(m["sources"]) for m in report.merges)
    click.echo(
        f"compacted {merged} segment(s) into {len(info['segments'])}, dropped {report.dropped} deleted chunk(s)"
        f"{', retrained the quantizer' if report.retrained else ''} in {time.perf_counter() - start:.1f}s; "
        f"{_size(info['disk_bytes'])} on disk"
    )


def _echo_compaction(report) -> None:
    if report is not None and report.merges:
        merged = sum(len(m["sources"]) for m in report.merges)
        click.echo(
            f"compacted {merged} segment(s) into {len(report.merges)}, dropped {report.dropped} deleted chunk(s)"
        )


def _size(count: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if count < 1024 or unit == "GiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return str(count)


@index.command()
@click.argument("name")
@home_option
@json_option
def info(name, home, as_json) -> None:
    """Show the manifest of index NAME."""
    from embedsearch.index import index_info

    manifest = index_info(name, home)
    if as_json:
        click.echo(json.dumps(manifest, indent=2, sort_keys=True))
        return
    keys = ("name", "content", "count", "chunks", "spec", "metric", "dim", "generation", "created", "updated", "path")
    for key in keys:
        click.echo(f"{key + ':':12}{manifest[key]}")
    click.echo(f"{'encoder:':12}{manifest['encoder']['name']} ({manifest['encoder']['fingerprint']})")
    click.echo(f"{'lexical:':12}{_lexical_line(manifest)}")
    click.echo(f"{'tombstones:':12}{manifest['tombstones']} (deleted or replaced chunks not yet compacted away)")
    click.echo(f"{'disk:':12}{_size(manifest['disk_bytes'])}")
    click.echo(f"{'segments:':12}{len(manifest['segments'])}")
    for segment in manifest["segments"]:
        live = segment["vectors"] - segment["tombstones"]
        click.echo(
            f"  {segment['segment']:>6}  {live} live, {segment['tombstones']} tombstoned, {_size(segment['bytes'])}"
        )


def _lexical_line(manifest) -> str:
    lexical = manifest.get("lexical")
    if not lexical:
        if manifest["content"] == "image":
            return "none (an image index is searched by its dense side)"
        return f"none (dense only; add it with `embedsearch index add-lexical {manifest['name']}`)"
    words = lexical["stopwords"]
    words = words if isinstance(words, str) else f"{len(words)} words"
    return f"BM25 in {lexical['engine']}, stemmer {lexical['stemmer']}, stopwords {words}"


@index.command("list")
@home_option
@json_option
def list_(home, as_json) -> None:
    """List the indexes in the home folder."""
    from embedsearch.index import list_indexes

    manifests = list_indexes(home, broken=True)
    if as_json:
        click.echo(json.dumps(manifests, indent=2, sort_keys=True))
    for manifest in [] if as_json else manifests:
        if "broken" in manifest:
            click.echo(f"{manifest['name']}\tBROKEN: {manifest['broken']}")
            continue
        encoder = manifest["encoder"]["name"]
        click.echo(f"{manifest['name']}\t{manifest['count']} docs\t{manifest['spec']}\t{encoder}")


def _read(sources, skip_invalid: bool, embeds):
    """The documents of ``sources`` and how many records were skipped (each reported on stderr)."""
    from embedsearch.data import read_documents

    report = read_documents(sources, skip_invalid=skip_invalid, embeds=embeds)
    for problem in report.problems:
        click.echo(f"skipped {problem}", err=True)
    return report.documents, len(report.problems)


def _summarize(verb: str, report, seconds: float, skipped: int = 0) -> None:
    manifest = report.manifest
    docs = len(report.added) + len(report.updated)
    images = manifest["content"] == "image"
    noun = "images" if images else "documents"
    skips = f"; skipped {skipped} {'unreadable image(s)' if images else 'invalid record(s)'}" if skipped else ""
    click.echo(
        f"{verb} {docs} {noun} ({report.chunks_encoded} chunks) in {seconds:.1f}s "
        f"({docs / seconds:.1f} docs/s, {report.chunks_encoded / seconds:.1f} chunks/s); index {manifest['name']!r} "
        f"holds {manifest['count']} {noun}, spec {manifest['spec']}{skips}"
    )
