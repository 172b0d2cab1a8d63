"""Which pairs go into which batch: a seeded shuffle per epoch that keeps anchors and positives unique within
a batch, so that no document is ever the negative of its own copy.

Batches are a pure function of ``(seed, epoch)``, so the data position of a run is just its step number: a
resumed run (or every process of a distributed one) recomputes the same batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import numpy as np

from embedsearch.train.pairs import Pair


def epoch_batches(pairs: Sequence[Pair], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Indices of ``pairs`` for each batch of epoch ``epoch``: a seeded permutation packed greedily into full
    batches in which no anchor text and no positive text occurs twice. A pair that clashes waits for the next
    batch; pairs left over for a last, incomplete batch are not used this epoch.
    """
    order = np.random.default_rng([seed, epoch]).permutation(len(pairs))
    queue, waiting = deque(order.tolist()), []
    batches: list[list[int]] = []
    batch: list[int] = []
    used: set[tuple[str, str]] = set()
    while queue:
        index = queue.popleft()
        keys = {("anchor", pairs[index].anchor), ("positive", pairs[index].positive)}
        if keys & used:
            waiting.append(index)
            continue
        batch.append(index)
        used |= keys
        if len(batch) == batch_size:
            batches.append(batch)
            batch, used = [], set()
            queue.extendleft(reversed(waiting))
            waiting = []
    return batches


class BatchPlan:
    """The batches of a whole run, by step: epoch after epoch (recomputed on demand) up to ``total_steps``.

    ``total_steps`` is ``max_steps`` if given, else the number of batches in ``epochs`` epochs. Raises
    ``ValueError`` if an epoch yields no full batch.
    """

    def __init__(self, pairs: Sequence[Pair], batch_size: int, seed: int, epochs: int, max_steps: int | None) -> None:
        self.pairs, self.batch_size, self.seed = pairs, batch_size, seed
        self._cache: dict[int, list[list[int]]] = {}
        self._lengths: dict[int, int] = {}
        if not self.batches_of(0):
            raise ValueError(f"{len(pairs)} pairs do not fill one batch of {batch_size}")
        self.total_steps = max_steps or sum(self._length(e) for e in range(epochs))

    def batches_of(self, epoch: int) -> list[list[int]]:
        """The batches of one epoch (only the latest epoch asked for is kept in memory)."""
        if epoch not in self._cache:
            self._cache = {epoch: epoch_batches(self.pairs, self.batch_size, self.seed, epoch)}
            self._lengths[epoch] = len(self._cache[epoch])
        return self._cache[epoch]

    def _length(self, epoch: int) -> int:
        return self._lengths[epoch] if epoch in self._lengths else len(self.batches_of(epoch))

    def position(self, step: int) -> tuple[int, int]:
        """``(epoch, batch within the epoch)`` of ``step`` (0-based)."""
        epoch = 0
        while step >= self._length(epoch):
            step -= self._length(epoch)
            epoch += 1
        return epoch, step

    def batch(self, step: int) -> list[int]:
        """The pair indices of the global batch of ``step``."""
        epoch, index = self.position(step)
        return self.batches_of(epoch)[index]
