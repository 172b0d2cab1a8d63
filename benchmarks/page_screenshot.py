"""A screenshot of the web page for the README: a hybrid search of SciFact abstracts (the matched words
highlighted, metadata as pairs), served by a real `embedsearch serve`.

    python benchmarks/page_screenshot.py       # about 2 minutes: indexes 300 abstracts with minilm
    python benchmarks/page_screenshot.py --home benchmarks/results/cache/indexes-efd30571f56f  # bench_hybrid's

Needs Debian's chromium and ../shared/data; writes docs/page-hybrid.png.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from embedsearch import build_index  # noqa: E402
from embedsearch.data import read_documents  # noqa: E402

DATA = Path(os.environ.get("EMBEDSEARCH_DATA", REPO.parent / "shared" / "data"))
DOCS = REPO / "docs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="serve index 'scifact' of this home instead of building one")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="page-shot-")) / "indexes"
    if args.home is None:
        documents = read_documents([str(DATA / "scifact" / "corpus.jsonl")]).documents[:300]
        build_index("scifact", documents, "minilm", home=home, progress=True)
    port = _free_port()
    command = [sys.executable, "-c", "from embedsearch.cli import main; main()", "serve", "--home", str(home)]
    command += ["--port", str(port)]
    server = subprocess.Popen(command, cwd=REPO, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        _wait(f"http://127.0.0.1:{port}")
        query = "vitamin D deficiency and bone fractures"
        _shoot(f"http://127.0.0.1:{port}", "scifact", "hybrid", query, DOCS / "page-hybrid.png")
    finally:
        server.terminate()
        server.wait(timeout=20)
        if args.home is None:
            shutil.rmtree(home.parent, ignore_errors=True)
    print(f"wrote {DOCS / 'page-hybrid.png'}")


def _shoot(url: str, index: str, mode: str, query: str, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1000, "height": 900})
        page.goto(url + "/")
        page.wait_for_selector(f"#index option[value={index}]", state="attached")
        page.select_option("#index", index)
        page.select_option("#mode", mode)
        page.fill("#query", query)
        page.click("#go")
        page.wait_for_selector("li.hit")
        page.screenshot(path=str(out), full_page=False)
        browser.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(url: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError("the server did not start")


if __name__ == "__main__":
    main()
