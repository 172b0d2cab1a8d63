"""One contrastive training step: embed, loss of the global batch, backward; plain or with GradCache.

GradCache (Gao, Zhang, Han and Callan, "Scaling Deep Contrastive Learning Batch Size under Memory Limited
Setup", 2021): embed the batch in chunks without a graph, compute the loss and its gradients with respect to
the embeddings, then re-embed each chunk with a graph and backpropagate those gradients. Memory then grows
with the chunk, not the batch, and the parameter gradients are those of the whole batch. Each chunk's RNG
state is replayed in its second pass, so dropout draws the same masks twice and the result stays exact.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from embedsearch.train.distributed import Cluster, average_gradients, gather_with_grad
from embedsearch.train.random_state import rng_state, set_rng_state
from embedsearch.train.text.batches import StepBatch
from embedsearch.train.text.loss import InfoNCELoss

Embed = Callable[[list[str]], torch.Tensor]
"""Texts in, float ``(n, d)`` embeddings out, with a graph when gradients are enabled."""


def contrastive_step(
    embed: Embed,
    batch: StepBatch,
    loss_fn: InfoNCELoss,
    parameters: Sequence[torch.nn.Parameter],
    cluster: Cluster | None = None,
    cache_chunk: int | None = None,
) -> float:
    """Accumulate into ``parameters``' ``.grad`` the gradient of the global batch's loss (averaged over the
    processes) and return that loss. ``cache_chunk`` set: GradCache with chunks of that many texts."""
    cluster = cluster or Cluster()
    if cache_chunk:
        loss = _cached_backward(embed, batch, loss_fn, cluster, cache_chunk)
    else:
        reps = torch.cat([embed(texts) for texts in text_chunks(batch, None)])
        loss = batch_loss(reps, batch, loss_fn, cluster)
        loss.backward()
    average_gradients(list(parameters), cluster)
    return float(loss.detach())


def text_chunks(batch: StepBatch, size: int | None) -> list[list[str]]:
    """``batch.texts`` in forward passes: anchors, positives and negatives apart (short queries are then not
    padded to the length of documents), each cut into chunks of at most ``size`` texts (``None``: whole)."""
    b = batch.local_pairs
    chunks = []
    for segment in (batch.texts[:b], batch.texts[b : 2 * b], batch.texts[2 * b :]):
        step = size or max(len(segment), 1)
        chunks += [segment[i : i + step] for i in range(0, len(segment), step)]
    return chunks


def batch_loss(reps: torch.Tensor, batch: StepBatch, loss_fn: InfoNCELoss, cluster: Cluster) -> torch.Tensor:
    """The loss of the global batch from this process's embeddings ``reps`` (``(len(batch.texts), d)``)."""
    b = batch.local_pairs
    anchors, positives, present = reps[:b], reps[b : 2 * b], reps[2 * b :]
    candidates = gather_with_grad(positives, cluster)
    if batch.slots:
        slots = reps.new_zeros(batch.slots, reps.shape[1]).index_copy(0, batch.filled.to(reps.device), present)
        candidates = torch.cat([candidates, gather_with_grad(slots, cluster)])
    device = reps.device
    return loss_fn(gather_with_grad(anchors, cluster), candidates, batch.labels.to(device), batch.mask.to(device))


def _cached_backward(embed: Embed, batch: StepBatch, loss_fn: InfoNCELoss, cluster: Cluster, chunk: int):
    chunks = text_chunks(batch, chunk)
    states, parts = [], []
    with torch.no_grad():
        for texts in chunks:
            states.append(rng_state())
            parts.append(embed(texts))
    reps = torch.cat(parts).requires_grad_()
    loss = batch_loss(reps, batch, loss_fn, cluster)
    loss.backward()
    start = 0
    for texts, state in zip(chunks, states, strict=True):
        set_rng_state(state)
        again = embed(texts)
        again.backward(gradient=reps.grad[start : start + len(texts)])
        start += len(texts)
    return loss
