"""Which pairs go into which batch (:func:`epoch_batches`: anchors and positives unique within a batch, so that
no document is ever the negative of its own copy), and from the pairs of a global batch to what one process
embeds, plus the labels and duplicate mask of the global batch (every process computes the same ones, so no
strings cross process boundaries).

Column layout of the global batch: the B positives (column i belongs to pair i), then ``K`` hard-negative
slots per pair (pair i owns columns ``B + i*K ... B + i*K + K - 1``); a slot is empty when a pair has fewer
than ``K`` negatives. Process r of W owns pairs ``r*B/W ... (r+1)*B/W - 1`` and their slots, so gathering
the processes' embeddings in rank order gives the single-process layout.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from embedsearch.train.batching import pack_batches
from embedsearch.train.distributed import Cluster
from embedsearch.train.text.pairs import Pair


def epoch_batches(pairs: Sequence[Pair], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of ``pairs`` for each batch of epoch ``epoch``: a seeded permutation packed greedily into full
    batches in which no anchor text and no positive text occurs twice (see :mod:`embedsearch.train.batching`)."""

    def choose(index: int, used: set) -> tuple[int, set] | None:
        keys = {("anchor", pairs[index].anchor), ("positive", pairs[index].positive)}
        return None if keys & used else (index, keys)

    order = np.random.default_rng([seed, epoch]).permutation(len(pairs)).tolist()
    return pack_batches(order, batch_size, choose)


@dataclass
class StepBatch:
    """One process's share of a global batch of ``B`` pairs with ``K`` negative slots each.

    ``texts``: what this process embeds, in order: its ``b = B / world`` anchors, its ``b`` positives, then
    its present negatives; ``filled`` (long, ``(n_present,)``): the slot (of this process's ``b*K``) of each
    present negative; ``labels`` (long, ``(B,)``) and ``mask`` (bool, ``(B, B + B*K)``) are those of
    :class:`~embedsearch.train.text.loss.InfoNCELoss` for the global batch.
    """

    texts: list[str]
    local_pairs: int
    slots: int
    filled: torch.Tensor
    labels: torch.Tensor
    mask: torch.Tensor


def random_crop(text: str, rng: np.random.Generator, ratio: tuple[float, float] = (0.1, 0.5)) -> str:
    """A random span of whole words of ``text`` covering ``ratio[0]`` to ``ratio[1]`` of its words (at least
    one word): the independent cropping of Contriever (Izacard et al., 2022)."""
    words = text.split()
    low = max(1, round(ratio[0] * len(words)))
    high = max(low, round(ratio[1] * len(words)))
    length = int(rng.integers(low, high + 1))
    start = int(rng.integers(0, len(words) - length + 1))
    return " ".join(words[start : start + length])


def views_of(pairs: Sequence[Pair], mode: str | None, rng: np.random.Generator, ratio: tuple[float, float]):
    """``(anchor texts, positive texts)`` to embed: the pairs' own texts, two independent crops of each
    document (``"crop"``), or each document twice (``"dropout"``: the model's dropout makes the two views)."""
    if mode == "crop":
        crops = [(random_crop(p.positive, rng, ratio), random_crop(p.positive, rng, ratio)) for p in pairs]
        return [a for a, _ in crops], [b for _, b in crops]
    if mode == "dropout":
        return [p.positive for p in pairs], [p.positive for p in pairs]
    return [p.anchor for p in pairs], [p.positive for p in pairs]


def sample_negatives(pairs: Sequence[Pair], per_pair: int, rng: np.random.Generator) -> list[str | None]:
    """``per_pair`` slots for each pair, in pair order: a seeded sample without replacement of its negatives,
    ``None`` for the slots it cannot fill."""
    slots: list[str | None] = []
    for pair in pairs:
        chosen = rng.permutation(len(pair.negatives))[:per_pair] if pair.negatives else []
        picked = [pair.negatives[i] for i in chosen]
        slots += picked + [None] * (per_pair - len(picked))
    return slots


def duplicate_mask(anchors: Sequence[str], columns: Sequence[str | None], related: dict[str, set[str]]) -> torch.Tensor:
    """Bool ``(B, M)``: True where column ``c`` must not be a negative of anchor ``i``.

    That is: an empty slot (``None``); a second copy of a text already in an earlier column; or a text that
    ``related[anchor]`` lists as a positive of that anchor. Column ``i`` (anchor i's own positive) is never
    masked for row ``i``.
    """
    mask = torch.zeros(len(anchors), len(columns), dtype=torch.bool)
    columns_of: dict[str, list[int]] = defaultdict(list)
    for column, key in enumerate(columns):
        if key is None or key in columns_of:
            mask[:, column] = True
        if key is not None:
            columns_of[key].append(column)
    for row, anchor in enumerate(anchors):
        for key in related.get(anchor, ()):
            mask[row, columns_of.get(key, [])] = True
        mask[row, row] = False
    return mask


def build_step_batch(
    pairs: Sequence[Pair],
    *,
    mode: str | None,
    per_pair: int,
    related: dict[str, set[str]],
    rng: np.random.Generator,
    cluster: Cluster,
    crop_ratio: tuple[float, float] = (0.1, 0.5),
) -> StepBatch:
    """Views, negatives, labels and mask of the global batch ``pairs``, and this process's share of its texts.

    ``rng`` is consumed the same way in every process (the whole global batch is drawn, then sliced).
    Raises ``ValueError`` if the batch does not split evenly over the processes.
    """
    if len(pairs) % cluster.world:
        raise ValueError(f"a batch of {len(pairs)} pairs does not split over {cluster.world} processes")
    anchor_texts, positive_texts = views_of(pairs, mode, rng, crop_ratio)
    slots = sample_negatives(pairs, per_pair, rng)
    mask = duplicate_mask([p.anchor for p in pairs], [p.positive for p in pairs] + slots, related)
    b = len(pairs) // cluster.world
    mine = slice(cluster.rank * b, (cluster.rank + 1) * b)
    my_slots = slots[cluster.rank * b * per_pair : (cluster.rank + 1) * b * per_pair]
    filled = [i for i, text in enumerate(my_slots) if text is not None]
    return StepBatch(
        texts=anchor_texts[mine] + positive_texts[mine] + [my_slots[i] for i in filled],
        local_pairs=b,
        slots=len(my_slots),
        filled=torch.tensor(filled, dtype=torch.long),
        labels=torch.arange(len(pairs)),
        mask=mask,
    )
