"""The losses of ``train clip``: open_clip's ``ClipLoss`` and ``SigLipLoss`` as they are, and
:class:`SoftClipLoss`, CLIP's symmetric InfoNCE with soft targets, for two additions that only matter when
data is small:

* **mixup** (Zhang et al., "mixup: Beyond Empirical Risk Minimization", 2018): each image of the global batch
  is blended with a partner from the same batch, ``lam * x + (1 - lam) * x_partner``, ``lam ~ Beta(a, a)``, and
  its targets are blended in the same proportions (its caption ``lam``, the partner's ``1 - lam``, in both
  directions of the loss). It makes the image tower smooth between training images instead of memorising each.
* **every training caption as a negative** (with a frozen text tower, whose caption features are computed
  once): image->text is scored against all the training captions, not only the batch's, as retrieval is
  scored; text->image stays in-batch.

With no mixing (``lam = 1``) and the batch's captions as the only negatives, :class:`SoftClipLoss` is
``ClipLoss`` (tested). Under DDP every process gathers the image features (and the text features, when they
are computed in the step) with their gradients and computes the loss of the whole global batch, as
``ClipLoss(local_loss=False, gather_with_grad=True)`` does; the mixing plan depends only on the run seed, the
step and the global batch, so any number of processes mixes the same images.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from open_clip.loss import ClipLoss, SigLipLoss
from torch import nn

from embedsearch.train.distributed import Cluster
from embedsearch.train.image.augment import sample_seeds

MIX_STREAM = 7  # the per-sample seed stream of the mixing plan (augmentation uses stream 0)


def clip_loss(kind: str, cluster: Cluster, *, soft: bool = False) -> nn.Module:
    """open_clip's ``ClipLoss`` (every process computes the global batch's loss from features gathered with
    their gradients), ``SigLipLoss`` (features exchanged between neighbouring processes), or with ``soft``
    (mixup or all captions as negatives; CLIP only) :class:`SoftClipLoss`."""
    if kind == "siglip":
        return SigLipLoss(rank=cluster.rank, world_size=cluster.world)
    if soft:
        return SoftClipLoss(cluster)
    return QuietClipLoss(local_loss=False, gather_with_grad=True, rank=cluster.rank, world_size=cluster.world)


class QuietClipLoss(ClipLoss):
    """open_clip's ``ClipLoss``, without the FutureWarning torch 2.14 gives for the
    ``torch.distributed.nn.all_gather`` it gathers with (the arithmetic is unchanged)."""

    def forward(self, *args, **kwargs):
        with _quiet_gather():
            return super().forward(*args, **kwargs)


@dataclass(frozen=True)
class MixPlan:
    """How a global batch of ``n`` is mixed: image ``i`` becomes ``lam[i] * x[i] + (1 - lam[i]) *
    x[partner[i]]`` (partner may be ``i`` itself: no change)."""

    partner: torch.Tensor  # long (n,)
    lam: torch.Tensor  # float32 (n,)

    @classmethod
    def identity(cls, n: int) -> MixPlan:
        return cls(torch.arange(n), torch.ones(n))

    @classmethod
    def draw(cls, alpha: float, seed: int, step: int, n: int) -> MixPlan:
        """The plan of global batch ``step``: every sample draws its partner and ``lam ~ Beta(alpha, alpha)``
        from its own seed. ``alpha = 0`` mixes nothing."""
        if alpha <= 0:
            return cls.identity(n)
        partner, lam = [], []
        for sample_seed in sample_seeds(seed, step, n, stream=MIX_STREAM):
            rng = np.random.default_rng(sample_seed)
            partner.append(int(rng.integers(n)))
            lam.append(float(rng.beta(alpha, alpha)))
        return cls(torch.tensor(partner), torch.tensor(lam, dtype=torch.float32))

    def mix(self, images: torch.Tensor, partners: torch.Tensor, share: slice) -> torch.Tensor:
        """Blend this process's ``images`` (its ``share`` of the batch) with their ``partners``' images."""
        lam = self.lam[share].to(images.device).view(-1, *([1] * (images.dim() - 1)))
        return lam * images + (1 - lam) * partners


class SoftClipLoss(nn.Module):
    """CLIP's symmetric InfoNCE with mixup targets and, optionally, a bank of caption features as the
    image->text negatives (see the module's docstring)."""

    def __init__(self, cluster: Cluster) -> None:
        super().__init__()
        self.cluster = cluster

    def forward(
        self,
        image_features: torch.Tensor,
        text_features: torch.Tensor,
        logit_scale: torch.Tensor,
        plan: MixPlan,
        bank: torch.Tensor | None = None,
        bank_index: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``image_features`` and ``text_features``: this process's share, normalised; ``plan``: the global
        batch's. ``bank``: every training caption's features and ``bank_index`` each global sample's caption row
        in it; without a bank the batch's own captions are the image->text negatives."""
        images = self._gather(image_features)
        n = len(images)
        if bank is None:
            texts = self._gather(text_features)
            bank, index = texts, torch.arange(n, device=images.device)
        else:
            index = bank_index.to(images.device)
            texts = bank[index]
        lam, partner = plan.lam.to(images.device, images.dtype), plan.partner.to(images.device)
        rows = torch.arange(n, device=images.device)
        to_text = torch.zeros(n, len(bank), dtype=images.dtype, device=images.device)
        to_text[rows, index] += lam
        to_text[rows, index[partner]] += 1 - lam
        to_image = torch.diag(lam)
        to_image[partner, rows] += 1 - lam  # text i is (1 - lam[j]) of image j when i is j's partner
        to_image = to_image / to_image.sum(1, keepdim=True).clamp_min(1e-12)
        image_to_text = F.cross_entropy(logit_scale * images @ bank.T, to_text)
        text_to_image = F.cross_entropy(logit_scale * texts @ images.T, to_image)
        return (image_to_text + text_to_image) / 2

    def _gather(self, features: torch.Tensor) -> torch.Tensor:
        if self.cluster.world == 1:
            return features
        import torch.distributed.nn

        with _quiet_gather():
            return torch.cat(torch.distributed.nn.all_gather(features), dim=0)


@contextlib.contextmanager
def _quiet_gather():
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.distributed\.nn\.functional\.all_gather")
        yield
