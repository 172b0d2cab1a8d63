"""The trainers in float64, for tests that compare two computations of the same arithmetic (one process against
two, GradCache against a plain step, a cut against a padded batch).

In float32 such pairs differ by rounding that depends on the CPU (AVX2, AVX-512 and AMX kernels block and
order reductions differently) and on the shapes, so no float32 tolerance holds on every machine without being
too loose to catch a real error. In float64 the unit roundoff is u = 2**-53 = 1.1e-16, and reordering the
reductions of these toy models (at most a few hundred terms per sum, values of order 1) moves a result by a few
hundred u at most: about 1e-13 of its scale. The tests allow :data:`RTOL` and :data:`ATOL`, a thousand times
that, which a real error (a gradient term lost or counted twice, a wrong mask) exceeds by ten orders of
magnitude.
"""

from __future__ import annotations

import contextlib

import torch

RTOL = 1e-10  # relative: a thousand times the worst reordering of float64 sums of a few hundred terms
ATOL = 1e-12  # absolute, for values that should be 0 (a gradient that cancels): a thousand times 1e-15
# Weights after whole runs: AdamW divides each gradient by its running RMS plus eps = 1e-8, so a gradient that is
# only rounding noise (the two runs' gradients differ by at most ATOL) moves its weight by up to
# lr * ATOL / eps per step: 2e-7 at the image trainer's lr of 2e-3, 8e-7 over the 4 steps of those tests.
ADAM_ATOL = 1e-6
ADAM_RTOL = 1e-6  # a weight with a real gradient: Adam's update is scale-free, so relative errors pass through


@contextlib.contextmanager
def float64_training():
    """Within: torch's default dtype is float64 (open_clip builds its towers in it) and sentence-transformers
    models load in float64 (transformers keeps a checkpoint's float32 otherwise)."""
    import embedsearch.train.text.model as text_model

    previous, load = torch.get_default_dtype(), text_model._load
    torch.set_default_dtype(torch.float64)
    text_model._load = lambda *args: load(*args).double()
    try:
        yield
    finally:
        torch.set_default_dtype(previous)
        text_model._load = load


def image_run_in_float64(run) -> None:
    """Turn a built image run's model to float64 (its inputs follow the model's dtype), re-embedding a frozen
    text tower's caption features with it."""
    run.trainable.double()
    if getattr(run, "text_features", None) is not None:
        run.text_features = run._embed_all_captions()
        if run.bank is not None:
            run.bank, run.bank_rows = run._caption_bank()
