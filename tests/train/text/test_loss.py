"""InfoNCE against hand-computed values, and the duplicate mask.

The losses are computed in float64 and the hand values in Python floats (float64): both evaluate the same
formula in a handful of operations on values of order 1 to 10, so they agree to a few units of float64's
roundoff (1.1e-16) times those values; ``rel=1e-12`` allows a thousand times that, on any CPU, and any wrong
term moves the loss by more than 1e-3."""

from __future__ import annotations

import math

import pytest
import torch

from embedsearch.train.text.batches import duplicate_mask
from embedsearch.train.text.loss import InfoNCELoss

REL = 1e-12  # see the module's docstring
ANCHORS = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
# positives of anchors 0 and 1, then a negative
CANDIDATES = torch.tensor([[1.0, 0.0], [0.6, 0.8], [-1.0, 0.0]], dtype=torch.float64)
LABELS = torch.tensor([0, 1])


def _ce(logits: list[float], label: int) -> float:
    return -logits[label] + math.log(sum(math.exp(x) for x in logits))


def test_infonce_matches_a_hand_computed_value():
    t = 0.5
    forward = (_ce([2.0, 1.2, -2.0], 0) + _ce([0.0, 1.6, 0.0], 1)) / 2  # anchor -> every candidate
    backward = (_ce([2.0, 0.0], 0) + _ce([1.2, 1.6], 1)) / 2  # positive -> every anchor
    symmetric = InfoNCELoss(temperature=t)(ANCHORS, CANDIDATES, LABELS)
    one_way = InfoNCELoss(temperature=t, symmetric=False)(ANCHORS, CANDIDATES, LABELS)
    assert symmetric.item() == pytest.approx((forward + backward) / 2, rel=REL)
    assert one_way.item() == pytest.approx(forward, rel=REL)


def test_infonce_uses_cosine_similarity():
    loss = InfoNCELoss(temperature=0.5)
    scaled, unit = loss(3 * ANCHORS, 0.2 * CANDIDATES, LABELS).item(), loss(ANCHORS, CANDIDATES, LABELS).item()
    assert scaled == pytest.approx(unit, rel=REL)


def test_a_masked_logit_counts_as_absent():
    t = 0.5
    mask = torch.tensor([[False, False, True], [False, False, False]])  # the negative is hidden from anchor 0
    forward = (_ce([2.0, 1.2], 0) + _ce([0.0, 1.6, 0.0], 1)) / 2
    backward = (_ce([2.0, 0.0], 0) + _ce([1.2, 1.6], 1)) / 2
    got = InfoNCELoss(temperature=t)(ANCHORS, CANDIDATES, LABELS, mask)
    assert got.item() == pytest.approx((forward + backward) / 2, rel=REL)


def test_the_backward_direction_masks_the_same_pairs():
    # anchor 0 must not see positive 1 as a negative; so positive 1 must not see anchor 0 either
    mask = torch.tensor([[False, True, False], [False, False, False]])
    forward = (_ce([2.0, -2.0], 0) + _ce([0.0, 1.6, 0.0], 1)) / 2
    backward = (_ce([2.0, 0.0], 0) + _ce([1.6], 0)) / 2
    got = InfoNCELoss(temperature=0.5)(ANCHORS, CANDIDATES, LABELS, mask)
    assert got.item() == pytest.approx((forward + backward) / 2, rel=REL)


def test_a_second_copy_of_a_document_changes_nothing_once_masked():
    torch.manual_seed(0)
    anchors, positives, negative = (torch.randn(n, 8, dtype=torch.float64) for n in (4, 4, 1))
    texts = ["a", "b", "c", "d"]
    related = {f"q{i}": {t} for i, t in enumerate(texts)}
    anchor_keys = list(related)
    loss = InfoNCELoss(temperature=0.1)
    base_columns = [*texts, "n"]
    base = loss(
        anchors, torch.cat([positives, negative]), torch.arange(4), duplicate_mask(anchor_keys, base_columns, related)
    )
    # the same negative twice, and a copy of positive 2 as a hard negative
    columns = [*texts, "n", "n", "c"]
    candidates = torch.cat([positives, negative, negative, positives[2:3]])
    with_copies = loss(anchors, candidates, torch.arange(4), duplicate_mask(anchor_keys, columns, related))
    unmasked = loss(anchors, candidates, torch.arange(4))
    assert with_copies.item() == pytest.approx(base.item(), rel=REL)
    assert unmasked.item() != pytest.approx(base.item(), rel=1e-3)  # unmasked, the copies count: +8% here


def test_duplicate_mask_rules():
    anchors = ["q1", "q2", "q3"]
    columns = ["d1", "d2", "d3", "d2", None, "d1"]  # three positives, then one slot per pair
    related = {"q1": {"d1", "d3"}, "q2": {"d2"}, "q3": {"d3"}}
    expected = [
        [False, False, True, True, True, True],  # d3 is another positive of q1; later copies and empty slots
        [False, False, False, True, True, True],
        [False, False, False, True, True, True],
    ]
    assert duplicate_mask(anchors, columns, related).tolist() == expected


def test_the_own_positive_is_never_masked_even_when_repeated_earlier():
    mask = duplicate_mask(["q1", "q2"], ["d", "d"], {"q1": {"d"}, "q2": {"d"}})
    assert mask.tolist() == [[False, True], [True, False]]


@pytest.mark.parametrize(
    "anchors, candidates, labels, mask",
    [
        (torch.zeros(2, 3), torch.zeros(2, 4), torch.arange(2), None),
        (torch.zeros(3, 3), torch.zeros(2, 3), torch.arange(3), None),
        (torch.zeros(2, 3), torch.zeros(2, 3), torch.arange(2), torch.zeros(2, 3, dtype=torch.bool)),
    ],
)
def test_shapes_are_checked(anchors, candidates, labels, mask):
    with pytest.raises(ValueError):
        InfoNCELoss()(anchors, candidates, labels, mask)


def test_temperature_must_be_positive():
    with pytest.raises(ValueError, match="temperature"):
        InfoNCELoss(temperature=0)
