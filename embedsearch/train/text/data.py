"""Everything a run reads, decided once: the training pairs, the dev set, a fingerprint of the inputs, and the
records ``skip_invalid`` left out (each logged as a warning, ``skipped file:line: reason``)."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path

from embedsearch.data import Document
from embedsearch.train.text.config import TextTrainConfig
from embedsearch.train.text.devset import DevSet, build_dev_set, split_by_anchor, split_documents
from embedsearch.train.text.pairs import BeirData, Pair, attach_negatives, read_beir_pairs, read_corpus, read_pairs

log = logging.getLogger("embedsearch")


@dataclass
class TrainingData:
    """``kind`` is ``pairs``, ``beir``, ``crop`` or ``dropout``; ``files`` maps each input file to its sha256
    and ``fingerprint`` is the sha256 over all of them."""

    kind: str
    pairs: list[Pair]
    dev: DevSet | None
    files: dict[str, str] = field(default_factory=dict)
    fingerprint: str = ""
    held_out: int = 0
    skipped: list[str] = field(default_factory=list)

    def describe(self) -> dict:
        dev = self.dev
        return {
            "kind": self.kind,
            "fingerprint": self.fingerprint,
            "files": self.files,
            "train_pairs": len(self.pairs),
            "pairs_with_negatives": sum(1 for p in self.pairs if p.negatives),
            "held_out_for_dev": self.held_out,
            "dev_queries": len(dev.queries) if dev else 0,
            "dev_corpus": len(dev.corpus) if dev else 0,
            "skipped_records": self.skipped,
        }


class _Inputs:
    """Reads a run's input files, keeping every record that ``skip_invalid`` left out."""

    def __init__(self, skip_invalid: bool) -> None:
        self.skip_invalid = skip_invalid
        self.skipped: list[str] = []

    def pairs(self, path: Path) -> list[Pair]:
        report = read_pairs(path, self.skip_invalid)
        self.skipped += report.skipped
        return report.pairs

    def beir(self, folder: Path, split: str) -> BeirData:
        beir = read_beir_pairs(folder, split, skip_invalid=self.skip_invalid)
        self.skipped += beir.skipped
        return beir

    def corpus(self, source: Path) -> list[Document]:
        report = read_corpus(source, self.skip_invalid)
        self.skipped += report.problems
        return report.documents


def load_training_data(config: TextTrainConfig) -> TrainingData:
    """Read the inputs ``config`` names. Raises :class:`SourceError` / :class:`InvalidInputError` for bad ones
    (for no bad record with ``config.skip_invalid``: those are left out, logged and listed in ``skipped``)."""
    inputs = _Inputs(config.skip_invalid)
    if config.self_supervised:
        data, files = _self_supervised(config, inputs)
    else:
        data, files = _supervised(config, inputs)
    if config.dev is not None:
        dev_pairs, pool, dev_files = _dev_file(config.dev, config.dev_split, inputs)
        data.dev = build_dev_set(dev_pairs, pool + _texts_of(data.pairs), config.dev_corpus_size, config.seed)
        files += dev_files
    if config.limit:
        data.pairs = data.pairs[: config.limit]
    data.files = {str(path): _sha256(path) for path in files}
    data.fingerprint = hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in data.files.items()).encode()).hexdigest()
    data.skipped = inputs.skipped
    for problem in data.skipped:
        log.warning("skipped %s", problem)
    return data


def _supervised(config: TextTrainConfig, inputs: _Inputs) -> tuple[TrainingData, list[Path]]:
    if config.data.is_dir():
        beir = inputs.beir(config.data, config.split)
        kind, pairs, pool, files = "beir", beir.pairs, [d.text for d in beir.corpus], beir.files
    else:
        pairs = inputs.pairs(config.data)
        kind, pool, files = "pairs", _texts_of(pairs), [config.data]
    if config.negatives is not None:
        pairs = attach_negatives(pairs, inputs.pairs(config.negatives), config.negatives)
        files = [*files, config.negatives]
    split = config.dev is None and config.dev_fraction > 0
    train, dev = split_by_anchor(pairs, config.dev_fraction, config.seed) if split else (pairs, [])
    dev_set = build_dev_set(dev, pool, config.dev_corpus_size, config.seed) if dev else None
    return TrainingData(kind, train, dev_set, held_out=len(dev)), files


def _self_supervised(config: TextTrainConfig, inputs: _Inputs) -> tuple[TrainingData, list[Path]]:
    documents = inputs.corpus(config.data)
    split = config.dev is None and config.dev_fraction > 0 and len(documents) > 1
    train, dev = (
        split_documents(documents, config.dev_fraction, config.seed, config.crop_ratio) if split else (documents, [])
    )
    dev_set = build_dev_set(dev, [d.text for d in documents], config.dev_corpus_size, config.seed) if dev else None
    pairs = [Pair(d.text, d.text) for d in train]
    return TrainingData(config.self_supervised or "", pairs, dev_set, held_out=len(dev)), _corpus_files(config.data)


def _dev_file(path: Path, split: str, inputs: _Inputs) -> tuple[list[Pair], list[str], list[Path]]:
    """Dev pairs from ``--dev``: a BEIR folder (its ``split`` qrels) or a pairs file; and their corpus texts."""
    if path.is_dir():
        beir = inputs.beir(path, split)
        return beir.pairs, [d.text for d in beir.corpus], beir.files
    pairs = inputs.pairs(path)
    return pairs, _texts_of(pairs), [path]


def _texts_of(pairs: list[Pair]) -> list[str]:
    """Every document text of the pairs (positives and negatives), each once, in order."""
    return list(dict.fromkeys(t for p in pairs for t in (p.positive, *p.negatives)))


def _corpus_files(source: Path) -> list[Path]:
    if source.is_dir() and (source / "corpus.jsonl").is_file():
        return [source / "corpus.jsonl"]
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in (".txt", ".md"))
    return [source]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
