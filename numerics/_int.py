"""Two's complement and unsigned integers of any width from 1 to 32 bits, narrow or full range."""

from __future__ import annotations

from dataclasses import dataclass, field

import numba as nb
import numpy as np

from . import _kernels as k
from ._format import ElementFormat


@dataclass(frozen=True)
class IntFormat(ElementFormat):
    """An integer format. Codes are the two's complement bit patterns read as unsigned.

    `narrow=True` drops the most negative code so the range is symmetric ([-127, 127] for
    int8); that code is then never produced, and decodes to its two's complement value.
    """

    width: int
    signed: bool = True
    narrow: bool = False
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.width <= 32:
            raise ValueError(f"integer bits must be in [1, 32], got {self.width}")
        if self.narrow and not self.signed:
            raise ValueError("narrow range applies to signed integers only")
        if self.narrow and self.width < 2:
            raise ValueError(f"a narrow signed integer needs >= 2 bits, got {self.width}")
        if not self.name:
            object.__setattr__(
                self, "name", f"{'' if self.signed else 'u'}int{self.width}{'_narrow' if self.narrow else ''}"
            )

    @property
    def bits(self) -> int:
        return self.width

    @property
    def min_int(self) -> int:
        if not self.signed:
            return 0
        return -(1 << (self.width - 1)) + int(self.narrow)

    @property
    def max_int(self) -> int:
        return (1 << (self.width - int(self.signed))) - 1

    @property
    def significand_bits(self) -> int:
        return self.width - (1 if self.narrow else 0) if self.signed else self.width

    @property
    def has_inf(self) -> bool:
        return False

    @property
    def has_nan(self) -> bool:
        return False

    @property
    def max(self) -> float:
        return float(self.max_int)

    @property
    def min_normal(self) -> float:
        return 1.0

    @property
    def min_subnormal(self) -> float:
        return 1.0

    @property
    def lsb_exponent(self) -> int:
        return 0

    def values(self) -> np.ndarray:
        """Every value encode can produce (a narrow range leaves out the most negative code)."""
        if self.width > 16:
            raise ValueError(f"values() needs a format of <= 16 bits; {self.name} has {self.width}")
        return np.arange(self.min_int, self.max_int + 1, dtype=np.float64)

    def _default_saturate(self) -> bool:
        return True

    def _check_saturate(self, saturate: bool) -> None:
        pass  # saturate=False wraps modulo 2**bits, like a hardware register

    def encode(self, x, rounding="nearest_even", saturate=None, seed=0):  # type: ignore[no-untyped-def]
        """Round to integers and saturate to [min_int, max_int] (or wrap with saturate=False).

        Infinities saturate; with wrapping they have no defined result and raise.
        """
        if saturate is False and np.isinf(np.asarray(x, dtype=np.float64)).any():
            raise ValueError(f"{self.name}: cannot wrap an infinite input; use saturate=True")
        return super().encode(x, rounding=rounding, saturate=saturate, seed=seed)

    def _encode_kernel(self, bits, is_f32, out, saturate, mode, seed):  # type: ignore[no-untyped-def]
        _encode(bits, is_f32, out, self.min_int, self.max_int, self.width, saturate, mode, seed)

    def _round_kernel(self, cls, neg, sig, exp, top, sticky, out, saturate, mode):  # type: ignore[no-untyped-def]
        _round_many(cls, neg, sig, exp, top, sticky, out, self.min_int, self.max_int, self.width, saturate, mode)

    def _split_kernel(self, codes, cls, neg, sig, exp):  # type: ignore[no-untyped-def]
        _split(codes, cls, neg, sig, exp, self.width, self.signed)


@nb.njit(cache=True, nogil=True)
def _round_one(cls, neg, sig, exp, top, sticky, lo, hi, bits, saturate, mode, rnd):  # type: ignore[no-untyped-def]
    mask = (np.int64(1) << bits) - 1
    if cls == k.ZERO:
        return 0
    if cls == k.INF:
        return (lo if neg else hi) & mask
    e_top = exp + top
    if e_top >= 62:
        if saturate:
            return (lo if neg else hi) & mask
        # Only the low `bits` bits survive wrapping, and all of them are integer bits here.
        low = 0 if exp >= bits else (sig & ((np.int64(1) << (bits - exp)) - 1)) << exp
        return ((-low) if neg else low) & mask
    n = k.round_shift(sig, -exp, sticky, neg, mode, rnd)
    v = -n if neg else n
    if saturate:
        v = min(max(v, lo), hi)
    return v & mask


@nb.njit(cache=True, nogil=True, parallel=True)
def _encode(bits, is_f32, out, lo, hi, nbits, saturate, mode, seed):  # type: ignore[no-untyped-def]
    for i in nb.prange(bits.size):
        cls, neg, sig, exp = k.decompose(bits[i], is_f32)
        rnd = k.random_bits63(seed, i) if mode == k.STOCHASTIC else 0
        out[i] = _round_one(cls, neg, sig, exp, k.FLOAT_TOP, False, lo, hi, nbits, saturate, mode, rnd)


@nb.njit(cache=True, nogil=True)
def _round_many(cls, neg, sig, exp, top, sticky, out, lo, hi, nbits, saturate, mode):  # type: ignore[no-untyped-def]
    for i in range(sig.size):
        out[i] = _round_one(cls[i], neg[i], sig[i], exp[i], top, sticky[i], lo, hi, nbits, saturate, mode, 0)


@nb.njit(cache=True, nogil=True)
def _split(codes, cls, neg, sig, exp, bits, signed):  # type: ignore[no-untyped-def]
    for i in range(codes.size):
        c = codes[i]
        if signed and (c >> (bits - 1)) & 1 == 1:
            c -= np.int64(1) << bits
        cls[i] = k.ZERO if c == 0 else k.FINITE
        neg[i] = c < 0
        sig[i] = -c if c < 0 else c
        exp[i] = 0
