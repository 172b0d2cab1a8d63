"""Contrastive losses (one ``nn.Module`` each). CLIP's and SigLIP's image–text losses are open_clip's own
(``open_clip.loss.ClipLoss`` and ``SigLipLoss``, see :mod:`embedsearch.train.clip_trainer`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from embedsearch.train.distributed import Cluster, gather_with_grad


class InfoNCELoss(nn.Module):
    """Symmetric InfoNCE with in-batch negatives on cosine similarities.

    InfoNCE: van den Oord, Li and Vinyals, "Representation Learning with Contrastive Predictive Coding" (2018);
    in-batch negatives as in DPR (Karpukhin et al., 2020), SimCSE (Gao et al., 2021) and Contriever
    (Izacard et al., 2022); the symmetric form (anchor -> candidates and positive -> anchors) as in CLIP.

    ``forward(anchors, candidates, labels, mask=None)``:

    - ``anchors``: float ``(B, d)``, one row per pair (need not be normalised);
    - ``candidates``: float ``(M, d)``, ``M >= B``: the B positives first, then any hard negatives;
    - ``labels``: long ``(B,)``, the column of each anchor's positive (usually ``arange(B)``);
    - ``mask``: bool ``(B, M)``, True where a logit must not count as a negative (another copy or another
      positive of the anchor, an empty hard-negative slot); the label columns must be False.

    Returns the scalar mean of the anchor -> candidates cross-entropy and, if ``symmetric``, the positive ->
    anchors cross-entropy (whose mask is ``mask[:, labels].T``), over logits ``cos / temperature``.

    Example::

        loss = InfoNCELoss(temperature=0.05)(queries, documents, torch.arange(len(queries)))
    """

    def __init__(self, temperature: float = 0.05, symmetric: bool = True) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature
        self.symmetric = symmetric

    def forward(
        self, anchors: torch.Tensor, candidates: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None = None
    ) -> torch.Tensor:
        _check_shapes(anchors, candidates, labels, mask)
        anchors, candidates = F.normalize(anchors, dim=-1), F.normalize(candidates, dim=-1)
        logits = anchors @ candidates.T / self.temperature
        loss = _masked_cross_entropy(logits, labels, mask)
        if not self.symmetric:
            return loss
        positives = candidates[labels]
        backward_logits = positives @ anchors.T / self.temperature
        backward_mask = None if mask is None else mask[:, labels].T
        own = torch.arange(len(anchors), device=anchors.device)
        return (loss + _masked_cross_entropy(backward_logits, own, backward_mask)) / 2


def _masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    if mask is not None:
        logits = logits.masked_fill(mask, float("-inf"))
    return F.cross_entropy(logits, labels)


def _check_shapes(anchors, candidates, labels, mask) -> None:
    if anchors.ndim != 2 or candidates.ndim != 2 or anchors.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"anchors (B, d) and candidates (M, d) needed, got {tuple(anchors.shape)}, {tuple(candidates.shape)}"
        )
    if labels.shape != (len(anchors),) or len(candidates) < len(anchors):
        raise ValueError(
            f"labels must be (B,) = ({len(anchors)},) and M >= B, got {tuple(labels.shape)}, M={len(candidates)}"
        )
    if mask is not None and mask.shape != (len(anchors), len(candidates)):
        raise ValueError(f"mask must be (B, M) = ({len(anchors)}, {len(candidates)}), got {tuple(mask.shape)}")


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
