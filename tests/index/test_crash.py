"""A writer killed at any moment leaves the old index or the new one, never a mix; two writers take turns.

The real CLI runs in a subprocess (``--encoder fake``, slowed down per encoder batch and per stored document so
that it spends its time writing) and is SIGKILLed at seeded random moments across its whole life, and also at
each step of its commit (the child kills itself there: see ``CHILD``), for build, add, delete and compaction.
After each kill the index must load and hold exactly the old documents or exactly the new ones, with its store,
segments and tombstones agreeing (tests/index/inspection.py); the next writer must succeed and remove what the
killed one left behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from filelock import FileLock

from embedsearch.data import read_documents
from embedsearch.index import ChunkingPolicy, add_documents, build_index, delete_documents, index_info
from embedsearch.index.storage import MANIFEST, index_directory, read_manifest, store_name
from embedsearch.index.store import Store
from embedsearch.index.tidy import referenced_files
from tests.conftest import REPO
from tests.index.inspection import contents

SEED = 1729
TRIALS = 6  # random kills per operation
SLOW = {"batch_delay": 0.005, "store_delay": 0.002}  # seconds per encoder batch and per stored document
SPEC = "Flat"
OVERLAP = 4  # the fake encoder's chunks are 12 tokens
WRITE_OPTIONS = ["--quiet", "--lock-timeout", "30"]
ENCODE_OPTIONS = ["--encoder", "fake", "--spec", SPEC, "--chunk-overlap", str(OVERLAP)]
BUILD_OPTIONS = [*ENCODE_OPTIONS, *WRITE_OPTIONS]
VOCABULARY = [f"w{i}" for i in range(400)]

Docs = dict[str, str]  # id -> text: the content an index must hold

# The child: the CLI, optionally slowed down while it writes the document store (SLOW_STORE: seconds per
# document) and killed by itself around the first call of a function whose arguments mention a needle
# (CRASH_AT: "module:attribute|before or after|needle").
CHILD = """
import importlib, os, signal, time
def around(target, action, when, needle=""):
    module, _, path = target.partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    original = getattr(owner, name)
    def wrapped(*args, **kwargs):
        hit = not needle or needle in " ".join(map(str, args))
        if hit and when == "before":
            action()
        result = original(*args, **kwargs)
        if hit and when == "after":
            action()
        return result
    setattr(owner, name, wrapped)
if os.environ.get("SLOW_STORE"):
    pause = float(os.environ["SLOW_STORE"])
    around("embedsearch.index.store:field_values", lambda: time.sleep(pause), "before")
if os.environ.get("CRASH_AT"):
    target, when, needle = os.environ["CRASH_AT"].split("|")
    around(target, lambda: os.kill(os.getpid(), signal.SIGKILL), when, needle)
