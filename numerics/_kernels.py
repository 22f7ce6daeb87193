"""Numba kernels shared by all element formats: float decomposition, rounding, code assembly.

Every format rounds the same way: a value arrives as (sign, integer significand, exponent,
sticky), the format picks the quantum exponent, and `round_shift` drops the bits below it under
the chosen rounding mode. Doing this on integers (never on floats) is what makes the results
exact for any input and free of double rounding.
"""

from __future__ import annotations

import numba as nb
import numpy as np

# Value classes produced by `decompose` and by the lowering kernels.
ZERO, FINITE, INF, NAN = 0, 1, 2, 3

# Rounding modes: keep in step with numerics._rounding.Rounding.
NEAREST_EVEN, NEAREST_AWAY, TOWARD_ZERO, TOWARD_POSITIVE, TOWARD_NEGATIVE, STOCHASTIC = range(6)

# The significand top bit position used by the float decomposition (float64's hidden bit).
FLOAT_TOP = 52

_jit = nb.njit(cache=True, nogil=True)
_pjit = nb.njit(cache=True, nogil=True, parallel=True)


@_jit
def random_bits63(seed: int, index: int) -> int:
    """Counter-based splitmix64: the same (seed, index) always gives the same 63 random bits."""
    z = np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(index) + np.uint64(1)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    return np.int64(z >> np.uint64(1))


@_jit
def round_shift(sig: int, s: int, sticky: bool, neg: bool, mode: int, rnd: int) -> int:
    """Return sig / 2**s rounded to an integer; `sticky` marks nonzero bits below sig (s >= 1).

    `neg` is the sign of the value whose magnitude is `sig`, for the directed modes.
    `rnd` is 63 uniform random bits, used only by STOCHASTIC.
    """
    if s <= 0:
        return sig << (-s)
    if s >= 63:
        n = 0
        rem_zero = sig == 0 and not sticky
        above = False
        tie = False
        if mode == STOCHASTIC:
            threshold = sig >> (s - 63) if s - 63 < 63 else 0
            return 1 if rnd < threshold else 0
    else:
        n = sig >> s
        rem = sig & ((np.int64(1) << s) - 1)
        half = np.int64(1) << (s - 1)
        rem_zero = rem == 0 and not sticky
        above = rem > half or (rem == half and sticky)
        tie = rem == half and not sticky
        if mode == STOCHASTIC:
            # rnd >> (63 - s) is uniform on [0, 2**s): round up with probability rem / 2**s.
            return n + (1 if (rnd >> (63 - s)) < rem else 0)
    if mode == NEAREST_EVEN:
        up = above or (tie and (n & 1) == 1)
    elif mode == NEAREST_AWAY:
        up = above or tie
    elif mode == TOWARD_ZERO:
        up = False
    elif mode == TOWARD_POSITIVE:
        up = not rem_zero and not neg
    else:
        up = not rem_zero and neg
    return n + (1 if up else 0)


@_jit
def overflows_to_infinity(mode: int, neg: bool) -> bool:
    """IEEE 754 overflow: the directed modes that point toward zero stop at the largest finite."""
    if mode == TOWARD_ZERO:
        return False
    if mode == TOWARD_POSITIVE:
        return not neg
    if mode == TOWARD_NEGATIVE:
        return neg
    return True


@_jit
def decompose(bits: int, is_f32: bool) -> tuple[int, bool, int, int]:
    """Split an IEEE float bit pattern into (class, negative, significand, exponent).

    For finite nonzero values |x| = significand * 2**exponent with the significand's top bit at
    FLOAT_TOP, for float32 and float64 alike (float32 is widened exactly).
    """
    u = np.uint64(bits)
    if is_f32:
        neg = ((u >> np.uint64(31)) & np.uint64(1)) == 1
        biased = np.int64((u >> np.uint64(23)) & np.uint64(0xFF))
        frac = np.int64(u & np.uint64(0x7FFFFF))
        if biased == 0xFF:
            return (INF if frac == 0 else NAN), neg, 0, 0
        if biased == 0:
            if frac == 0:
                return ZERO, neg, 0, 0
            sig, exp = frac << 29, -149 - 29
        else:
            sig, exp = (frac | (np.int64(1) << 23)) << 29, biased - 127 - 52
    else:
        neg = (u >> np.uint64(63)) == 1
        biased = np.int64((u >> np.uint64(52)) & np.uint64(0x7FF))
        frac = np.int64(u & np.uint64(0xFFFFFFFFFFFFF))
        if biased == 0x7FF:
            return (INF if frac == 0 else NAN), neg, 0, 0
        if biased == 0:
            if frac == 0:
                return ZERO, neg, 0, 0
            sig, exp = frac, -1074
        else:
            sig, exp = frac | (np.int64(1) << 52), biased - 1023 - 52
    while sig < (np.int64(1) << FLOAT_TOP):  # float subnormals only: normalize
        sig <<= 1
        exp -= 1
    return FINITE, neg, sig, exp


@_jit
def bit_length(v: int) -> int:
    n = 0
    while v > 0:
        v >>= 1
        n += 1
    return n
