"""Minifloats: any ExMy with a bias, optional subnormals and an Inf/NaN policy (IEEE, OCP, FNUZ)."""

from __future__ import annotations

import enum
import functools
import math
from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np

from . import _fast
from . import _kernels as k
from ._format import ElementFormat


class Specials(enum.Enum):
    """Which codes are not numbers. Names follow ml_dtypes' suffixes."""

    IEEE = "ieee"  # exponent all ones: Inf (mantissa 0) and NaN (others)
    FN = "fn"  # finite, one NaN magnitude: all ones (S.1111.111)
    FNUZ = "fnuz"  # finite, NaN at the negative-zero code, no -0
    FINITE = "finite"  # every code is a number


_SPECIALIZE_FROM = 1 << 20  # from this many float32 inputs, compile a kernel with the format's constants

_SPECIALS_ID = {Specials.IEEE: 0, Specials.FN: 1, Specials.FNUZ: 2, Specials.FINITE: 3}

# Parameter vector layout handed to the kernels.
(
    _MAN,
    _EMIN,
    _OFFSET,
    _MAXMAG,
    _INFMAG,
    _NANCODE,
    _SIGNSHIFT,
    _SAT,
    _NONEGZERO,
    _SUBN,
    _SIGNED,
    _EXPBITS,
    _BIAS,
    _SPECIALS,
    _BITS,
) = range(15)


