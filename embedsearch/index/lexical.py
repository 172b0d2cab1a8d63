"""The lexical side of an index: BM25 over the same chunks as the dense side, in SQLite FTS5.

It lives in the document store (a table ``lexical`` whose rowid is the chunk id), so it is written in the same
transaction as the rows, segments and tombstones of every write and a crash leaves both sides at one committed
state; a deleted or replaced document's chunks leave it in that transaction (no tombstones needed here). Ranking
is FTS5's ``bm25()`` (k1 = 1.2, b = 0.75), a maintained engine rather than scoring of our own.

Text is analysed here, not by an FTS5 tokenizer, so that stemming and stopwords are configurable: lowercase,
words of two or more word characters (the pattern of scikit-learn's CountVectorizer, as bm25s uses), stopwords
removed, Snowball stemming (PyStemmer). FTS5 stores and matches the analysed words. The settings are part of the
index's manifest; queries are analysed with the same settings.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from embedsearch.errors import InvalidInputError

# Lucene's EnglishAnalyzer default stop set (bm25s uses the same 33 words)
ENGLISH_STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their then there these "
    "they this to was will with".split()
)
STOPWORD_SETS = {"english": ENGLISH_STOPWORDS, "none": frozenset()}
TOKEN_PATTERN = r"(?u)\b\w\w+\b"
STEM_CACHE = 100_000  # words whose stems a highlighter remembers
MAX_QUERY_TERMS = 64  # distinct analysed terms of one query that are matched (bounds the work of one request)
# the words are analysed already: the tokenizer only splits them apart again (keeping "_" inside a word)
TABLE_SQL = (
    "CREATE VIRTUAL TABLE lexical USING fts5(terms, tokenize = \"unicode61 remove_diacritics 0 tokenchars '_'\")"
)


@dataclass(frozen=True)
class LexicalSettings:
    """How text is analysed for the lexical side: ``stemmer`` a Snowball language (``"english"``, ``"french"``,
    ... as PyStemmer names them) or ``"none"``; ``stopwords`` ``"english"``, ``"none"``, or a tuple of words;
    ``tokens`` the regular expression of a word (default: two or more word characters)."""

    stemmer: str = "english"
    stopwords: str | tuple[str, ...] = "english"
    tokens: str = TOKEN_PATTERN

    def to_dict(self) -> dict[str, Any]:
        words = self.stopwords if isinstance(self.stopwords, str) else list(self.stopwords)
        return {
            "engine": "sqlite-fts5",
            "ranking": "bm25",
            "stemmer": self.stemmer,
            "stopwords": words,
            "tokens": self.tokens,
        }

    @classmethod
    def from_dict(cls, settings: dict[str, Any]) -> LexicalSettings:
        words = settings.get("stopwords", "english")
        words = words if isinstance(words, str) else tuple(words)
        return cls(settings.get("stemmer", "english"), words, settings.get("tokens", TOKEN_PATTERN))

    def checked(self) -> LexicalSettings:
        """These settings, or :class:`InvalidInputError` naming what is wrong (an unknown stemmer or stopword set)."""
        Analyzer(self)
        return self


class Analyzer:
    """Turns text into the words the lexical side stores and matches."""

    def __init__(self, settings: LexicalSettings) -> None:
        self.settings = settings
        self._split = _token_pattern(settings.tokens).findall
        self._stopwords = _stopwords(settings.stopwords)
        self._stem = _stemmer(settings.stemmer)
        self._stems: dict[str, str] = {}  # lowercase word -> its stem, for highlighting (bounded)

    def words(self, text: str) -> list[str]:
        """The analysed words of ``text``, in order (a word may repeat)."""
        kept = [w for w in self._split(text.lower()) if w not in self._stopwords]
        return self._stem(kept) if kept else []

    def terms(self, text: str) -> list[str]:
        """The distinct analysed words of a query, in first-seen order, at most :data:`MAX_QUERY_TERMS`."""
        return list(dict.fromkeys(self.words(text)))[:MAX_QUERY_TERMS]

    def matching_words(self, text: str, terms: Iterable[str]) -> list[str]:
        """The words of ``text`` (as written) whose analysed form is one of ``terms``: what a page highlights."""
        wanted = set(terms)
        words = [w for w in dict.fromkeys(self._split(text)) if w.lower() not in self._stopwords]
        stems, lowered = self._stems, {w.lower() for w in words}
        if len(stems) + len(lowered) > STEM_CACHE:
            stems.clear()
        fresh = [w for w in lowered if w not in stems]
        stems.update(zip(fresh, self._stem(fresh) if fresh else [], strict=True))
        return [word for word in words if stems.get(word.lower()) in wanted]


def _token_pattern(pattern: str) -> re.Pattern:
    try:
        compiled = re.compile(pattern)
    except (re.error, TypeError) as err:
        raise InvalidInputError(f"invalid token pattern {pattern!r}: {err}") from None
    if compiled.groups:
        raise InvalidInputError(f"the token pattern {pattern!r} has groups; use (?:...) for grouping")
    return compiled


def _stopwords(stopwords: str | Sequence[str]) -> frozenset[str]:
    if isinstance(stopwords, str):
        if stopwords not in STOPWORD_SETS:
            raise InvalidInputError(f"unknown stopword set {stopwords!r}; known: {', '.join(sorted(STOPWORD_SETS))}")
        return STOPWORD_SETS[stopwords]
    return frozenset(w.lower() for w in stopwords)


def _stemmer(language: str):
    if language == "none":
        return lambda words: words
    import Stemmer

    try:
        return Stemmer.Stemmer(language).stemWords
    except KeyError:
        known = ", ".join(sorted(Stemmer.algorithms()))
        raise InvalidInputError(f"unknown stemmer {language!r}; known: none, {known}") from None


class LexicalTable:
    """The ``lexical`` FTS5 table of one store connection (the caller owns the transaction)."""

    def __init__(self, db: sqlite3.Connection, analyzer: Analyzer) -> None:
        self._db = db
        self.analyzer = analyzer

    @staticmethod
    def create(db: sqlite3.Connection) -> None:
        db.execute(TABLE_SQL)

    def add(self, rows: Iterable[tuple[int, str]]) -> None:
        """Index ``(chunk_id, chunk text)`` rows."""
        self._db.executemany(
            "INSERT INTO lexical (rowid, terms) VALUES (?, ?)",
            ((chunk_id, " ".join(self.analyzer.words(text))) for chunk_id, text in rows),
        )

    def remove(self, chunk_ids: np.ndarray) -> None:
        ids = chunk_ids.tolist()
        for start in range(0, len(ids), 900):
            part = ids[start : start + 900]
            self._db.execute(f"DELETE FROM lexical WHERE rowid IN ({','.join('?' * len(part))})", part)

    def search(self, terms: Sequence[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``limit`` best chunks for ``terms`` (any of them): ``(scores, chunk ids)``, BM25 descending."""
        if not terms:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        sql = "SELECT rowid, bm25(lexical) FROM lexical WHERE lexical MATCH ? ORDER BY bm25(lexical), rowid LIMIT ?"
        rows = self._db.execute(sql, (match_expression(terms), int(limit))).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        found = np.array(rows, dtype=np.float64)
        return (-found[:, 1]).astype(np.float32), found[:, 0].astype(np.int64)

    def count_matches(self, terms: Sequence[str]) -> int:
        if not terms:
            return 0
        sql = "SELECT COUNT(*) FROM lexical WHERE lexical MATCH ?"
        return int(self._db.execute(sql, (match_expression(terms),)).fetchone()[0])


def match_expression(terms: Sequence[str]) -> str:
    """An FTS5 query that matches any of ``terms``, each quoted as a string (no FTS5 syntax gets through)."""
    return " OR ".join('"' + term.replace('"', '""') + '"' for term in terms)


def settings_of(manifest: dict[str, Any]) -> LexicalSettings | None:
    """The lexical settings an index's manifest records, or ``None`` for an index without a lexical side (an
    image index, or one built before the lexical side existed)."""
    lexical = manifest.get("lexical")
    return LexicalSettings.from_dict(lexical) if lexical else None
