"""Numba kernels for the accumulators that are not plain exact sums: fixed-width and float."""

from __future__ import annotations

import math

import numba as nb
import numpy as np

from . import _kernels as k
from ._minifloat import round_one, value_of


@nb.njit(cache=True, nogil=True, parallel=True)
def fixed_accumulate(a_sig, a_exp, b_sig, b_exp, ia, ib, lsb, width, saturate, out):  # type: ignore[no-untyped-def]
    """out[p] = register after accumulating a[ia[p], k] * b[ib[p], k] for k = 0, 1, ..."""
    hi = (np.int64(1) << (width - 1)) - 1
    lo = -hi - 1
    mask = (np.int64(1) << width) - 1
    sign_bit = np.int64(1) << (width - 1)
    n_terms = a_sig.shape[1]
    for p in nb.prange(ia.size):
        i, j = ia[p], ib[p]
        acc = np.int64(0)
        for kk in range(n_terms):
            prod = a_sig[i, kk] * b_sig[j, kk]
            if prod == 0:
                continue
            shift = a_exp[i, kk] + b_exp[j, kk] - lsb
            if shift < 0:
                term = prod >> min(-shift, 63)  # the aligner drops low bits: floor
            elif saturate and k.bit_length(abs(prod)) + shift > 62:
                acc = hi if prod > 0 else lo  # far beyond the register: it pins
                continue
            elif shift >= 64:
                term = np.int64(0)  # only bits >= 64 survive, and wrapping keeps < width
            else:
                term = prod << shift
            if saturate:
                acc = min(max(acc + term, lo), hi)
            else:
                acc = (((acc + term) & mask) ^ sign_bit) - sign_bit
        out[p] = acc


@nb.njit(cache=True, nogil=True)
def _round_sum(s: float, err: float, p: np.ndarray, mode: int) -> float:
    """Round the exact value s + err (|err| <= ulp(s)/2, from TwoSum) once to the format."""
    if math.isnan(s):
        return value_of(round_one(k.NAN, False, 0, 0, 61, False, p, mode, 0), p)
    if math.isinf(s):
        return value_of(round_one(k.INF, s < 0, 0, 0, 61, False, p, mode, 0), p)
    if s == 0.0:
        return value_of(round_one(k.ZERO, math.copysign(1.0, s) < 0, 0, 0, 61, False, p, mode, 0), p)
    frac, e = math.frexp(abs(s))
    sig = np.int64(frac * 9007199254740992.0) << 9  # 53-bit significand, top bit at 61
    exp = e - 53 - 9
    # err only tells on which side of s the exact value lies; any stand-in strictly on that
    # side and within the 2**-9 ulp sliver rounds the same (the format has <= 50 mantissa bits).
    toward = err if s > 0 else -err
    if toward < 0:
        sig -= 1
        if sig < (np.int64(1) << 61):
            sig = (sig << 1) | 1
            exp -= 1
    code = round_one(k.FINITE, s < 0, sig, exp, 61, toward != 0, p, mode, 0)
    return value_of(code, p)


@nb.njit(cache=True, nogil=True)
def _cut(x: float, quantum_exp: int, nearest_even: bool) -> float:
    """x (exact) as a multiple of 2**quantum_exp: toward zero, or to the nearest (ties even)."""
    v = math.ldexp(x, -quantum_exp)  # exact: |v| < 2**52
    whole = float(math.trunc(v))
    if nearest_even:
        whole = math.floor(v)
        rest = v - whole
        if rest > 0.5 or (rest == 0.5 and whole % 2.0 == 1.0):
            whole += 1.0
    return math.ldexp(whole, quantum_exp)


@nb.njit(cache=True, nogil=True)
def _lead(x: float) -> int:
    return math.frexp(abs(x))[1] - 1


@nb.njit(cache=True, nogil=True)
def _add_rounded(acc: float, term: float, p: np.ndarray, mode: int, window: int, nearest_even_align: bool) -> float:
    """add(acc, term) of `FloatAccumulator`: full alignment (window 0) or an N-bit window."""
    s = acc + term
    if not math.isfinite(s) or not (math.isfinite(acc) and math.isfinite(term)):
        return _round_sum(s, 0.0, p, mode)
    if window > 0 and (acc != 0.0 or term != 0.0):
        top = max(_lead(acc) if acc != 0.0 else -100000, _lead(term) if term != 0.0 else -100000)
        quantum = top - window + 1
        # Both cut values are multiples of 2**quantum below 2**(top + 1): their sum is exact.
        return _round_sum(_cut(acc, quantum, nearest_even_align) + _cut(term, quantum, nearest_even_align), 0.0,
                          p, mode)  # fmt: skip
    bb = s - acc
    err = (acc - (s - bb)) + (term - bb)
    return _round_sum(s, err, p, mode)


@nb.njit(cache=True, nogil=True, parallel=True)
def float_accumulate(a_val, b_val, ia, ib, pairwise, p, mode, window, nearest_even_align, out):  # type: ignore[no-untyped-def]
    """Float accumulation in the format described by `p` (see FloatAccumulator for the orders):
    out[q] = the sum over k of a_val[ia[q], k] * b_val[ib[q], k], each product exact."""
    n_terms = a_val.shape[1]
    for q in nb.prange(ia.size):
        i, j = ia[q], ib[q]
        if not pairwise:
            acc = 0.0
            for kk in range(n_terms):
                acc = _add_rounded(acc, a_val[i, kk] * b_val[j, kk], p, mode, window, nearest_even_align)
            out[q] = acc
            continue
        level = np.empty(max(n_terms, 1))
        for kk in range(n_terms):
            level[kk] = _round_sum(a_val[i, kk] * b_val[j, kk], 0.0, p, mode)
        size = n_terms
        if size == 0:
            out[q] = 0.0
            continue
        while size > 1:
            half = size // 2
            for t in range(half):
                level[t] = _add_rounded(level[2 * t], level[2 * t + 1], p, mode, window, nearest_even_align)
            if size % 2 == 1:
                level[half] = level[size - 1]
                size = half + 1
            else:
                size = half
        out[q] = level[0]
