"""Learning-rate schedules: a factor of the peak learning rate per step (for ``torch.optim.lr_scheduler.LambdaLR``)."""

from __future__ import annotations

import math
from collections.abc import Callable


def linear_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up over ``warmup * total_steps`` steps, then linear decay to 0 at ``total_steps`` (the
    schedule of ``transformers.get_linear_schedule_with_warmup``): the text trainer's."""
    warm = int(total_steps * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return step / warm
        return max(0.0, (total_steps - step) / max(1, total_steps - warm))

    return factor


def cosine_schedule(total_steps: int, warmup: float) -> Callable[[int], float]:
    """Linear warm-up over ``warmup * total_steps`` steps (from ``1 / warm``, so the first step already
    learns), then half a cosine down to 0 at ``total_steps`` (open_clip's ``cosine_lr``): the image trainers'."""
    warm = int(total_steps * warmup)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        done = (step - warm) / max(1, total_steps - warm)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, done)))

    return factor