from embedsearch.cli import main
main()
"""

# name: (target, when, needle, whether the new state is committed by then)
WRITE_POINTS = {
    "segment-written": ("embedsearch.index.writer:write_segment", "after", "", False),
    "inside-transaction": ("embedsearch.index.store:Store.set_state", "after", "", False),
    "committed": ("embedsearch.index.writer:remove_unreferenced", "before", "", True),
}
DELETE_POINTS = {
    "tombstones-written": ("embedsearch.index.store:Store.add_tombstones", "after", "", False),
    "inside-transaction": ("embedsearch.index.store:Store.set_state", "after", "", False),
    "committed": ("embedsearch.index.writer:remove_unreferenced", "before", "", True),
}
BUILD_POINTS = {
    "segment-written": ("embedsearch.index.writer:write_segment", "after", "", False),
    "store-committed": ("embedsearch.index.writer:write_manifest", "before", "", False),
    "manifest-tmp-written": ("os:replace", "before", MANIFEST, False),
    "manifest-replaced": ("os:replace", "after", MANIFEST, True),
}
COMPACT_POINTS = {
    "merged-written": ("embedsearch.index.compaction:write_segment", "after", "", False),
    "merged-renamed": ("embedsearch.index.compaction:finalize_segment", "after", "", False),
    "inside-transaction": ("embedsearch.index.store:Store.remove_segments", "after", "", False),
    "committed": ("embedsearch.index.compaction:remove_unreferenced", "before", "", True),
}


# ---- corpora -------------------------------------------------------------------------------------------------


def write_corpus(path: Path, ids: list[str], version: str) -> Docs:
    """Write a JSONL corpus of 16-word texts (two chunks each) determined by id and version; returns it."""
    docs = {doc_id: " ".join(random.Random(f"{doc_id}:{version}").choices(VOCABULARY, k=16)) for doc_id in ids}
    path.write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs.items()), encoding="utf-8")
    return docs


def doc_ids(prefix: str, n: int) -> list[str]:
    return [f"{prefix}{i:04d}" for i in range(n)]


# ---- the child process ----------------------------------------------------------------------------------------


def start_cli(
    args: list[str], cwd: Path, *, batch_delay: float = 0.0, store_delay: float = 0.0, crash_at: str = ""
) -> subprocess.Popen:
    env = {
        **os.environ,
        "EMBEDSEARCH_PLUGINS": "tests.fake_encoder",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "FAKE_ENCODER_DELAY": str(batch_delay),
        "SLOW_STORE": str(store_delay or ""),
        "CRASH_AT": crash_at,
    }
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def run_cli(args: list[str], cwd: Path, **kwargs) -> tuple[int, str, float]:
    """Run the CLI to its end: ``(exit code, stderr, seconds)``."""
    start = time.perf_counter()
    child = start_cli(args, cwd, **kwargs)
    _, stderr = child.communicate(timeout=120)
    return child.returncode, stderr, time.perf_counter() - start


def kill_after(child: subprocess.Popen, seconds: float) -> bool:
    """SIGKILL ``child`` after ``seconds`` unless it ends first; returns whether it ended on its own."""
    try:
        child.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        child.send_signal(signal.SIGKILL)
    _, stderr = child.communicate(timeout=60)
    if child.returncode not in (0, -signal.SIGKILL):
        pytest.fail(f"the writer failed by itself (exit {child.returncode}):\n{stderr}")
    return child.returncode == 0


def kill_delays(rng: random.Random, lifetime: float) -> list[float]:
    """``TRIALS`` delays spread over [0, 1.1 * lifetime] (one per equal slice, so late moments are drawn too)."""
    width = 1.1 * lifetime / TRIALS
    return [(i + rng.random()) * width for i in range(TRIALS)]


# ---- what is on disk ------------------------------------------------------------------------------------------


def read_state(name: str, home: Path) -> Docs | None:
    """The documents of index ``name`` (``None`` if it does not exist), after checking that its store, segments
    and tombstones agree and that search works."""
    return contents(name, home)


def assert_old_or_new(state: Docs | None, old: Docs | None, new: Docs, what: str) -> bool:
    """Fails unless ``state`` is exactly ``old`` or ``new``; returns whether it is ``new``."""
    if state == new or state == old:
        return state == new
    if state is None:
        pytest.fail(f"{what}: the index vanished")
    mixed = [i for i in state if state[i] != (old or {}).get(i) and state[i] != new.get(i)]
    pytest.fail(
        f"{what}: the index holds neither the old nor the new documents: {len(state)} documents "
        f"(old {len(old or {})}, new {len(new)}), {len(mixed)} with a text of neither, e.g. {mixed[:3]}"
    )


def assert_tidy(directory: Path) -> None:
    """Only the manifest, the lock files and what the committed state refers to are left."""
    manifest = read_manifest(directory)
    store = Store.open(directory / store_name(manifest["epoch"]), directory.name)
    try:
        kept = referenced_files(store) | {MANIFEST, ".lock", ".compact.lock"}
    finally:
        store.close()
    names = set(os.listdir(directory))
    assert store_name(manifest["epoch"]) in names
    assert names <= kept, f"left behind in {directory}: {sorted(names - kept)}"


def files_of(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in directory.iterdir()}


# ---- writing in this process: setting up and finishing what a killed child began ------------------------------


def build_here(name: str, corpus: Path, home: Path) -> None:
    documents = read_documents([corpus]).documents
    chunking = ChunkingPolicy(overlap=OVERLAP)
    build_index(name, documents, "fake", spec=SPEC, home=home, overwrite=True, chunking=chunking)


def add_here(name: str, corpus: Path, home: Path) -> None:
    add_documents(name, read_documents([corpus]).documents, home=home)


# ---- random kills --------------------------------------------------------------------------------------------


def test_build_of_a_new_index_killed_at_random_leaves_no_index_or_all_of_it(tmp_path: Path) -> None:
    home = tmp_path / "indexes"
    corpus = tmp_path / "corpus.jsonl"
    new = write_corpus(corpus, doc_ids("d", 240), "v1")
    code, stderr, lifetime = run_cli(
        ["index", "build", "probe", str(corpus), "--home", str(home), *BUILD_OPTIONS], tmp_path, **SLOW
    )
    assert code == 0, stderr
    assert read_state("probe", home) == new
    for trial, delay in enumerate(kill_delays(random.Random(SEED), lifetime)):
        name = f"new{trial}"
        child = start_cli(["index", "build", name, str(corpus), "--home", str(home), *BUILD_OPTIONS], tmp_path, **SLOW)
        kill_after(child, delay)
        assert_old_or_new(read_state(name, home), None, new, f"build killed after {delay:.2f}s")
        build_here(name, corpus, home)  # a new build of the same name succeeds over the leftovers
        assert read_state(name, home) == new
        assert_tidy(index_directory(name, home))


def test_build_overwrite_killed_at_random_leaves_the_old_or_the_new_index(tmp_path: Path) -> None:
    home = tmp_path / "indexes"
    corpora = [tmp_path / "a.jsonl", tmp_path / "b.jsonl"]
    contents = [write_corpus(corpora[0], doc_ids("a", 240), "v1"), write_corpus(corpora[1], doc_ids("b", 200), "v1")]
    build_here("t", corpora[0], home)

    def overwrite(corpus: Path) -> subprocess.Popen:
        args = ["index", "build", "t", str(corpus), "--overwrite", "--home", str(home), *BUILD_OPTIONS]
        return start_cli(args, tmp_path, **SLOW)

    start = time.perf_counter()
    assert kill_after(overwrite(corpora[1]), 120)
    lifetime = time.perf_counter() - start
    assert read_state("t", home) == contents[1]
    for trial, delay in enumerate(kill_delays(random.Random(SEED + 1), lifetime)):
        old, new = contents[(trial + 1) % 2], contents[trial % 2]
        kill_after(overwrite(corpora[trial % 2]), delay)
        assert_old_or_new(read_state("t", home), old, new, f"build --overwrite killed after {delay:.2f}s")
        build_here("t", corpora[trial % 2], home)
        assert read_state("t", home) == new
        assert_tidy(index_directory("t", home))


def test_add_killed_at_random_leaves_the_old_or_the_new_documents(tmp_path: Path) -> None:
    home = tmp_path / "indexes"
    current = write_corpus(tmp_path / "base.jsonl", doc_ids("d", 240), "v0")
    build_here("t", tmp_path / "base.jsonl", home)
    rng = random.Random(SEED + 2)

    def changes(trial: int, current: Docs) -> tuple[Path, Docs]:
        """A file of 60 changed and 60 new documents, and the index's content once it is added."""
        path = tmp_path / f"changes{trial}.jsonl"
        ids = sorted(rng.sample(sorted(current), 60)) + doc_ids(f"n{trial}-", 60)
        return path, {**current, **write_corpus(path, ids, f"v{trial}")}

    def add(path: Path) -> subprocess.Popen:
        return start_cli(["index", "add", "t", str(path), "--home", str(home), *WRITE_OPTIONS], tmp_path, **SLOW)

    path, current = changes(0, current)
    start = time.perf_counter()
    assert kill_after(add(path), 120)
    lifetime = time.perf_counter() - start
    assert read_state("t", home) == current
    for trial, delay in enumerate(kill_delays(rng, lifetime), start=1):
        path, new = changes(trial, current)
        kill_after(add(path), delay)
        assert_old_or_new(read_state("t", home), current, new, f"add killed after {delay:.2f}s")
        add_here("t", path, home)  # the next writer succeeds over the leftovers
        assert read_state("t", home) == new
        assert_tidy(index_directory("t", home))
        current = new


