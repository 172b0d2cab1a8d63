"""Interrupting a run at a step, and recording what each step leaves behind, for the resume tests."""

from __future__ import annotations

import hashlib

import torch


class Interrupt(Exception):
    """Raised from ``on_step`` to stop a run as a crash or Ctrl-C would."""


def stop_at(step: int):
    """An ``on_step`` that interrupts the run once ``step`` steps are done."""

    def on_step(report):
        if report.step == step:
            raise Interrupt

    return on_step


class StepRecorder:
    """An ``on_step`` that keeps, per step, the loss and a digest of torch's CPU RNG state after the step: a
    resumed run that restored everything continues both exactly."""

    def __init__(self) -> None:
        self.steps: dict[int, tuple[float, str]] = {}

    def __call__(self, report) -> None:
        digest = hashlib.sha256(torch.get_rng_state().numpy().tobytes()).hexdigest()
        self.steps[report.step] = (report.loss, digest)

    def after(self, step: int) -> dict[int, tuple[float, str]]:
        return {s: v for s, v in self.steps.items() if s > step}
