"""``embedsearch serve``: the HTTP API and web page over the indexes of a home folder."""

from __future__ import annotations

import logging

import click

from embedsearch.cli.main import cli
from embedsearch.cli.options import home_option


@cli.command()
@home_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option("--index", "names", multiple=True, help="Serve only these indexes (default: all in the home).")
@click.option("--max-k", type=click.IntRange(1, 10_000), default=1000, show_default=True, help="Largest k accepted.")
@click.option(
    "--allow-open-writes", is_flag=True, help="Listen beyond loopback without $EMBEDSEARCH_API_TOKEN (writes open)."
)
def serve(home, host, port, names, max_k, allow_open_writes) -> None:
    """Serve the JSON API (/docs) and the search page (/) over HTTP. Writes need $EMBEDSEARCH_API_TOKEN if set."""
    import uvicorn

    from embedsearch.errors import CorruptIndexError
    from embedsearch.index import index_info
    from embedsearch.serve import ServeSettings, create_app

    for name in names:
        try:
            index_info(name, home)  # an unknown index fails here, with the CLI's one-line error
        except CorruptIndexError:
            pass  # served as broken (503 for it alone), so that the other indexes are served
    settings = ServeSettings.from_environment(home=home, names=tuple(names) or None, max_k=max_k)
    warning = settings.check_exposure(host, allow_open_writes)
    if warning:
        logging.getLogger("embedsearch").warning("warning: %s", warning)
    uvicorn.run(create_app(settings), host=host, port=port, log_level="warning")
