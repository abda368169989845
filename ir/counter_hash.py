r"""A counter-based random stream that every backend can reproduce bit for bit.

Draw ``k`` of decision ``n`` under ``seed`` is the 32-bit integer

.. math:: h(seed, n, k) = \mathrm{mix}(\mathrm{key}(seed, n) \oplus k),\qquad
   \mathrm{key}(seed, n) = \mathrm{mix}(seed \oplus \mathrm{mix}(n)),

where ``mix`` is an invertible 32-bit integer hash (xor-shift / multiply, constants 0x7FEB352D and
0x846CA68B, the "lowbias32" mixer). Everything is integer arithmetic on values below 2**32, so
Python ints, numpy ``int64`` arrays and torch ``int64`` tensors give identical results (products
may wrap in 64 bits; only their low 32 bits are kept, which wrapping does not change).

Used by :class:`plastix.ir.rules.SynapticQ` for its ε-greedy draws (``k`` = the synapse's
row-major index, ``n`` = the decision count), so the torch backend, the host-emulated Lava
process and the vectorised trainer explore identically. No numpy or torch import here: :func:`mix32`
only uses the operators ``^ >> * &``, which all three types share.
"""
from __future__ import annotations

from typing import TypeVar

MASK32 = 0xFFFFFFFF
EXPLORE_BITS = 24  # the top 24 bits of a draw form the uniform v in [0, 2**24)

T = TypeVar("T")


def mix32(x: T) -> T:
    """The 32-bit integer mixer (a bijection on [0, 2**32)); ``x`` an int or an int64 array/tensor
    with values in [0, 2**32). Returns a new value of the same type."""
    x = x ^ (x >> 16)  # a new object: the in-place steps below never touch the caller's array
    x *= 0x7FEB352D
    x &= MASK32
    x ^= x >> 15
    x *= 0x846CA68B
    x &= MASK32
    x ^= x >> 16
    return x


def stream_key(seed: int, counter: int) -> int:
    """``key(seed, n)``: the per-decision key (a Python int below 2**32)."""
    if seed < 0 or counter < 0:
        raise ValueError(f"stream_key: seed and counter must be >= 0, got seed={seed}, counter={counter}")
    return mix32((int(seed) & MASK32) ^ mix32(int(counter) & MASK32))


def explore_threshold(epsilon: float) -> int:
    """ε as an integer threshold: a synapse explores iff its ``v = h >> 8`` is below it."""
    if not 0.0 <= epsilon <= 1.0:
        raise ValueError(f"explore_threshold: epsilon must lie in [0, 1], got {epsilon!r}")
    return int(epsilon * (1 << EXPLORE_BITS))
