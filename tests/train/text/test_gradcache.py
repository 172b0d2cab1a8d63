"""GradCache gives the gradients of the plain loss: exactly without dropout, and with dropout too, because
each chunk's RNG state is replayed in its second pass. In float64: GradCache embeds other chunks (other padded
shapes) than the plain step, so the two differ by the rounding of differently blocked kernels, which only float64
makes small enough to bound on every CPU (see tests/train/float64.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedsearch.train.distributed import Cluster
from embedsearch.train.text.batches import build_step_batch
from embedsearch.train.text.gradcache import batch_loss, contrastive_step, text_chunks
from embedsearch.train.text.loss import InfoNCELoss
from embedsearch.train.text.model import TextModel
from embedsearch.train.text.pairs import Pair, positives_by_anchor
from tests.train.conftest import toy_pairs
from tests.train.float64 import ATOL, RTOL

LOSS = InfoNCELoss(temperature=0.05)


@pytest.fixture(scope="module")
def model(tiny_model):
    model = TextModel(str(tiny_model))
    model.st.double()
    return model


def _batch():
    pairs = [Pair(p["anchor"], p["positive"]) for p in toy_pairs()[:6]]
    pairs = [Pair(p.anchor, p.positive, ("cat violet",) if i % 2 else ()) for i, p in enumerate(pairs)]
    rng = np.random.default_rng(0)
    return build_step_batch(
        pairs, mode=None, per_pair=1, related=positives_by_anchor(pairs), rng=rng, cluster=Cluster()
    )


def _gradients(model: TextModel, step) -> tuple[float, list[torch.Tensor | None]]:
    for p in model.parameters():
        p.grad = None
    loss = step()
    return loss, [None if p.grad is None else p.grad.clone() for p in model.parameters()]


def _assert_same(a: list[torch.Tensor | None], b: list[torch.Tensor | None]) -> None:
    """Same gradients (the BERT pooler, unused by mean pooling, has none in both)."""
    assert [x is None for x in a] == [y is None for y in b]
    assert sum(x is not None for x in a) > 20
    for x, y in zip(a, b, strict=True):
        if x is not None:
            assert x.dtype == y.dtype == torch.float64
            torch.testing.assert_close(x, y, rtol=RTOL, atol=ATOL)


def test_anchors_positives_and_negatives_are_embedded_apart_in_chunks():
    batch = _batch()
    assert [len(c) for c in text_chunks(batch, None)] == [6, 6, 3]
    assert [len(c) for c in text_chunks(batch, 4)] == [4, 2, 4, 2, 3]
    assert [t for c in text_chunks(batch, 4) for t in c] == batch.texts


@pytest.mark.parametrize("chunk", [1, 4])
def test_gradcache_equals_the_plain_step_without_dropout(model, chunk):
    batch, params = _batch(), model.parameters()
    model.st.eval()
    try:
        plain = _gradients(model, lambda: contrastive_step(model.embed, batch, LOSS, params))
        cached = _gradients(model, lambda: contrastive_step(model.embed, batch, LOSS, params, cache_chunk=chunk))
    finally:
        model.st.train()
    assert cached[0] == pytest.approx(plain[0], rel=RTOL, abs=ATOL)
    assert any(g is not None and g.abs().sum() > 0 for g in plain[1])
    _assert_same(cached[1], plain[1])


def test_gradcache_replays_dropout(model):
    """With dropout on, GradCache equals a plain step that embeds the same chunks with the same RNG."""
    batch, params, chunk = _batch(), model.parameters(), 4
    assert model.st.training

    def chunked_reference() -> float:
        parts = [model.embed(texts) for texts in text_chunks(batch, chunk)]
        loss = batch_loss(torch.cat(parts), batch, LOSS, Cluster())
        loss.backward()
        return loss.item()

    torch.manual_seed(5)
    reference = _gradients(model, chunked_reference)
    torch.manual_seed(5)
    cached = _gradients(model, lambda: contrastive_step(model.embed, batch, LOSS, params, cache_chunk=chunk))
    torch.manual_seed(6)
    other_masks = _gradients(model, chunked_reference)
    assert cached[0] == pytest.approx(reference[0], rel=RTOL, abs=ATOL)
    _assert_same(cached[1], reference[1])
    # dropout is really on: other masks move the loss by far more than the rounding the test above allows
    assert other_masks[0] != pytest.approx(reference[0], rel=1e3 * RTOL)
