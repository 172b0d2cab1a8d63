"""The learning-rate schedules: the text trainer's linear warm-up and decay, the image trainers' cosine.

Every value asserted is exact in binary floating point (quotients of small integers that round as their literals
do, cos(0) = 1, and 1 + cos(pi / 2), 6e-17 off 1, rounds to 1), so they compare with ``==`` on any machine."""

from __future__ import annotations

from embedsearch.train.schedules import cosine_schedule, linear_schedule


def test_linear_schedule_warms_up_from_zero_then_decays_to_zero():
    factor = linear_schedule(100, 0.1)
    assert [factor(s) for s in (0, 5, 10)] == [0.0, 0.5, 1.0]
    assert factor(55) == 0.5 and factor(100) == 0.0 and factor(120) == 0.0
    assert linear_schedule(10, 0.0)(0) == 1.0  # no warm-up: the first step at the peak


def test_cosine_schedule_warms_up_then_decays_to_zero():
    factor = cosine_schedule(100, 0.1)
    assert factor(0) == 0.1 and factor(9) == 1.0  # from 1 / warm: the first step already learns
    assert factor(10) == 1.0 and factor(55) == 0.5 and factor(100) == 0
