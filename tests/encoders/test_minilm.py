"""The real all-MiniLM-L6-v2 encoder (slow: loads the model once for the session)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

GOLDEN = Path(__file__).parent / "golden" / "minilm.json"
SENTENCES = ["A man is eating food.", "Semantic search finds documents by meaning.", "Le chat dort."]
pytestmark = pytest.mark.slow


def test_minilm_matches_golden_embeddings(minilm):
    vectors = minilm.encode_text(SENTENCES)
    assert vectors.dtype == np.float32 and vectors.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    head = vectors[:, :8].round(5).tolist()
    if os.environ.get("EMBEDSEARCH_REGEN_GOLDEN"):
        GOLDEN.write_text(json.dumps({"sentences": SENTENCES, "first_8_dims": head}, indent=1))
    golden = json.loads(GOLDEN.read_text())
    # bf16 on CPUs that support it moves values by ~1e-3; fp32 reproduces them to 1e-5
    np.testing.assert_allclose(head, golden["first_8_dims"], atol=5e-3)


def test_batched_encoding_equals_one_by_one(minilm):
    texts = SENTENCES + ["short", "a much longer sentence " * 20]
    batched = minilm.encode_text(texts, batch_size=4)
    single = np.concatenate([minilm.encode_text([t]) for t in texts])
    np.testing.assert_allclose(batched, single, atol=2e-3)


def test_chunks_fit_the_model_window(minilm):
    spans = minilm.token_spans_batch(["word " * 1000])[0]
    assert minilm.max_tokens == 254 and len(spans) == 1000
