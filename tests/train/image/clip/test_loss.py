"""SoftClipLoss (mixup targets, every training caption as a negative) against open_clip's ClipLoss and against
the loss written out by hand; the mixing plan; the settings that choose the loss.

The comparisons run in float64: the two sides compute the same cross-entropies by different operations (soft
against hard targets, a bank gathered against the batch), over a few dozen terms of order 10, so they agree to
a few hundred float64 roundoffs (1.1e-16) of those values, whatever the CPU; RTOL and ATOL of
tests/train/float64.py allow a thousand times that."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from embedsearch.errors import InvalidInputError
from embedsearch.train import ClipTrainConfig
from embedsearch.train.distributed import Cluster
from embedsearch.train.image.clip.loss import MixPlan, QuietClipLoss, SoftClipLoss, clip_loss
from tests.train.float64 import ATOL, RTOL


def features(n: int, dim: int = 8, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, dim, generator=generator, dtype=torch.float64), dim=-1)


def test_without_mixing_and_with_the_batch_as_negatives_it_is_open_clips_loss():
    images, texts, scale = features(6, seed=1), features(6, seed=2), torch.tensor(14.0, dtype=torch.float64)
    expected = QuietClipLoss()(images, texts, scale)
    got = SoftClipLoss(Cluster())(images, texts, scale, MixPlan.identity(6))
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)


def test_every_training_caption_is_an_image_to_text_negative():
    bank, images, scale = features(10, seed=3), features(4, seed=4), torch.tensor(10.0, dtype=torch.float64)
    index = torch.tensor([7, 0, 3, 9])  # each image's caption among the 10
    got = SoftClipLoss(Cluster())(images, bank[index], scale, MixPlan.identity(4), bank, index)
    image_to_text = F.cross_entropy(scale * images @ bank.T, index)  # against all 10 captions
    text_to_image = F.cross_entropy(scale * bank[index] @ images.T, torch.arange(4))  # in-batch
    torch.testing.assert_close(got, (image_to_text + text_to_image) / 2, rtol=RTOL, atol=ATOL)


def test_a_mixed_image_is_its_caption_and_its_partners_in_proportion_both_ways():
    images, texts, scale = features(3, seed=5), features(3, seed=6), torch.tensor(5.0, dtype=torch.float64)
    # image 0 is 0.7 of itself and 0.3 of image 2; images 1 and 2 are unmixed
    plan = MixPlan(torch.tensor([2, 1, 2]), torch.tensor([0.7, 1.0, 1.0], dtype=torch.float64))
    got = SoftClipLoss(Cluster())(images, texts, scale, plan)
    to_text = torch.tensor([[0.7, 0.0, 0.3], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)
    # text 2 is all of image 2 and 0.3 of image 0: weights 0.3 and 1, normalised
    to_image = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.3 / 1.3, 0.0, 1 / 1.3]], dtype=torch.float64)
    expected = (
        F.cross_entropy(scale * images @ texts.T, to_text) + F.cross_entropy(scale * texts @ images.T, to_image)
    ) / 2
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, expected, rtol=RTOL, atol=ATOL)


def test_the_plan_is_drawn_per_sample_from_the_seed_and_step():
    plan = MixPlan.draw(0.4, seed=42, step=3, n=64)
    again = MixPlan.draw(0.4, seed=42, step=3, n=64)
    assert torch.equal(plan.partner, again.partner) and torch.equal(plan.lam, again.lam)
    assert not torch.equal(plan.lam, MixPlan.draw(0.4, seed=42, step=4, n=64).lam)
    assert plan.partner.min() >= 0 and plan.partner.max() < 64 and len(set(plan.partner.tolist())) > 20
    assert ((plan.lam > 0) & (plan.lam < 1)).all() and plan.lam.std() > 0.1  # Beta(0.4, 0.4): std 0.37
    off = MixPlan.draw(0.0, seed=42, step=3, n=5)
    assert torch.equal(off.partner, torch.arange(5)) and torch.equal(off.lam, torch.ones(5))


def test_mixing_blends_pixels_in_the_plans_proportions():
    plan = MixPlan(torch.tensor([1, 0, 3, 2]), torch.tensor([0.25, 1.0, 0.5, 0.0]))
    mine, partners = torch.ones(2, 3, 2, 2), torch.zeros(2, 3, 2, 2)
    mixed = plan.mix(mine, partners, slice(2, 4))  # this process holds samples 2 and 3
    assert mixed[0].eq(0.5).all() and mixed[1].eq(0.0).all()


def test_the_settings_choose_the_loss(tmp_path):
    base = {"pairs": tmp_path / "p.jsonl", "out": tmp_path / "o"}
    default = ClipTrainConfig(**base)  # minilm, locked: mixup and every caption
    assert default.mixup_alpha > 0 and default.all_negatives and default.soft_loss
    scratch = ClipTrainConfig(**base, text_tower="open_clip")  # a text tower that trains: batch negatives
    assert scratch.mixup_alpha > 0 and not scratch.all_negatives and scratch.soft_loss
    plain = ClipTrainConfig(**base, text_tower="open_clip", mixup=0.0)
    assert not plain.soft_loss and isinstance(clip_loss("clip", Cluster(), soft=plain.soft_loss), QuietClipLoss)
    siglip = ClipTrainConfig(**base, loss="siglip")
    assert siglip.mixup_alpha == 0 and not siglip.all_negatives and not siglip.soft_loss
    with pytest.raises(InvalidInputError, match="--mixup applies to the clip loss"):
        ClipTrainConfig(**base, loss="siglip", mixup=0.2)
    with pytest.raises(InvalidInputError, match="--negatives all needs the clip loss and a locked text tower"):
        ClipTrainConfig(**base, text_tower="open_clip", negatives="all")
    with pytest.raises(InvalidInputError, match="unknown negatives 'some'"):
        ClipTrainConfig(**base, negatives="some")
