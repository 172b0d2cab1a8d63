"""``train_text`` end to end with a tiny BERT: it learns, it is reproducible, a resumed run equals an
uninterrupted one, its output is a model directory the rest of embedsearch loads, and bad input fails early
with nothing written."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from embedsearch.encoders import get_encoder
from embedsearch.errors import InvalidInputError, OutputExistsError, TrainingError, UnknownEncoderError
from embedsearch.train import TextTrainConfig, train_text
from embedsearch.train.text.data import load_training_data
from embedsearch.train.text.devset import evaluate_dev
from embedsearch.train.text.model import TextModel
from tests.train.conftest import toy_pairs, write_jsonl
from tests.train.interrupt import Interrupt, StepRecorder, stop_at

FAST = {"batch_size": 16, "lr": 1e-3, "quiet": True, "dev_fraction": 0.2}


def weights(directory: Path) -> dict[str, torch.Tensor]:
    return load_file(directory / "model.safetensors")


@pytest.fixture(scope="module")
def toy_file(tmp_path_factory) -> Path:
    return write_jsonl(tmp_path_factory.mktemp("toy") / "pairs.jsonl", toy_pairs())


@pytest.fixture(scope="module")
def trained(tiny_model, toy_file, tmp_path_factory):
    """40 steps on the toy pairs, evaluated every 20."""
    config = TextTrainConfig(
        data=toy_file,
        out=tmp_path_factory.mktemp("run") / "model",
        base=str(tiny_model),
        max_steps=40,
        eval_every=20,
        **FAST,
    )
    return config, train_text(config)


def test_training_lowers_the_loss_and_raises_dev_ndcg(trained):
    _, result = trained
    losses = result.card["losses"]
    assert len(losses) == result.steps == 40
    # claims about learning, not tolerances on rounding: they hold with wide margins (here the loss falls to 26%
    # of its start and nDCG@10 goes from 0.03 to 0.98), which the CPU's rounding of 40 steps does not approach
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:5])
    ndcg = {e["step"]: e["metrics"]["ndcg@10"] for e in result.evaluations}
    assert list(ndcg) == [0, 20, 40]
    assert ndcg[0] < 0.3 and max(ndcg.values()) > ndcg[0] + 0.4
    assert result.best_metrics["ndcg@10"] == max(ndcg.values()) and result.best_step == max(ndcg, key=ndcg.get)


def test_the_output_holds_the_best_checkpoint_and_its_card(trained):
    config, result = trained
    out = config.out
    assert {"modules.json", "model.safetensors", "training_card.json", "training_curves.png"} <= {
        p.name for p in out.iterdir()
    }
    assert not out.with_name("model.tmp-train").exists()
    assert (out / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    card = json.loads((out / "training_card.json").read_text())
    data_hash = hashlib.sha256(config.data.read_bytes()).hexdigest()
    assert card["data"]["files"] == {str(config.data): data_hash}
    assert card["data"]["train_pairs"] + card["data"]["held_out_for_dev"] == 120
    assert card["settings"]["temperature"] == 0.05 and card["settings"]["batch_size"] == 16
    assert card["best"]["step"] == result.best_step and len(card["evaluations"]) == 3
    assert card["samples_per_second"] > 0 and card["wall_seconds"] >= card["train_seconds"] > 0
    # the very weights the run evaluated, encoded by the same code on the same threads: the same bits, the same
    # ranking, so the same metrics exactly
    dev = load_training_data(config).dev
    assert evaluate_dev(TextModel(str(out)).encode, dev) == result.best_metrics


def test_the_output_is_an_encoder_embedsearch_loads_by_path(trained):
    config, _ = trained
    encoder = get_encoder(str(config.out))
    vectors = encoder.encode_text(["cat dog", "red green"])
    # normalised in float32 (bf16 or not before): |norm - 1| is at most about dim float32 roundoffs
    atol = 32 * float(np.finfo(np.float32).eps)
    assert vectors.shape == (2, 32) and np.allclose(np.linalg.norm(vectors, axis=1), 1, rtol=0, atol=atol)


def test_seeded_runs_are_identical_and_seeds_matter(tiny_model, toy_file, tmp_path):
    config = TextTrainConfig(data=toy_file, out=tmp_path / "a", base=str(tiny_model), max_steps=4, eval_every=4, **FAST)
    runs = [train_text(config), train_text(replace(config, out=tmp_path / "b"))]
    other = train_text(replace(config, out=tmp_path / "c", seed=7))
    assert runs[0].card["losses"] == runs[1].card["losses"] != other.card["losses"]
    first, second = weights(tmp_path / "a"), weights(tmp_path / "b")
    assert all(torch.equal(first[k], second[k]) for k in first)


RESUMABLE = {
    "pairs": {},
    "crop, gradcache": {"self_supervised": "crop", "cache_chunk": 8, "dev_fraction": 0.1},
}


@pytest.mark.parametrize("settings", RESUMABLE.values(), ids=RESUMABLE.keys())
def test_a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(
    tiny_model, toy_file, beir_folder, tmp_path, settings
):
    """Exactly: the resumed run does the same float operations in the same order from a checkpoint holding
    every piece of state (weights, optimizer, schedule, RNG), so its losses, RNG states and weights are bit for
    bit those of the uninterrupted run, on any CPU and at any thread count (both runs use the same)."""
    data = beir_folder if settings.get("self_supervised") else toy_file
    config = TextTrainConfig(
        data=data,
        out=tmp_path / "whole",
        base=str(tiny_model),
        max_steps=7,
        eval_every=3,
        save_every=2,
        **{**FAST, **settings},
    )
    whole_steps = StepRecorder()
    whole = train_text(config, on_step=whole_steps)
    broken = replace(config, out=tmp_path / "resumed")
    with pytest.raises(Interrupt):
        train_text(broken, on_step=stop_at(5))  # the last checkpoint is at step 4
    assert not broken.out.exists() and (tmp_path / "resumed.tmp-train" / "checkpoint.pt").is_file()
    resumed_steps = StepRecorder()
    resumed = train_text(replace(broken, resume=True), on_step=resumed_steps)
    assert list(resumed_steps.steps) == [5, 6, 7] and resumed_steps.steps == whole_steps.after(4)
    assert resumed.card["losses"] == whole.card["losses"]
    assert [e["step"] for e in resumed.evaluations] == [e["step"] for e in whole.evaluations] == [0, 3, 6, 7]
    expected, got = weights(config.out), weights(broken.out)
    assert expected.keys() == got.keys() and all(torch.equal(got[k], expected[k]) for k in expected)
    assert not (tmp_path / "resumed.tmp-train").exists()


def test_an_interrupted_run_must_be_resumed_or_overwritten(tiny_model, pairs_file, tmp_path):
    config = TextTrainConfig(
        data=pairs_file, out=tmp_path / "m", base=str(tiny_model), max_steps=3, save_every=1, **FAST
    )
    with pytest.raises(Interrupt):
        train_text(config, on_step=stop_at(2))
    with pytest.raises(
        OutputExistsError, match="holds an interrupted run; pass --resume to continue it or --overwrite"
    ):
        train_text(config)
    with pytest.raises(TrainingError, match=r"other settings \(lr 0.001 -> 0.01\)"):
        train_text(replace(config, resume=True, lr=1e-2))
    with pairs_file.open("a") as handle:
        handle.write('{"anchor": "one more", "positive": "pair"}\n')
    with pytest.raises(TrainingError, match="the training data changed since the checkpoint was written"):
        train_text(replace(config, resume=True))
    checkpoint = tmp_path / "m.tmp-train" / "checkpoint.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    with pytest.raises(TrainingError, match="cannot read checkpoint"):
        train_text(replace(config, resume=True))
    assert checkpoint.exists()  # a failed resume keeps what there is
    assert train_text(replace(config, overwrite=True)).steps == 3


def test_hard_negatives_mined_from_an_index_of_a_beir_folder(tiny_model, beir_folder, tmp_path):
    from embedsearch.data import read_documents
    from embedsearch.index import build_index
    from embedsearch.mining import mine_hard_negatives

    home = tmp_path / "indexes"
    build_index("toy", read_documents([beir_folder / "corpus.jsonl"]).documents, "fake", home=home)
    negatives = mine_hard_negatives(
        "toy", beir_folder, tmp_path / "negatives.jsonl", home=home, ranks=(1, 10), margin=-2
    )
    assert negatives.negatives > 100  # the fake encoder knows no colours: a margin below 0 keeps its candidates
    config = TextTrainConfig(
        data=beir_folder, negatives=negatives.out, out=tmp_path / "m", base=str(tiny_model), max_steps=2, **FAST
    )
    data = train_text(config).card["data"]
    assert data["kind"] == "beir" and data["pairs_with_negatives"] == data["train_pairs"] == 80
    inputs = [beir_folder / n for n in ("corpus.jsonl", "queries.jsonl", "qrels/train.tsv")] + [negatives.out]
    assert set(data["files"]) == {str(p) for p in inputs}


def test_dropout_views_on_a_raw_corpus_without_a_dev_set(tiny_model, animals_file, tmp_path):
    config = TextTrainConfig(
        data=animals_file,
        out=tmp_path / "m",
        base=str(tiny_model),
        self_supervised="dropout",
        max_length=16,
        batch_size=4,
        max_steps=2,
        dev_fraction=0,
        quiet=True,
    )
    result = train_text(config)
    assert (result.steps, result.best_step, result.evaluations) == (2, 2, [])
    assert result.card["data"]["kind"] == "dropout"
    # trained with texts cut to 16 tokens, the model keeps the base's 32 for encoding
    assert TextModel(str(config.out)).st.max_seq_length == 32


def test_overwrite_replaces_a_trained_model_and_never_other_files(tiny_model, toy_file, tmp_path):
    out = tmp_path / "m"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    config = TextTrainConfig(data=toy_file, out=out, base=str(tiny_model), max_steps=1, **FAST)
    with pytest.raises(OutputExistsError, match=f"{out} already exists; pass --overwrite"):
        train_text(config)
    with pytest.raises(OutputExistsError, match=f"{out} holds files and is not a model embedsearch trained"):
        train_text(replace(config, overwrite=True))
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # refused before any work: no work folder
    (out / "keep.txt").unlink()  # an empty folder may be replaced
    first = train_text(replace(config, overwrite=True))
    second = train_text(replace(config, overwrite=True, seed=7))  # and so may a model a trainer wrote
    assert (out / "model.safetensors").is_file() and first.card["losses"] != second.card["losses"]
    assert json.loads((out / "training_card.json").read_text())["settings"]["seed"] == 7


def test_too_few_pairs_for_one_batch(tiny_model, tmp_path):
    data = write_jsonl(tmp_path / "pairs.jsonl", toy_pairs()[:20])
    config = TextTrainConfig(data=data, out=tmp_path / "m", base=str(tiny_model), batch_size=32, quiet=True)
    with pytest.raises(
        InvalidInputError, match=r"too few training examples for one batch: 18 \(after holding out 2 for dev\)"
    ):
        train_text(config)
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.tmp-train").exists()


def test_a_base_model_that_cannot_be_loaded(toy_file, tmp_path):
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "modules.json").write_text("not json")
    for base, message in [
        (str(broken), "cannot load base model"),
        ("no-such-model", "unknown encoder 'no-such-model'"),
        (str(tmp_path), "not a sentence-transformers model"),
    ]:
        with pytest.raises(UnknownEncoderError, match=message):
            train_text(TextTrainConfig(data=toy_file, out=tmp_path / "m", base=base, quiet=True))
    assert not (tmp_path / "m").exists() and not (tmp_path / "m.tmp-train").exists()


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(tiny_model, toy_file, tmp_path):
    config = TextTrainConfig(data=toy_file, out=tmp_path / "m", base=str(tiny_model), max_steps=4, save_every=2, **FAST)
    with pytest.raises(Interrupt):
        train_text(config, on_step=stop_at(1))
    assert list(tmp_path.iterdir()) == []


def test_nothing_to_resume(toy_file, tmp_path):
    with pytest.raises(InvalidInputError, match="nothing to resume: no checkpoint in"):
        train_text(TextTrainConfig(data=toy_file, out=tmp_path / "m", resume=True))
