"""Which images, with which of their captions, go into which batch of an image–text run.

Each epoch is a seeded shuffle of the training images, packed into full batches of distinct images; for an
image with several captions one of those not yet in the batch is drawn at random for this epoch. A batch never
holds one caption twice: several images may share a caption (three vendors' drawings of one emoji), and an
image whose captions are all taken waits for the next batch (the packing of :mod:`embedsearch.train.batching`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from embedsearch.train.batching import pack_batches


def caption_batches(
    image_to_texts: Sequence[Sequence[int]], batch_size: int, seed: int, epoch: int
) -> list[list[tuple[int, int]]]:
    """``(image, caption)`` index pairs of each batch of epoch ``epoch``: distinct images, distinct captions,
    only full batches (images left over for a last, incomplete batch are not used this epoch)."""
    rng = np.random.default_rng([seed, epoch, 11])

    def choose(image: int, used: set) -> tuple[tuple[int, int], set] | None:
        free = [t for t in image_to_texts[image] if t not in used]
        if not free:
            return None
        caption = free[int(rng.integers(len(free)))]
        return (image, caption), {caption}

    return pack_batches(rng.permutation(len(image_to_texts)).tolist(), batch_size, choose)
