"""``embedsearch serve`` as a real process on a free loopback port, over the ``zoo`` index of the fake encoder:
health, a search over HTTP, and a graceful stop on SIGTERM and SIGINT (the request in flight is answered first).

A plugin written by the test makes the encoder pause on a query containing ``SLOW_WORD``, after touching a marker
file, so that the signal arrives while that request is certainly being served."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from embedsearch.search import Searcher
from tests.encoders.tolerances import HIT_ROUNDING, cosine_error
from tests.fake_encoder import DIM

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60  # seconds: importing torch, faiss and fastapi on a busy two-core machine
STOP_TIMEOUT = 15
SLOW_WORD = "slowly"
PAUSE = 2.0  # seconds the encoder holds a slow query: the signal comes while it waits
# the server's cosines and this test's are computed apart, each within this of the exact value on any CPU
TIE = 2 * (cosine_error(DIM) + HIT_ROUNDING)
SLOW_PLUGIN = f"""
import os
import pathlib
import time
import tests.fake_encoder as fake

embed = fake.FakeEncoder._embed_texts


def slow(self, texts):
    if any({SLOW_WORD!r} in text for text in texts):
        pathlib.Path(os.environ["SLOW_QUERY_MARKER"]).touch()
        time.sleep({PAUSE})
    return embed(self, texts)


fake.FakeEncoder._embed_texts = slow
"""
# The exit status after a graceful stop. SIGTERM: uvicorn (>= 0.29) re-raises the signal once it has shut down,
# so the process ends as killed by it (-SIGTERM), as a supervisor expects; before that it exited 0. SIGINT:
# uvicorn re-raises it too, into asyncio.run's own SIGINT handler, which has nothing left to cancel: exit 0 (the
# CLI's "Interrupted." and 130 are for a KeyboardInterrupt, which does not happen here).
CLEAN_EXIT = {signal.SIGTERM: {0, -signal.SIGTERM}, signal.SIGINT: {0, 130}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serving(home: Path, work: Path):
    """``embedsearch serve --home HOME`` in a new process; yields ``(process, url)`` once /health answers, and
    kills the process in the end whatever happened."""
    (work / "plugins").mkdir(exist_ok=True)
    (work / "plugins" / "slow_plugin.py").write_text(SLOW_PLUGIN, encoding="utf-8")
    env = {
        **os.environ,
        "EMBEDSEARCH_PLUGINS": "tests.fake_encoder,slow_plugin",
        "SLOW_QUERY_MARKER": str(work / "slow-query-started"),
        "PYTHONPATH": os.pathsep.join([str(REPO), str(work / "plugins")]),
    }
    env.pop("EMBEDSEARCH_API_TOKEN", None)
    port = _free_port()
    # a terminal's SIGINT handler, whatever this process was started with (a background job ignores SIGINT)
    code = (
        "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
        "from embedsearch.cli import main; main()"
    )
    command = [sys.executable, "-c", code, "serve", "--home", str(home), "--port", str(port)]
    with open(work / "server.log", "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(url, process, work / "server.log")
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=STOP_TIMEOUT)


def _wait_until_up(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    pytest.fail(f"the server did not answer /health within {START_TIMEOUT} s")


def test_health_and_a_search_over_http(zoo_home, tmp_path):
    with serving(zoo_home, tmp_path) as (_, url):
        assert httpx.get(f"{url}/health", timeout=5).json() == {"status": "ok", "indexes": 1, "broken": []}
        assert [i["name"] for i in httpx.get(f"{url}/indexes", timeout=5).json()] == ["zoo"]
        response = httpx.post(f"{url}/indexes/zoo/search", json={"query": "a cat that purrs", "k": 3}, timeout=10)
        missing = httpx.post(f"{url}/indexes/nope/search", json={"query": "cat"}, timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = Searcher.open("zoo", zoo_home).search("a cat that purrs", k=5)
    assert body["index"] == "zoo" and len(body["hits"]) == 3
    assert {"cat", "long"} <= {hit["id"] for hit in body["hits"]}
    score_of = {h.id: h.score for h in expected}
    for served, hit in zip(body["hits"], expected, strict=False):
        # a hit may trade places only with one whose score ties it within rounding
        assert served["id"] == hit.id or abs(score_of[served["id"]] - hit.score) <= TIE, (served, hit)
        assert abs(served["score"] - hit.score) <= TIE, (served, hit)
        assert served["url"] == f"{url}/indexes/zoo/items/{served['id']}"
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "UnknownIndexError"


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_the_server_after_the_request_in_flight(zoo_home, tmp_path, stop):
    marker = tmp_path / "slow-query-started"
    with serving(zoo_home, tmp_path) as (process, url), ThreadPoolExecutor(1) as pool:
        query = {"query": f"the cat purrs {SLOW_WORD}", "k": 2}
        in_flight = pool.submit(httpx.post, f"{url}/indexes/zoo/search", json=query, timeout=START_TIMEOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not marker.exists() and time.monotonic() < deadline and not in_flight.done():
            time.sleep(0.02)
        assert marker.exists(), "the slow query never reached the encoder"
        sent = time.monotonic()
        process.send_signal(stop)
        response = in_flight.result(timeout=STOP_TIMEOUT)
        code = process.wait(timeout=STOP_TIMEOUT)
        stopped_after = time.monotonic() - sent
    assert response.status_code == 200 and response.json()["hits"][0]["id"] in {"cat", "long"}
    assert code in CLEAN_EXIT[stop], code
    log = (tmp_path / "server.log").read_text(errors="replace")
    assert "Traceback" not in log and "Error" not in log, log
    assert stopped_after < STOP_TIMEOUT
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health", timeout=1)
