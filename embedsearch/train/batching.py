"""Which examples go into which batch: the greedy packing every trainer uses, and the plan of a whole run.

A trainer's epoch is a seeded shuffle packed greedily into full batches in which no *key* occurs twice (for text
pairs: an anchor or a positive text; for image-caption pairs: a caption). Two copies of a key in one batch would
each be the other's negative, teaching the model to tell apart what the data says is the same. An example that
clashes with the batch waits for the next one; examples left over for a last, incomplete batch are not used
this epoch. We chose this over masking duplicates as positives because it keeps the losses unchanged and the
batch fully informative.

Batches are a pure function of ``(seed, epoch)``, so the data position of a run is its step number: a resumed
run, and every process of a distributed one, recompute the same batches.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Hashable, Iterable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Entry = TypeVar("Entry")

Choice = Callable[[Item, set[Hashable]], "tuple[Entry, set[Hashable]] | None"]
"""``choose(item, keys in the batch)``: the batch entry ``item`` makes and the keys it takes, or None when it
clashes with the batch."""


def pack_batches(order: Iterable[Item], batch_size: int, choose: Choice) -> list[list[Entry]]:
    """Full batches of ``batch_size`` entries, taking the items in ``order``; an item ``choose`` refuses waits
    (ahead of the rest of the queue) for the next batch."""
    queue, waiting = deque(order), []
    batches: list[list[Entry]] = []
    batch: list[Entry] = []
    used: set[Hashable] = set()
    while queue:
        item = queue.popleft()
        chosen = choose(item, used)
        if chosen is None:
            waiting.append(item)
            continue
        entry, keys = chosen
        batch.append(entry)
        used |= keys
        if len(batch) == batch_size:
            batches.append(batch)
            batch, used = [], set()
            queue.extendleft(reversed(waiting))
            waiting = []
    return batches


class EpochPlan(Generic[Entry]):
    """The batches of a whole run by step: ``batches_of(epoch)`` epoch after epoch (recomputed on demand, the
    latest one kept) up to ``total_steps`` (``max_steps`` if given, else every batch of ``epochs`` epochs).
    Raises ``ValueError`` if the first epoch yields no full batch."""

    def __init__(
        self, batches_of: Callable[[int], list[list[Entry]]], epochs: int, max_steps: int | None = None
    ) -> None:
        self._make = batches_of
        self._cache: dict[int, list[list[Entry]]] = {}
        self._lengths: dict[int, int] = {}
        if not self.batches_of(0):
            raise ValueError("the data do not fill one batch")
        self.total_steps = max_steps or sum(self._length(e) for e in range(epochs))

    def batches_of(self, epoch: int) -> list[list[Entry]]:
        if epoch not in self._cache:
            self._cache = {epoch: self._make(epoch)}
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

    def batch(self, step: int) -> list[Entry]:
        """The global batch of ``step`` (0-based)."""
        epoch, index = self.position(step)
        return self.batches_of(epoch)[index]