# ---- kills at each step of the commit -----------------------------------------------------------------------


def _killed_at(point: tuple[str, str, str, bool], args: list[str], home: Path, cwd: Path) -> None:
    target, when, needle, _ = point
    code, stderr, _ = run_cli([*args, "--home", str(home)], cwd, crash_at=f"{target}|{when}|{needle}")
    assert code == -signal.SIGKILL, f"the crash point was not reached (exit {code}):\n{stderr}"


@pytest.mark.parametrize("operation", ["build", "overwrite"])
@pytest.mark.parametrize("point", list(BUILD_POINTS))
def test_build_killed_during_its_commit_leaves_the_old_or_the_new_index(
    tmp_path: Path, operation: str, point: str
) -> None:
    home = tmp_path / "indexes"
    old = write_corpus(tmp_path / "old.jsonl", doc_ids("d", 20), "v0")
    new = write_corpus(tmp_path / "incoming.jsonl", doc_ids("d", 30)[10:], "v1")
    if operation == "build":
        old = None
    else:
        build_here("t", tmp_path / "old.jsonl", home)
    args = ["index", "build", "t", "incoming.jsonl", *BUILD_OPTIONS] + (["--overwrite"] if old else [])
    _killed_at(BUILD_POINTS[point], args, home, tmp_path)
    assert read_state("t", home) == (new if BUILD_POINTS[point][3] else old)
    build_here("t", tmp_path / "incoming.jsonl", home)
    assert read_state("t", home) == new
    assert_tidy(index_directory("t", home))


