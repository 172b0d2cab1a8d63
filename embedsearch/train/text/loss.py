"""The text trainer's loss: symmetric InfoNCE over in-batch and hard negatives (:class:`InfoNCELoss`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
