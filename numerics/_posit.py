"""Posits of any (n, es): the 2022 standard (es = 2) and the older SoftPosit convention.

Rounding follows the standard: nearest-even on the bit string (so ties in the regime and the
exponent are geometric midpoints), no overflow to NaR and no underflow to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numba as nb
import numpy as np

from . import _fast
from . import _kernels as k
from ._format import ElementFormat


@dataclass(frozen=True)
class Posit(ElementFormat):
    """posit<n, es>: sign, regime, es exponent bits, fraction; NaR = 1 followed by zeros."""

    n: int
    es: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 2 <= self.n <= 32:
            raise ValueError(f"posit n must be in [2, 32], got {self.n}")
        if not 0 <= self.es <= 4:
            raise ValueError(f"posit es must be in [0, 4], got {self.es}")
        if not self.name:
            object.__setattr__(self, "name", f"posit{self.n}_{self.es}")

    @property
    def bits(self) -> int:
        return self.n

    @property
    def has_inf(self) -> bool:
        return False

    @property
    def has_nan(self) -> bool:
        return True  # NaR

    @property
    def max_scale(self) -> int:
        """log2(maxpos) = (n - 2) * 2**es."""
        return (self.n - 2) << self.es

    @property
    def max(self) -> float:
        return math.ldexp(1.0, self.max_scale)

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, -self.max_scale)

    @property
    def min_subnormal(self) -> float:
        return self.min_normal

    @property
    def lsb_exponent(self) -> int:
        return -self.max_scale

    @property
    def significand_bits(self) -> int:
        return max(self.n - 2 - self.es, 1)

    @property
    def quire_bits(self) -> int:
        """Quire width: 16n for the 2022 standard (es = 2), n**2 / 2 for the older convention."""
        return 16 * self.n if self.es == 2 else max(self.n * self.n // 2, 2 * self.max_scale + 32)

    def _default_saturate(self) -> bool:
        return True

    def _check_saturate(self, saturate: bool) -> None:
        if not saturate:
            raise ValueError(f"{self.name}: posits never overflow to NaR; saturate must be True")

    def _encode_kernel(self, bits, is_f32, out, saturate, mode, seed):  # type: ignore[no-untyped-def]
        # The branch-free kernel needs minpos >= 2**-126, so that float32 subnormals all clamp to it.
        if is_f32 and mode == k.NEAREST_EVEN and self.max_scale <= 126:
            _fast.posit_from_f32_rne(bits, out, self.n, self.es)
        else:
            _encode(bits, is_f32, out, self.n, self.es, mode, seed)

    def _round_kernel(self, cls, neg, sig, exp, top, sticky, out, saturate, mode):  # type: ignore[no-untyped-def]
        _round_many(cls, neg, sig, exp, top, sticky, out, self.n, self.es, mode)

    def _split_kernel(self, codes, cls, neg, sig, exp):  # type: ignore[no-untyped-def]
        _split(codes, cls, neg, sig, exp, self.n, self.es)


@nb.njit(cache=True, nogil=True)
def _round_one(
    cls: int, neg: bool, sig: int, exp: int, top: int, sticky: bool, n: int, es: int, mode: int, rnd: int
) -> int:
    mask = (np.int64(1) << n) - 1
    if cls == k.NAN or cls == k.INF:
        return np.int64(1) << (n - 1)
    if cls == k.ZERO:
        return 0
    max_field = (np.int64(1) << (n - 1)) - 1
    max_scale = (n - 2) << es
    e_top = exp + top
    if e_top >= max_scale:
        field = max_field
    elif e_top < -max_scale:
        field = np.int64(1)
    else:
        regime = e_top >> es
        expo = e_top & ((1 << es) - 1)
        if regime >= 0:
            rl, pattern = regime + 2, ((np.int64(1) << (regime + 1)) - 1) << 1
        else:
            rl, pattern = 1 - regime, np.int64(1)
        avail = n - 1 - rl
        frac = sig - (np.int64(1) << top)
        d = max(top + es + rl - 62, 0)
        if d > 0:  # keep the bit string within 63 bits; the dropped fraction bits become sticky
            sticky = sticky or (frac & ((np.int64(1) << d) - 1)) != 0
            frac >>= d
        tl = es + top - d
        bit_string = (((pattern << es) | expo) << (top - d)) | frac
        field = k.round_shift(bit_string, tl - avail, sticky, neg, mode, rnd)
        field = min(max(field, np.int64(1)), max_field)
    return ((-field) & mask) if neg else field


@nb.njit(cache=True, nogil=True, parallel=True)
def _encode(bits, is_f32, out, n, es, mode, seed):  # type: ignore[no-untyped-def]
    for i in nb.prange(bits.size):
        cls, neg, sig, exp = k.decompose(bits[i], is_f32)
        rnd = k.random_bits63(seed, i) if mode == k.STOCHASTIC else 0
        out[i] = _round_one(cls, neg, sig, exp, k.FLOAT_TOP, False, n, es, mode, rnd)


@nb.njit(cache=True, nogil=True)
def _round_many(cls, neg, sig, exp, top, sticky, out, n, es, mode):  # type: ignore[no-untyped-def]
    for i in range(sig.size):
        out[i] = _round_one(cls[i], neg[i], sig[i], exp[i], top, sticky[i], n, es, mode, 0)


@nb.njit(cache=True, nogil=True)
def _split(codes, cls, neg, sig, exp, n, es):  # type: ignore[no-untyped-def]
    mask = (np.int64(1) << n) - 1
    nar = np.int64(1) << (n - 1)
    for i in range(codes.size):
        c = codes[i]
        if c == 0 or c == nar:
            cls[i] = k.ZERO if c == 0 else k.NAN
            neg[i], sig[i], exp[i] = False, 0, 0
            continue
        is_neg = (c >> (n - 1)) & 1 == 1
        if is_neg:
            c = (-c) & mask
        first = (c >> (n - 2)) & 1
        run = 0
        pos = n - 2
        while pos >= 0 and ((c >> pos) & 1) == first:
            run += 1
            pos -= 1
        regime = run - 1 if first == 1 else -run
        remaining = max(n - 1 - run - 1, 0)  # bits after the regime and its terminator
        rest = c & ((np.int64(1) << remaining) - 1)
        exp_len = min(es, remaining)
        frac_len = remaining - exp_len
        expo = (rest >> frac_len) << (es - exp_len)  # truncated exponent bits read as 0
        frac = rest & ((np.int64(1) << frac_len) - 1)
        cls[i], neg[i] = k.FINITE, is_neg
        sig[i] = (np.int64(1) << frac_len) | frac
        exp[i] = (regime << es) + expo - frac_len
