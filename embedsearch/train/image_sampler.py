"""Which images (and captions) go into which batch, epoch by epoch.

Each epoch is a seeded shuffle of the training images, packed into full batches of distinct images; for an
image with several captions one is drawn at random for this epoch. A batch never holds one caption twice:
several images may share a caption (three vendors' drawings of one emoji), and in CLIP's or SigLIP's loss two
copies of a caption would each be the other's negative, teaching the model to tell apart what the data says
is the same. An image whose captions are all taken in the current batch waits for the next one (the same
packing as :mod:`embedsearch.train.sampler` for text pairs). We chose this over masking duplicates as
positives because it keeps open_clip's losses unchanged and the batch fully informative.

Batches are a pure function of ``(seed, epoch)``, so the data position of a run is its step number: a resumed
run, and every process of a distributed one, recompute the same batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import numpy as np

Item = TypeVar("Item")


def caption_batches(
    image_to_texts: Sequence[Sequence[int]], batch_size: int, seed: int, epoch: int
) -> list[list[tuple[int, int]]]:
    """``(image, caption)`` index pairs of each batch of epoch ``epoch``: distinct images, distinct captions,
    only full batches (images left over for a last, incomplete batch are not used this epoch)."""
    rng = np.random.default_rng([seed, epoch, 11])
    queue, waiting = deque(rng.permutation(len(image_to_texts)).tolist()), []
    batches: list[list[tuple[int, int]]] = []
    batch: list[tuple[int, int]] = []
    used: set[int] = set()
    while queue:
        image = queue.popleft()
        free = [t for t in image_to_texts[image] if t not in used]
        if not free:
            waiting.append(image)
            continue
        caption = free[int(rng.integers(len(free)))]
        batch.append((image, caption))
        used.add(caption)
        if len(batch) == batch_size:
            batches.append(batch)
            batch, used = [], set()
            queue.extendleft(reversed(waiting))
            waiting = []
    return batches


def image_batches(count: int, batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Image indexes of each full batch of epoch ``epoch``: a seeded permutation of ``range(count)`` in chunks."""
    order = np.random.default_rng([seed, epoch, 13]).permutation(count).tolist()
    return [order[i : i + batch_size] for i in range(0, count - batch_size + 1, batch_size)]


class EpochPlan(Generic[Item]):
    """The batches of a whole run by step: ``batches_of(epoch)`` epoch after epoch (recomputed on demand, the
    latest one kept) up to ``total_steps`` (``max_steps`` if given, else every batch of ``epochs`` epochs).
    Raises ``ValueError`` if the first epoch yields no full batch."""

    def __init__(
        self, batches_of: Callable[[int], list[list[Item]]], epochs: int, max_steps: int | None = None
    ) -> None:
        self._make = batches_of
        self._cache: dict[int, list[list[Item]]] = {}
        self._lengths: dict[int, int] = {}
        if not self.batches_of(0):
            raise ValueError("the data do not fill one batch")
        self.total_steps = max_steps or sum(self._length(e) for e in range(epochs))

    def batches_of(self, epoch: int) -> list[list[Item]]:
        if epoch not in self._cache:
            self._cache = {epoch: self._make(epoch)}
            self._lengths[epoch] = len(self._cache[epoch])
        return self._cache[epoch]

    def _length(self, epoch: int) -> int:
        return self._lengths[epoch] if epoch in self._lengths else len(self.batches_of(epoch))

    def batch(self, step: int) -> list[Item]:
        """The global batch of ``step`` (0-based)."""
        epoch = 0
        while step >= self._length(epoch):
            step -= self._length(epoch)
            epoch += 1
        return self.batches_of(epoch)[step]