@pytest.mark.parametrize("point", list(WRITE_POINTS))
def test_add_killed_during_its_commit_leaves_the_old_or_the_new_documents(tmp_path: Path, point: str) -> None:
    home = tmp_path / "indexes"
    old = write_corpus(tmp_path / "old.jsonl", doc_ids("d", 20), "v0")
    incoming = write_corpus(tmp_path / "incoming.jsonl", doc_ids("d", 30)[10:], "v1")  # 10 changed, 10 new
    build_here("t", tmp_path / "old.jsonl", home)
    _killed_at(WRITE_POINTS[point], ["index", "add", "t", "incoming.jsonl", *WRITE_OPTIONS], home, tmp_path)
    new = {**old, **incoming}
    assert read_state("t", home) == (new if WRITE_POINTS[point][3] else old)
    add_here("t", tmp_path / "incoming.jsonl", home)
    assert read_state("t", home) == new
    assert_tidy(index_directory("t", home))


@pytest.mark.parametrize("point", list(DELETE_POINTS))
def test_delete_killed_during_its_commit_leaves_the_old_or_the_new_documents(tmp_path: Path, point: str) -> None:
    home = tmp_path / "indexes"
    old = write_corpus(tmp_path / "old.jsonl", doc_ids("d", 20), "v0")
    build_here("t", tmp_path / "old.jsonl", home)
    gone = doc_ids("d", 20)[3:6]
    _killed_at(DELETE_POINTS[point], ["index", "delete", "t", *gone, *WRITE_OPTIONS[1:]], home, tmp_path)
    new = {i: t for i, t in old.items() if i not in gone}
    assert read_state("t", home) == (new if DELETE_POINTS[point][3] else old)
    delete_documents("t", gone, home=home)
    assert read_state("t", home) == new
    assert_tidy(index_directory("t", home))


@pytest.mark.parametrize("point", list(COMPACT_POINTS))
def test_compaction_killed_at_each_step_leaves_the_documents_as_they_were(tmp_path: Path, point: str) -> None:
    home = tmp_path / "indexes"
    docs = write_corpus(tmp_path / "old.jsonl", doc_ids("d", 20), "v0")
    build_here("t", tmp_path / "old.jsonl", home)
    for trial in range(3):  # three more segments, and tombstones in the first
        more = write_corpus(tmp_path / f"more{trial}.jsonl", doc_ids("d", 24)[trial * 2 : trial * 2 + 6], f"v{trial}")
        add_documents("t", read_documents([tmp_path / f"more{trial}.jsonl"]).documents, home=home, compact=False)
        docs.update(more)
    before = index_info("t", home)
    _killed_at(COMPACT_POINTS[point], ["index", "compact", "t", "--quiet"], home, tmp_path)
    assert read_state("t", home) == docs
    after = index_info("t", home)
    assert len(after["segments"]) == (1 if COMPACT_POINTS[point][3] else len(before["segments"]))
    code, stderr, _ = run_cli(["index", "compact", "t", "--quiet", "--home", str(home)], tmp_path)
    assert code == 0, stderr
    assert read_state("t", home) == docs and len(index_info("t", home)["segments"]) == 1
    assert_tidy(index_directory("t", home))


