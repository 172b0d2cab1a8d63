"""Golden files are rewritten only when ``EMBEDSEARCH_REGEN_GOLDEN`` is exactly ``1``: any other value, ``0``
included, compares against the saved copy and leaves it as it was."""

from __future__ import annotations

import pytest

from tests.cli.golden_help import REGEN_VARIABLE, assert_help_matches, saved_copy

STALE = "an out-of-date copy\n"


@pytest.fixture
def stale_help(tmp_path):
    """A golden directory whose copy of ``embedsearch demo --help`` is out of date."""
    (tmp_path / "embedsearch_demo.txt").write_text(STALE, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize("value", ["0", "", "false", "no", "true", "yes", "01", " 1", "1 "])
def test_any_value_but_1_compares_and_keeps_the_copy(monkeypatch, stale_help, value):
    monkeypatch.setenv(REGEN_VARIABLE, value)
    with pytest.raises(AssertionError, match="embedsearch_demo.txt differs"):
        assert_help_matches(["demo"], stale_help)
    assert (stale_help / "embedsearch_demo.txt").read_text(encoding="utf-8") == STALE
    assert saved_copy(stale_help / "embedsearch_demo.txt", "new\n") == STALE


def test_unset_compares_and_keeps_the_copy(monkeypatch, stale_help):
    monkeypatch.delenv(REGEN_VARIABLE, raising=False)
    with pytest.raises(AssertionError, match="differs"):
        assert_help_matches(["demo"], stale_help)
    assert (stale_help / "embedsearch_demo.txt").read_text(encoding="utf-8") == STALE


def test_1_rewrites_the_copy(monkeypatch, stale_help):
    monkeypatch.setenv(REGEN_VARIABLE, "1")
    assert_help_matches(["demo"], stale_help)
    rewritten = (stale_help / "embedsearch_demo.txt").read_text(encoding="utf-8")
    assert rewritten.startswith("Usage: embedsearch demo") and rewritten != STALE
    assert saved_copy(stale_help / "new" / "copy.json", "{}\n") == "{}\n"  # a missing folder is made