@dataclass(frozen=True)
class Minifloat(ElementFormat):
    """A binary floating-point format of 1 (sign) + exp_bits + man_bits bits.

    `man_bits` excludes the sign and the implicit bit. `subnormals=False` makes the lowest
    exponent field an ordinary binade and leaves no zero (as E8M0). `signed=False` drops the sign.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    subnormals: bool = True
    specials: Specials = Specials.IEEE
    signed: bool = True
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.specials, Specials):
            allowed = ", ".join(s.value for s in Specials)
            raise ValueError(f"specials must be one of {allowed}, got {self.specials!r}")
        if not 0 <= self.exp_bits <= 11:
            raise ValueError(f"exp_bits must be in [0, 11], got {self.exp_bits}")
        if not 0 <= self.man_bits <= 52:
            raise ValueError(f"man_bits must be in [0, 52], got {self.man_bits}")
        if not 1 <= self.bits <= 64:
            raise ValueError(f"total bits (sign + exp_bits + man_bits) must be in [1, 64], got {self.bits}")
        if self.exp_bits == 0 and not self.subnormals:
            raise ValueError("exp_bits=0 leaves only subnormals, so subnormals must be True")
        if self.specials is Specials.IEEE and self.exp_bits < 2:
            raise ValueError(f"IEEE specials need exp_bits >= 2 (one exponent is Inf/NaN), got {self.exp_bits}")
        if self.specials is Specials.FNUZ and not self.signed:
            raise ValueError("FNUZ puts NaN at the negative-zero code, so the format must be signed")
        if self.specials is Specials.FN and self.exp_bits + self.man_bits < 1:
            raise ValueError("FN needs at least one magnitude bit for its NaN code")
        default_bias = (1 << (self.exp_bits - 1)) - (0 if self.specials is Specials.FNUZ else 1) if self.exp_bits else 0
        if self.bias is None:
            object.__setattr__(self, "bias", default_bias)
        if not self.name:
            object.__setattr__(self, "name", self._default_name())

    def _default_name(self) -> str:
        suffix = {Specials.IEEE: "", Specials.FN: "fn", Specials.FNUZ: "fnuz", Specials.FINITE: "_finite"}
        name = f"fp{self.bits}_e{self.exp_bits}m{self.man_bits}{suffix[self.specials]}"
        if not self.signed:
            name += "u"
        if self.bias != (
            (1 << (self.exp_bits - 1)) - (0 if self.specials is Specials.FNUZ else 1) if self.exp_bits else 0
        ):
            name += f"_b{self.bias}"
        if not self.subnormals:
            name += "_nosub"
        return name

    # -- derived parameters -----------------------------------------------------------------
    @property
    def bits(self) -> int:
        return int(self.signed) + self.exp_bits + self.man_bits

    @property
    def _bias(self) -> int:
        assert self.bias is not None
        return self.bias

    @property
    def emin(self) -> int:
        """The exponent of the lowest binade (subnormals share it)."""
        return (1 - self._bias) if self.subnormals else -self._bias

    @property
    def _max_mag(self) -> int:
        all_ones = (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials is Specials.IEEE:
            return (((1 << self.exp_bits) - 1) << self.man_bits) - 1
        if self.specials is Specials.FN:
            return all_ones - 1
        return all_ones

    @property
    def _nan_code(self) -> int:
        if self.specials is Specials.IEEE:
            return (((1 << self.exp_bits) - 1) << self.man_bits) | (1 << max(self.man_bits - 1, 0))
        if self.specials is Specials.FN:
            return (1 << (self.exp_bits + self.man_bits)) - 1
        if self.specials is Specials.FNUZ:
            return 1 << (self.bits - 1)
        return -1

    @property
    def has_inf(self) -> bool:
        return self.specials is Specials.IEEE

    @property
    def has_nan(self) -> bool:
        if self.specials is Specials.IEEE:
            return self.man_bits >= 1
        return self.specials is not Specials.FINITE

    @functools.cached_property
    def max(self) -> float:  # cached: every float32 encode asks for it
        return float(self.decode(np.array([self._max_mag]))[0])

    @property
    def min_normal(self) -> float:
        return math.ldexp(1.0, self.emin)

    @property
    def min_subnormal(self) -> float:
        return math.ldexp(1.0, self.emin - (self.man_bits if self.subnormals else 0))

    @property
    def lsb_exponent(self) -> int:
        return self.emin - self.man_bits

    def _default_saturate(self) -> bool:
        return not (self.has_inf or self.has_nan)

    def _check_saturate(self, saturate: bool) -> None:
        if not saturate and not (self.has_inf or self.has_nan):
            raise ValueError(f"{self.name} has no Inf or NaN, so overflow must saturate: pass saturate=True")

    @property
    def significand_bits(self) -> int:
        return self.man_bits + (1 if self.exp_bits else 0)

    def params(self, saturate: bool) -> np.ndarray:
        """The parameter vector the numba kernels take."""
        p = np.zeros(15, np.int64)
        p[_MAN], p[_EMIN] = self.man_bits, self.emin
        p[_OFFSET] = 0 if self.subnormals else 1
        p[_MAXMAG] = self._max_mag
        p[_INFMAG] = ((1 << self.exp_bits) - 1) << self.man_bits if self.has_inf else -1
        p[_NANCODE] = self._nan_code
        p[_SIGNSHIFT] = self.bits - 1
        p[_SAT], p[_NONEGZERO] = saturate, self.specials is Specials.FNUZ
        p[_SUBN], p[_SIGNED] = self.subnormals, self.signed
        p[_EXPBITS], p[_BIAS], p[_SPECIALS], p[_BITS] = (
            self.exp_bits,
            self._bias,
            _SPECIALS_ID[self.specials],
            self.bits,
        )
        return p

    @property
    def _is_truncated_float32(self) -> bool:
        """float32 with fewer mantissa bits (bf16): encoding is rounding the bit pattern."""
        return (self.exp_bits, self.bias, self.specials, self.subnormals, self.signed) == (
            8, 127, Specials.IEEE, True, True) and 1 <= self.man_bits <= 22  # fmt: skip

    def decode(self, codes):  # type: ignore[no-untyped-def]
        """Codes to their exact float64 values (NaN codes to NaN)."""
        arr = np.asarray(codes)
        if not (arr.dtype.kind == "u" and arr.dtype.itemsize * 8 <= self.bits):  # else in range by their type
            arr = self.check_codes(arr)
        if self.bits <= 8 or self.exp_bits > 11 or self.bits > 32:
            return super().decode(arr)  # small tables beat arithmetic; fp64 goes the general way
        flat = np.ascontiguousarray(arr).reshape(-1)
        out = np.empty(flat.size, np.float64)
        if self._is_truncated_float32:
            _fast.truncated_f32_decode(flat, out, 23 - self.man_bits)
            return out.reshape(arr.shape)
        p = self.params(True)
        _fast.minifloat_decode(
            flat, out, self.man_bits, self.exp_bits, self._pow2, p[_SPECIALS], p[_SUBN], p[_SIGNED], p[_SIGNSHIFT],
            self._nan_code,
        )  # fmt: skip
        return out.reshape(arr.shape)

    @functools.cached_property
    def _pow2(self) -> np.ndarray:
        """2**(exponent of the lowest significand bit) per exponent field value."""
        fields = np.arange(1 << self.exp_bits)
        lowest = np.maximum(fields, 1) if self.subnormals else fields
        return np.ldexp(1.0, (lowest - self._bias - self.man_bits).astype(np.int32))

    def _fast_path(self, is_f32: bool) -> bool:
        """Whether the branch-free kernel applies: the format's binades lie within the input's."""
        if is_f32:
            return self.man_bits <= 22 and self.emin >= -126 and self.max < 2.0**128
        return self.man_bits <= 50 and self.emin >= -1022 and self.bits <= 32

    @functools.cached_property
    def _f32_lanes(self) -> bool:
        """Whether float32 inputs take the 32-bit kernel: the branch-free conditions, and with
        subnormals a quantum 2**(emin - man_bits) in [2**-125, 2**104], so that the FPU's rounding
        of the subnormal range uses a normal float32 and float32 subnormal inputs round to 0
        (whatever the FPU's denormals-are-zero mode)."""
        return self._fast_path(True) and (not self.subnormals or -125 <= self.emin - self.man_bits <= 104)

    @functools.cached_property
    def _f32_constants(self) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        """The 32-bit kernel's arguments after (bits, out), without and with saturation."""
        magic = np.float32(math.ldexp(1.0, self.emin - self.man_bits + 23) if self.subnormals else 1.0)
        constants = []
        for saturate in (False, True):
            p = self.params(saturate)
            constants.append((self.man_bits, self.emin, int(p[_OFFSET]), int(p[_MAXMAG]), int(p[_INFMAG]),
                              int(p[_NANCODE]), int(p[_SIGNSHIFT]), saturate, self.specials is Specials.FNUZ,
                              not self.subnormals, self.signed, magic))  # fmt: skip
        return constants[0], constants[1]

    def _encode_kernel(self, bits, is_f32, out, saturate, mode, seed):  # type: ignore[no-untyped-def]
        if is_f32 and mode == k.NEAREST_EVEN and self._is_truncated_float32:
            _fast.truncated_f32_rne(bits, out, 23 - self.man_bits, self._max_mag, self._nan_code, saturate)
        elif mode == k.NEAREST_EVEN and is_f32 and self._f32_lanes:
            constants = self._f32_constants[saturate]
            if bits.size >= _SPECIALIZE_FROM:
                _fast.specialized_minifloat_from_f32(*constants)(bits, out)
            else:
                _fast.minifloat_from_f32_rne(bits, out, *constants)
        elif mode == k.NEAREST_EVEN and self._fast_path(is_f32):
            p = self.params(saturate)
            frac_bits, in_bias = (23, 127) if is_f32 else (52, 1023)
            _fast.minifloat_from_float_rne(
                bits, frac_bits, in_bias, out, self.man_bits, self.emin, p[_OFFSET], p[_MAXMAG], p[_INFMAG],
                p[_NANCODE], p[_SIGNSHIFT], saturate, self.specials is Specials.FNUZ, not self.subnormals, self.signed,
            )  # fmt: skip
        else:
            _encode(bits, is_f32, out, self.params(saturate), mode, seed)

    def _round_kernel(self, cls, neg, sig, exp, top, sticky, out, saturate, mode):  # type: ignore[no-untyped-def]
        _round_many(cls, neg, sig, exp, top, sticky, out, self.params(saturate), mode)

    def _split_kernel(self, codes, cls, neg, sig, exp):  # type: ignore[no-untyped-def]
        _split(codes, cls, neg, sig, exp, self.params(True))


@nb.njit(cache=True, nogil=True)
def round_one(
    cls: int, neg: bool, sig: int, exp: int, top: int, sticky: bool, p: np.ndarray, mode: int, rnd: int
) -> int:
    man_bits, emin, max_mag = p[_MAN], p[_EMIN], p[_MAXMAG]
    saturate = p[_SAT] != 0
    if cls == k.NAN:
        return p[_NANCODE]
    if cls == k.ZERO and p[_SUBN] == 0:  # no code for zero (E8M0): the smallest value when saturating
        return 0 if saturate else p[_NANCODE]
    if neg and p[_SIGNED] == 0 and cls != k.ZERO:  # below an unsigned range
        return 0 if saturate else p[_NANCODE]
    if cls == k.ZERO:
        mag = 0
    elif cls == k.INF:
        if saturate:
            mag = max_mag
        elif p[_INFMAG] >= 0:
            mag = p[_INFMAG]
        else:
            return p[_NANCODE]
    else:
        e_top = exp + top
        if p[_SUBN] == 0 and e_top < emin:
            mag = 0  # no zero to flush to: the smallest value is the nearest
        else:
            q = max(e_top, emin) - man_bits
            n = k.round_shift(sig, q - exp, sticky, neg, mode, rnd)
            # Codes grow linearly with the rounded significand across binades, so a carry out of
            # the mantissa moves to the next exponent by itself.
            mag = n + ((q - emin + man_bits - p[_OFFSET]) << man_bits)
            if mag > max_mag:
                if saturate or not k.overflows_to_infinity(mode, neg):
                    mag = max_mag
                elif p[_INFMAG] >= 0:
                    mag = p[_INFMAG]
                else:
                    return p[_NANCODE]
    if mag == 0 and p[_NONEGZERO] != 0:
        return 0
    if neg and p[_SIGNED] != 0:
        return mag | (np.int64(1) << p[_SIGNSHIFT])
    return mag


@nb.njit(cache=True, nogil=True, parallel=True)
def _encode(bits, is_f32, out, p, mode, seed):  # type: ignore[no-untyped-def]
    for i in nb.prange(bits.size):
        cls, neg, sig, exp = k.decompose(bits[i], is_f32)
        rnd = k.random_bits63(seed, i) if mode == k.STOCHASTIC else 0
        out[i] = round_one(cls, neg, sig, exp, k.FLOAT_TOP, False, p, mode, rnd)


@nb.njit(cache=True, nogil=True)
def _round_many(cls, neg, sig, exp, top, sticky, out, p, mode):  # type: ignore[no-untyped-def]
    for i in range(sig.size):
        out[i] = round_one(cls[i], neg[i], sig[i], exp[i], top, sticky[i], p, mode, 0)


@nb.njit(cache=True, nogil=True)
def split_one(c: int, p: np.ndarray) -> tuple[int, bool, int, int]:
    """One code to (class, negative, significand magnitude, exponent)."""
    man_bits, exp_bits, bias = p[_MAN], p[_EXPBITS], p[_BIAS]
    mag = c & ((np.int64(1) << (exp_bits + man_bits)) - 1)
    biased = mag >> man_bits
    mant = mag & ((np.int64(1) << man_bits) - 1)
    neg = p[_SIGNED] != 0 and ((c >> p[_SIGNSHIFT]) & 1) == 1
    specials = p[_SPECIALS]
    if specials == 0 and biased == (np.int64(1) << exp_bits) - 1:
        return (k.INF if mant == 0 else k.NAN), neg, 0, 0
    if specials == 1 and mag == (np.int64(1) << (exp_bits + man_bits)) - 1:
        return k.NAN, neg, 0, 0
    if specials == 2 and c == (np.int64(1) << (p[_BITS] - 1)):
        return k.NAN, neg, 0, 0
    if p[_SUBN] != 0 and biased == 0:
        return (k.ZERO if mant == 0 else k.FINITE), neg, mant, 1 - bias - man_bits
    return k.FINITE, neg, mant | (np.int64(1) << man_bits), biased - bias - man_bits


@nb.njit(cache=True, nogil=True)
def value_of(c: int, p: np.ndarray) -> float:
    """One code to its float64 value."""
    cls, neg, sig, exp = split_one(c, p)
    if cls == k.NAN:
        return np.nan
    v = np.inf if cls == k.INF else math.ldexp(float(sig), exp)
    return -v if neg else v


@nb.njit(cache=True, nogil=True)
def _split(codes, cls, neg, sig, exp, p):  # type: ignore[no-untyped-def]
    for i in range(codes.size):
        cls[i], neg[i], sig[i], exp[i] = split_one(codes[i], p)
