"""The web page in a real browser: headless Chromium (Debian's), driven by Playwright, against a real server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from embedsearch import build_index
from embedsearch.data import Document, read_documents

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def server(home, image_folder):
    """``embedsearch serve`` in a subprocess on a free loopback port, with the fake encoders as a plugin; it
    serves a caption index ``shapes`` and an image index ``pictures``, both embedded by ``fake-clip``."""
    build_index(
        "shapes",
        [Document(c, f"a {c} shape", {"colour": c}) for c in ("red", "green", "blue", "yellow")],
        "fake-clip",
        home=home,
    )
    pictures = read_documents([image_folder], skip_invalid=True, embeds={"text", "image"}).documents
    build_index("pictures", pictures, "fake-clip", home=home)
    port = _free_port()
    env = {**os.environ, "EMBEDSEARCH_PLUGINS": "tests.fake_encoder", "PYTHONPATH": str(REPO)}
    command = [
        sys.executable,
        "-c",
        "from embedsearch.cli import main; main()",
        "serve",
        "--home",
        str(home),
        "--port",
        str(port),
    ]
    process = subprocess.Popen(command, env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until_up(url: str, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited: {process.stdout.read().decode()[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise RuntimeError("server did not start within 60 s")


@pytest.fixture
def page():
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed: .ci/run installs Debian's chromium package")
        pytest.skip("chromium not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


def test_text_search_and_image_upload_in_the_page(server, page, tmp_path):
    page.goto(server + "/")
    page.wait_for_selector("#index option[value=shapes]", state="attached")
    page.select_option("#index", "shapes")
    page.select_option("#mode", "dense")
    page.fill("#query", "blue")
    page.click("#go")
    page.wait_for_selector("li.hit")
    assert page.inner_text("li.hit >> nth=0 >> .id") == "blue"
    assert float(page.inner_text("li.hit >> nth=0 >> .score")) > 0.5  # a cosine: dense mode
    assert "hits in" in page.inner_text("#status")
    assert page.locator("li.hit img").count() == 0  # a caption index shows no thumbnails, whatever its encoder

    picture = tmp_path / "red.png"
    Image.new("RGB", (32, 32), (250, 10, 10)).save(picture)
    page.set_input_files("#file", str(picture))
    page.wait_for_function(
        "document.querySelector('#status').textContent.includes('hits in') "
        "&& document.querySelector('li.hit .id').textContent === 'red'"
    )
    page.screenshot(path=str(tmp_path / "page.png"))


def test_errors_are_shown_in_the_page(server, page):
    page.goto(server + "/")
    page.wait_for_selector("#index option[value=shapes]", state="attached")
    page.set_input_files("#file", files=[{"name": "notes.txt", "mimeType": "text/plain", "buffer": b"not an image"}])
    page.wait_for_selector("#status.error")
    assert page.inner_text("#status").startswith("415")


def test_an_image_index_shows_thumbnails_that_load(server, page):
    page.goto(server + "/")
    page.wait_for_selector("#index option[value=pictures]", state="attached")
    page.select_option("#index", "pictures")
    page.fill("#query", "red")
    page.click("#go")
    page.wait_for_selector("li.hit img")
    assert page.inner_text("li.hit >> nth=0 >> .id") == "red.png"
    assert page.locator("li.hit img").count() == page.locator("li.hit").count() == 4
    page.wait_for_function("[...document.querySelectorAll('li.hit img')].every((img) => img.complete)")
    widths = page.eval_on_selector_all("li.hit img", "(imgs) => imgs.map((img) => img.naturalWidth)")
    assert all(width > 0 for width in widths), widths


def test_modes_highlight_the_matched_words_and_metadata_reads_as_pairs(server, page):
    page.goto(server + "/")
    page.wait_for_selector("#index option[value=shapes]", state="attached")
    page.select_option("#index", "shapes")
    for mode in ("lexical", "hybrid"):
        page.select_option("#mode", mode)
        page.fill("#query", "Blue things")
        page.click("#go")
        page.wait_for_function("document.querySelector('li.hit .id') && document.querySelector('li.hit mark')")
        assert page.inner_text("li.hit >> nth=0 >> .id") == "blue"
        assert page.eval_on_selector_all("li.hit >> nth=0 >> mark", "(ms) => ms.map((m) => m.textContent)") == ["blue"]
        assert page.inner_text("li.hit >> nth=0 >> dl.meta dt") == "colour"
        assert page.inner_text("li.hit >> nth=0 >> dl.meta dd") == "blue"
    assert "{" not in page.inner_text("#results")  # no raw JSON


def test_an_image_index_is_a_grid_without_server_paths_or_lexical_modes(server, page):
    page.goto(server + "/")
    page.wait_for_selector("#index option[value=pictures]", state="attached")
    page.select_option("#index", "pictures")
    disabled = page.eval_on_selector_all("#mode option", "(os) => os.filter((o) => o.disabled).map((o) => o.value)")
    assert sorted(disabled) == ["hybrid", "lexical"]
    page.fill("#query", "red")
    page.click("#go")
    page.wait_for_selector("ol.grid li.hit img")
    keys = page.eval_on_selector_all("dl.meta dt", "(ts) => ts.map((t) => t.textContent)")
    values = page.eval_on_selector_all("dl.meta dd", "(ds) => ds.map((d) => d.textContent)")
    assert not {"sha256", "image_path", "path"} & set(keys)
    assert not [v for v in values if v.startswith("/")], values
