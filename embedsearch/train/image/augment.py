"""Augmentation of decoded training images (uint8 tensors from :mod:`embedsearch.train.image.cache`), per sample
with ``torchvision.transforms.v2``: random resized crop, optional horizontal flip, colour jitter, optional
greyscale; then the model's normalisation.

Every sample draws from its own seed (of the run seed, the step and its place in the global batch), under a
forked RNG: the augmentation of a step does not depend on how many processes share the batch or on what ran
before it, so a resumed run and a run on more processes see the very same images.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch


def sample_seeds(seed: int, step: int, count: int, stream: int = 0) -> list[int]:
    """``count`` seeds for the samples of global batch ``step`` (``stream`` tells apart e.g. SimCLR's views)."""
    return np.random.SeedSequence([seed, step, stream]).generate_state(count, dtype=np.uint64).tolist()


class Normalise:
    """uint8 ``(n, 3, h, w)`` -> float32 ``(n, 3, h, w)``: ``(x / 255 - mean) / std`` per channel."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels.float() / 255 - self.mean) / self.std


class TrainAugment:
    """The training transform: uint8 ``(n, 3, s, s)`` and one seed per sample -> normalised float32
    ``(n, 3, size, size)``.

    ``crop_scale`` is the area range of ``RandomResizedCrop`` (aspect ratio 3/4 to 4/3); ``hflip`` adds a
    horizontal flip with probability 0.5; ``jitter`` is the brightness, contrast and saturation strength of
    ``ColorJitter`` and ``hue`` its hue range; ``grayscale`` the probability of ``RandomGrayscale``.
    """

    def __init__(
        self,
        size: int,
        mean: Sequence[float],
        std: Sequence[float],
        *,
        crop_scale: tuple[float, float] = (0.6, 1.0),
        hflip: bool = False,
        jitter: float = 0.0,
        hue: float = 0.0,
        grayscale: float = 0.0,
    ) -> None:
        from torchvision.transforms import v2

        steps = [v2.RandomResizedCrop(size, scale=crop_scale, antialias=True)]
        if hflip:
            steps.append(v2.RandomHorizontalFlip())
        if jitter or hue:
            steps.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter, hue=hue))
        if grayscale:
            steps.append(v2.RandomGrayscale(grayscale))
        self.transform = v2.Compose(steps)
        self.normalise = Normalise(mean, std)

    def __call__(self, pixels: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
        if len(seeds) != len(pixels):
            raise ValueError(f"one seed per image needed: {len(pixels)} images, {len(seeds)} seeds")
        views = []
        with torch.random.fork_rng(devices=[]), _one_thread():
            for image, seed in zip(pixels, seeds, strict=True):
                torch.manual_seed(seed)
                views.append(self.transform(image))
        return self.normalise(torch.stack(views))


@contextlib.contextmanager
def _one_thread():
    """Run per-sample ops on one thread: they are far too small to split, and on a busy machine every parallel
    region waits for its slowest thread (measured here on 2 shared cores: 2.1 s for 128 images of 64 px with 2
    threads, 0.14 s with 1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
