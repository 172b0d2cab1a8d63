"""SimCLR's loss: NT-Xent over two augmented views of every image of the global batch (:class:`NTXentLoss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedsearch.train.distributed import Cluster, gather_with_grad


class NTXentLoss(nn.Module):
    """NT-Xent, the normalised temperature-scaled cross-entropy of SimCLR (Chen, Kornblith, Norouzi and Hinton,
    "A Simple Framework for Contrastive Learning of Visual Representations", 2020).

    ``forward(first, second)``: float ``(n, d)`` each, row ``i`` of both being two augmented views of one image
    (this process's share of the batch; need not be normalised). Under several processes both are gathered
    with their gradients (:func:`embedsearch.train.distributed.gather_with_grad`), so each process computes
    the loss of the whole global batch of ``N`` images: over the ``2N`` views, each view's positive is its
    other view and its negatives are the other ``2N - 2`` views (never itself). Returns the scalar mean
    cross-entropy over the ``2N`` views of logits ``cos / temperature``.

    Example::

        loss = NTXentLoss(temperature=0.1)(head(encoder(view_a)), head(encoder(view_b)))
    """

    def __init__(self, temperature: float = 0.1, cluster: Cluster | None = None) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.cluster = cluster or Cluster()

    def forward(self, first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
        if first.ndim != 2 or first.shape != second.shape:
            raise ValueError(f"two (n, d) views needed, got {tuple(first.shape)} and {tuple(second.shape)}")
        first = gather_with_grad(F.normalize(first, dim=-1), self.cluster)
        second = gather_with_grad(F.normalize(second, dim=-1), self.cluster)
        views = torch.cat([first, second])
        logits = views @ views.T / self.temperature
        itself = torch.eye(len(views), dtype=torch.bool, device=views.device)
        logits = logits.masked_fill(itself, float("-inf"))
        n = len(first)
        targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(views.device)
        return F.cross_entropy(logits, targets)
