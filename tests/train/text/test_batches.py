"""Batches keep anchors and positives unique, are a pure function of (seed, epoch), and split over processes
into the single-process layout; the greedy packing both the text and the image-caption batches use."""

from __future__ import annotations

import numpy as np
import pytest

from embedsearch.train.batching import EpochPlan, pack_batches
from embedsearch.train.distributed import Cluster
from embedsearch.train.text.batches import build_step_batch, epoch_batches
from embedsearch.train.text.pairs import Pair, positives_by_anchor


def clashing_pairs() -> list[Pair]:
    """60 pairs: every query has three positives, and every document is the positive of two queries."""
    return [Pair(f"q{q}", f"d{(q + k) % 30}", (f"n{q}",)) for q in range(20) for k in range(3)]


def test_packing_defers_a_clashing_item_to_the_next_batch_and_drops_the_rest():
    def by_letter(word: str, used: set):  # key: the first letter; a word whose letter is taken waits
        return None if word[0] in used else (word.upper(), {word[0]})

    order = ["apple", "avocado", "banana", "blueberry", "cherry", "apricot", "date"]
    assert pack_batches(order, 2, by_letter) == [["APPLE", "BANANA"], ["AVOCADO", "BLUEBERRY"], ["CHERRY", "APRICOT"]]
    assert pack_batches(["a1", "a2", "a3"], 2, by_letter) == []  # no full batch: nothing


def test_no_batch_repeats_an_anchor_or_a_positive():
    pairs = clashing_pairs()
    batches = epoch_batches(pairs, 8, seed=1, epoch=0)
    assert len(batches) >= 5 and all(len(b) == 8 for b in batches)
    for batch in batches:
        assert len({pairs[i].anchor for i in batch}) == 8
        assert len({pairs[i].positive for i in batch}) == 8
    used = [i for b in batches for i in b]
    assert len(used) == len(set(used))


def test_batches_depend_only_on_seed_and_epoch():
    pairs = clashing_pairs()
    assert epoch_batches(pairs, 8, 1, 0) == epoch_batches(pairs, 8, 1, 0)
    assert epoch_batches(pairs, 8, 1, 0) != epoch_batches(pairs, 8, 1, 1)
    assert epoch_batches(pairs, 8, 1, 0) != epoch_batches(pairs, 8, 2, 0)


def plan_of(pairs: list[Pair], batch_size: int, seed: int, epochs: int, max_steps: int | None = None) -> EpochPlan:
    return EpochPlan(lambda epoch: epoch_batches(pairs, batch_size, seed, epoch), epochs, max_steps)


def test_the_plan_walks_epoch_after_epoch():
    pairs = [Pair(f"q{i}", f"d{i}") for i in range(10)]
    plan = plan_of(pairs, 4, seed=0, epochs=3)
    assert plan.total_steps == 6  # two full batches per epoch; the last two pairs wait for the next epoch
    assert [plan.position(s) for s in range(6)] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 0), (2, 1)]
    assert plan.batch(3) == epoch_batches(pairs, 4, 0, 1)[1]
    assert plan_of(pairs, 4, seed=0, epochs=1, max_steps=7).total_steps == 7


def test_too_few_pairs_for_one_batch():
    with pytest.raises(ValueError, match="do not fill one batch"):
        plan_of([Pair("q", f"d{i}") for i in range(10)], 4, seed=0, epochs=1)


@pytest.mark.parametrize("mode", [None, "crop", "dropout"])
def test_two_processes_see_their_halves_of_the_single_process_batch(mode):
    pairs = clashing_pairs()[:6:2] + [Pair("x", "some longer document text here", ("y", "z"))]
    related = positives_by_anchor(pairs)
    one = build_step_batch(
        pairs, mode=mode, per_pair=2, related=related, rng=np.random.default_rng(3), cluster=Cluster()
    )
    halves = [
        build_step_batch(
            pairs, mode=mode, per_pair=2, related=related, rng=np.random.default_rng(3), cluster=Cluster(r, 2)
        )
        for r in range(2)
    ]
    b = 2
    anchors = [t for h in halves for t in h.texts[:b]]
    positives = [t for h in halves for t in h.texts[b : 2 * b]]
    assert anchors + positives == one.texts[:8]
    assert [h.slots for h in halves] == [4, 4] and one.slots == 8
    for half in halves:
        assert half.mask.equal(one.mask) and half.labels.equal(one.labels)
    if mode == "dropout":
        assert anchors == positives
    if mode == "crop":
        assert all(set(a.split()) <= set(p.positive.split()) for a, p in zip(anchors, pairs, strict=True))


def test_empty_negative_slots_are_masked_for_everyone():
    pairs = [Pair("a", "p", ("n1", "n2")), Pair("b", "q")]
    batch = build_step_batch(
        pairs,
        mode=None,
        per_pair=2,
        related=positives_by_anchor(pairs),
        rng=np.random.default_rng(0),
        cluster=Cluster(),
    )
    assert batch.texts[:4] == ["a", "b", "p", "q"] and sorted(batch.texts[4:]) == ["n1", "n2"]
    assert batch.filled.tolist() == [0, 1]
    assert batch.mask[:, 4:].all() and not batch.mask[:, 2:4].any()
