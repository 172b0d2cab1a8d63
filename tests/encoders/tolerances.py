"""Tolerances derived from the arithmetic, so that a test holds on any x86-64 CPU (AVX2, AVX-512, AMX), at any
thread count, in fp32 or bf16: the order in which a kernel adds up a reduction depends on all of these, the
arithmetic's unit roundoff does not. Nothing here is fitted to a measurement on one machine.

``u`` is the unit roundoff: 2**-24 for float32 (24-bit significand), 2**-8 for bfloat16 (8-bit significand); a
rounding moves a value by a relative amount ``delta`` with ``|delta| <= u``. float64 (u = 2**-53) is the
reference wherever two computations of the same math are compared: its own error is below 1e-12 here and is
neglected.

Two kinds of bound:

- **worst case** (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., §3.1), for short sums: a
  float32 dot product of ``n`` terms, in any order, is off by at most ``gamma_n * sum|x_i y_i|`` with
  ``gamma_n = n u / (1 - n u)``, and an L2 normalisation moves each component by a relative
  ``(n / 2 + 2) u`` at most (sum of squares ``gamma_n``, square root half of it plus ``u``, division ``u``).
- **statistical**, for a deep network, where a worst case (thousands of ``u`` per layer) would hide real
  errors: each rounding is modelled as an independent relative error uniform in ``[-u, u]`` (variance
  ``u**2 / 3``); a reduction of ``K`` terms then has a relative error of standard deviation at most
  ``u * sqrt(K / 3)`` (Higham & Mary, SIAM J. Sci. Comput. 41(5), 2019, "A new approach to probabilistic
  rounding error analysis"), the errors of successive stages add in quadrature, and LayerNorm-ed residual
  blocks pass a relative error on with a gain of at most 1. The bound is ``LAMBDA`` standard deviations of the
  resulting L2 error of the output vector. The gain is a property of the model and its inputs, not of the CPU,
  so it is the same on every machine.
"""

from __future__ import annotations

import math

U_FP32 = 2.0**-24
U_BF16 = 2.0**-8
# standard deviations: a Gaussian exceeds 3 sigma with probability 0.0027, and the model above already takes
# every rounding at the largest variance a bounded error can have
LAMBDA = 3.0
# a score is rounded to 6 decimals in a Hit (embedsearch/search/hits.py), half a unit of the last place
HIT_ROUNDING = 5e-7


def gamma(n: int, u: float = U_FP32) -> float:
    """Higham's ``gamma_n``: the worst relative error of a sum or dot product of ``n`` terms, in any order."""
    return n * u / (1 - n * u)


def normalisation_error(dim: int, u: float = U_FP32) -> float:
    """Worst relative change of each component when a ``dim``-vector is L2-normalised in floating point."""
    return (dim / 2 + 2) * u


def cosine_error(dim: int, u: float = U_FP32) -> float:
    """Worst error of the float32 inner product of two vectors each normalised in float32, against the exact
    cosine: both normalisations (``2 * normalisation_error``) plus the dot product's ``gamma_dim`` (the product of
    two unit vectors has ``sum|x_i y_i| <= 1``)."""
    return 2 * normalisation_error(dim, u) + gamma(dim, u)


def transformer_reduction_terms(*, layers: int, width: int, heads: int, seq: int, mlp: int) -> int:
    """The sum of the lengths ``K`` of the float32 reductions on the way through ``layers`` transformer layers:
    per layer two LayerNorms (mean and variance, ``4 * width``), the q, k, v and output projections
    (``4 * width``), the attention scores (``width // heads``), the softmax's sum and the weighted values
    (``2 * seq``) and the MLP (``width + mlp``)."""
    return layers * (9 * width + width // heads + 2 * seq + mlp)


def float32_network_bound(reduction_terms: int, dim: int) -> float:
    """L2 distance, at most, between the unit ``dim``-vector a network computes in float32 and the exact one,
    for a forward pass whose reductions have ``reduction_terms`` terms in all (statistical bound above), plus the
    worst case of the final normalisation in float32 (each component relatively, so in L2 norm too)."""
    return LAMBDA * U_FP32 * math.sqrt(reduction_terms / 3) + normalisation_error(dim)


def bert_bf16_roundings(layers: int) -> int:
    """bf16 roundings on the way through a BERT encoder run in bfloat16 (weights and activations): per layer 16
    parameter tensors (q, k, v, output, two MLP matrices and their biases, two LayerNorms' weight and bias) and
    14 activations (two LayerNorms, q, k, v, scores, softmax, weighted values, output projection, two residual
    sums, the two MLP matrices and GELU); then the embeddings (three tables, their two sums, a LayerNorm with its
    two parameters: 8) and the mean pooling (1)."""
    return 30 * layers + 9


def bf16_network_bound(roundings: int) -> float:
    """L2 distance, at most, between the unit vector a network computes in bfloat16 and the exact one, after
    ``roundings`` bf16 roundings on its way (statistical bound above; float32 accumulation inside the kernels
    and the final float32 normalisation are smaller by 2**16 and neglected)."""
    return LAMBDA * U_BF16 * math.sqrt(roundings / 3)