# ---- two writers at once ------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["add", "build"])
def test_second_writer_fails_with_one_line_after_its_lock_timeout(tmp_path: Path, command: str) -> None:
    home = tmp_path / "indexes"
    old = write_corpus(tmp_path / "old.jsonl", doc_ids("d", 20), "v0")
    write_corpus(tmp_path / "changes.jsonl", doc_ids("d", 30)[10:], "v1")
    build_here("t", tmp_path / "old.jsonl", home)
    directory = index_directory("t", home)
    before = files_of(directory)
    args = {
        "add": ["index", "add", "t", "changes.jsonl", "--quiet"],
        "build": ["index", "build", "t", "changes.jsonl", "--overwrite", *ENCODE_OPTIONS, "--quiet"],
    }[command]
    with FileLock(str(directory / ".lock")):
        code, stderr, seconds = run_cli([*args, "--home", str(home), "--lock-timeout", "1"], tmp_path)
    assert code == 1, stderr
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()  # a notice that it waits, then the error
    assert len(lines) <= 2 and lines[-1].startswith("Error: "), stderr
    assert "being written by another process" in lines[-1]
    assert seconds >= 1.0
    assert files_of(directory) == before
    assert read_state("t", home) == old


def test_second_writer_waits_for_the_first_and_loses_no_update(tmp_path: Path) -> None:
    home = tmp_path / "indexes"
    base = write_corpus(tmp_path / "base.jsonl", doc_ids("d", 40), "v0")
    first = write_corpus(tmp_path / "first.jsonl", doc_ids("d", 60)[20:], "v1")  # 20 changed, 20 new
    second = write_corpus(tmp_path / "second.jsonl", doc_ids("d", 50)[30:], "v2")  # overlaps both
    build_here("t", tmp_path / "base.jsonl", home)
    directory = index_directory("t", home)
    slow = start_cli(
        ["index", "add", "t", "first.jsonl", "--home", str(home), *WRITE_OPTIONS], tmp_path, batch_delay=0.6
    )
    deadline = time.monotonic() + 30
    while not _is_locked(directory):  # the first writer holds the lock while it encodes
        assert slow.poll() is None and time.monotonic() < deadline, "the first writer never started writing"
        time.sleep(0.01)
    code, stderr, _ = run_cli(["index", "add", "t", "second.jsonl", "--home", str(home), *WRITE_OPTIONS], tmp_path)
    _, first_stderr = slow.communicate(timeout=60)
    assert slow.returncode == 0, first_stderr
    assert code == 0, stderr
    assert "being written by another process; waiting" in stderr, (stderr, first_stderr)
    assert read_state("t", home) == {**base, **first, **second}
    assert index_info("t", home)["count"] == len({**base, **first, **second})
    assert_tidy(directory)


def _is_locked(directory: Path) -> bool:
    from embedsearch.index.storage import try_lock

    lock = try_lock(directory, ".lock")
    if lock is None:
        return True
    lock.release()
    return False


# ---- a reader in another process -------------------------------------------------------------------------------

READER = """
import json, sys, time
import tests.fake_encoder
from embedsearch import load_index
searcher = load_index("t", sys.argv[1])
seen, bad, deadline = set(), [], time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    ids = {h.id for h in searcher.search("pair left right", k=200)}
    lefts = {i[5:] for i in ids if i.startswith("left-")}
    rights = {i[6:] for i in ids if i.startswith("right-")}
    if lefts != rights:
        bad.append(sorted(lefts ^ rights))
    seen.add(len(lefts))
print(json.dumps({"bad": bad[:5], "states": len(seen)}))
"""


def test_a_reader_in_another_process_never_sees_half_a_write(tmp_path: Path) -> None:
    home = tmp_path / "indexes"
    write_corpus(tmp_path / "base.jsonl", doc_ids("d", 30), "v0")
    build_here("t", tmp_path / "base.jsonl", home)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(home), "8"], env=env, stdout=subprocess.PIPE, text=True
    )
    from embedsearch.data import Document
    from embedsearch.index import compact_index

    n = 0
    while reader.poll() is None:
        pair = [Document(f"left-{n}", "pair left right"), Document(f"right-{n}", "pair left right")]
        add_documents("t", pair, home=home)  # one write: both or neither
        if n % 5 == 4:
            delete_documents("t", [f"left-{n - 2}", f"right-{n - 2}"], home=home)
        if n % 7 == 6:
            compact_index("t", home)
        n += 1
    result = json.loads(reader.communicate(timeout=60)[0])
    assert reader.returncode == 0 and result["bad"] == [], result
    assert result["states"] > 3 and n > 10  # the reader saw the index change many times
