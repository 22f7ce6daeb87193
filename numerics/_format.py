"""The element-format interface shared by integers, minifloats and posits.

A concrete format supplies three things: a numba kernel that rounds decomposed floats to codes,
a numba kernel that splits codes into (class, sign, significand, exponent), and its derived
parameters. Everything user-facing (input checks, dtype choice, tables, `quantize`) lives here
once.
"""

from __future__ import annotations

import abc
import functools
from typing import Any

import numpy as np

from . import _fast
from . import _kernels as k
from ._rounding import Rounding, as_rounding

_TABLE_MAX_BITS = 16


def code_dtype(bits: int) -> np.dtype[Any]:
    """The smallest unsigned dtype holding `bits`-bit codes."""
    for dtype in (np.uint8, np.uint16, np.uint32, np.uint64):
        if bits <= np.dtype(dtype).itemsize * 8:
            return np.dtype(dtype)
    raise ValueError(f"bits must be <= 64, got {bits}")


def as_float_array(x: Any, who: str) -> np.ndarray:
    """Return x as a float32 or float64 ndarray without rounding it (ints become float64)."""
    arr = np.asarray(x)
    if arr.dtype == np.float32 or arr.dtype == np.float64:
        return arr
    if arr.dtype.kind in "biuf":
        if arr.dtype.kind in "iu" and arr.size and np.abs(arr.astype(np.float64)).max() >= 2.0**53:
            raise ValueError(f"{who}: integer inputs must be below 2**53 in magnitude to convert exactly")
        return arr.astype(np.float64)
    raise TypeError(f"{who}: input must be a real numeric array (float or int), got dtype {arr.dtype}")


class ElementFormat(abc.ABC):
    """A scalar number format whose codes are unsigned integers of `bits` bits."""

    name: str

    # -- what each format defines ------------------------------------------------------------
    @property
    @abc.abstractmethod
    def bits(self) -> int: ...

    @property
    @abc.abstractmethod
    def significand_bits(self) -> int:
        """Bits of the largest significand magnitude that `lower` returns."""

    @property
    @abc.abstractmethod
    def has_inf(self) -> bool: ...

    @property
    @abc.abstractmethod
    def has_nan(self) -> bool: ...

    @property
    @abc.abstractmethod
    def max(self) -> float:
        """The largest finite value."""

    @property
    @abc.abstractmethod
    def min_normal(self) -> float:
        """The smallest positive normal value (formats without subnormals: the smallest positive)."""

    @property
    @abc.abstractmethod
    def min_subnormal(self) -> float:
        """The smallest positive value."""

    @property
    @abc.abstractmethod
    def lsb_exponent(self) -> int:
        """The smallest exponent `lower` returns: every finite value is a multiple of 2**lsb_exponent."""

    @abc.abstractmethod
    def _default_saturate(self) -> bool: ...

    @abc.abstractmethod
    def _check_saturate(self, saturate: bool) -> None: ...

    @abc.abstractmethod
    def _encode_kernel(
        self, bits: np.ndarray, is_f32: bool, out: np.ndarray, saturate: bool, mode: int, seed: int
    ) -> None: ...

    @abc.abstractmethod
    def _split_kernel(
        self, codes: np.ndarray, cls: np.ndarray, neg: np.ndarray, sig: np.ndarray, exp: np.ndarray
    ) -> None: ...

    @abc.abstractmethod
    def _round_kernel(
        self,
        cls: np.ndarray,
        neg: np.ndarray,
        sig: np.ndarray,
        exp: np.ndarray,
        top: int,
        sticky: np.ndarray,
        out: np.ndarray,
        saturate: bool,
        mode: int,
    ) -> None:
        """Round exact values |v| = sig * 2**exp (top bit of sig at `top`, `sticky` flags bits
        below sig, top <= 61) to codes."""

    def round_parts(
        self,
        cls: np.ndarray,
        neg: np.ndarray,
        sig: np.ndarray,
        exp: np.ndarray,
        top: int,
        sticky: np.ndarray,
        rounding: Rounding | str = Rounding.NEAREST_EVEN,
        saturate: bool | None = None,
    ) -> np.ndarray:
        """Round exactly-known values, given as parts, to codes (used by the exact dot products)."""
        mode = as_rounding(rounding)
        if mode == Rounding.STOCHASTIC:
            raise ValueError("round_parts does not support stochastic rounding")
        sat = self._default_saturate() if saturate is None else bool(saturate)
        self._check_saturate(sat)
        if not self.has_nan and np.any(np.asarray(cls) == k.NAN):
            raise ValueError(f"{self.name} has no NaN, but the value to round is NaN")
        shape = np.shape(sig)
        parts = [np.ascontiguousarray(a).reshape(-1) for a in (cls, neg, sig, exp, sticky)]
        out = np.empty(parts[0].size, dtype=self.code_dtype)
        self._round_kernel(
            parts[0].astype(np.int8),
            parts[1].astype(np.bool_),
            parts[2].astype(np.int64),
            parts[3].astype(np.int64),
            top,
            parts[4].astype(np.bool_),
            out,
            sat,
            int(mode),
        )
        return out.reshape(shape)

    # -- shared behaviour --------------------------------------------------------------------
    @property
    def code_dtype(self) -> np.dtype[Any]:
        return code_dtype(self.bits)

    def __str__(self) -> str:
        return self.name

    def encode(
        self,
        x: Any,
        rounding: Rounding | str = Rounding.NEAREST_EVEN,
        saturate: bool | None = None,
        seed: int = 0,
    ) -> np.ndarray:
        """Round float32/float64 values (or Python scalars) to codes of this format.

        Parameters
        ----------
        rounding : a `Rounding` or its name; STOCHASTIC draws from `seed` and the element index,
            so the result is reproducible and independent of threading.
        saturate : overflow goes to +-max when True; to Inf (or NaN where the format has no Inf)
            when False. Default: False where the format has Inf or NaN (as IEEE and ml_dtypes
            casts), True otherwise.
        """
        mode = as_rounding(rounding)
        sat = self._default_saturate() if saturate is None else bool(saturate)
        self._check_saturate(sat)
        arr = as_float_array(x, self.name)
        if not self.has_nan and arr.size and np.isnan(arr).any():
            index = np.argwhere(np.isnan(arr))[0]
            raise ValueError(f"{self.name} has no NaN, but the input holds NaN at index {tuple(int(i) for i in index)}")
        if not (0 <= seed < 2**63):
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        flat = np.ascontiguousarray(arr).reshape(-1)
        is_f32 = flat.dtype == np.float32
        out = np.empty(flat.size, dtype=self.code_dtype)
        self._encode_kernel(flat.view(np.uint32 if is_f32 else np.uint64), is_f32, out, sat, int(mode), seed)
        return out.reshape(arr.shape)

    def check_codes(self, codes: Any) -> np.ndarray:
        """Return codes as an unsigned integer array after checking their dtype and range."""
        arr = np.asarray(codes)
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{self.name} codes must be integers, got dtype {arr.dtype}")
        if arr.size:
            low, high = int(arr.min()), int(arr.max())
            if low < 0 or high >= 1 << self.bits:
                bad = low if low < 0 else high
                raise ValueError(f"{self.name} codes must be in [0, {(1 << self.bits) - 1}], got {bad}")
        return arr

    def split(self, codes: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(class, negative, significand magnitude, exponent) per code; see numerics._kernels."""
        arr = self.check_codes(codes)
        flat = np.ascontiguousarray(arr.reshape(-1)).astype(np.int64)
        cls = np.empty(flat.size, np.int8)
        neg = np.empty(flat.size, np.bool_)
        sig = np.empty(flat.size, np.int64)
        exp = np.empty(flat.size, np.int64)
        self._split_kernel(flat, cls, neg, sig, exp)
        return tuple(a.reshape(arr.shape) for a in (cls, neg, sig, exp))  # type: ignore[return-value]

    def _decode_split(self, codes: np.ndarray) -> np.ndarray:
        cls, neg, sig, exp = self.split(codes)
        values = np.ldexp(sig.astype(np.float64), exp.astype(np.int32))
        values[cls == k.INF] = np.inf
        values[cls == k.NAN] = np.nan
        return np.where(neg, -values, values)

    @functools.cached_property
    def _table(self) -> np.ndarray:
        return self._decode_split(np.arange(1 << self.bits, dtype=np.int64))

    def decode(self, codes: Any) -> np.ndarray:
        """Codes to their exact float64 values (NaN codes to NaN)."""
        arr = self.check_codes(codes)
        if self.bits > _TABLE_MAX_BITS:
            return self._decode_split(arr)
        flat = np.ascontiguousarray(arr).reshape(-1)
        out = np.empty(flat.size, np.float64)
        _fast.gather(self._table, flat, out)
        return out.reshape(arr.shape)

    def quantize(
        self, x: Any, rounding: Rounding | str = Rounding.NEAREST_EVEN, saturate: bool | None = None, seed: int = 0
    ) -> np.ndarray:
        """decode(encode(x)): the nearest representable values under the rounding mode."""
        return self.decode(self.encode(x, rounding=rounding, saturate=saturate, seed=seed))

    def lower(self, codes: Any) -> tuple[np.ndarray, np.ndarray]:
        """Exact scaled-integer view: value = significand * 2**exponent (int64 arrays).

        This is what a hardware decoder outputs. NaN and Inf codes have no such view and raise.
        """
        cls, neg, sig, exp = self.split(codes)
        special = cls >= k.INF
        if special.any():
            index = tuple(int(i) for i in np.argwhere(special)[0])
            code = int(np.asarray(codes)[index])
            raise ValueError(f"{self.name} code {code:#x} at index {index} is Inf or NaN and has no integer lowering")
        return np.where(neg, -sig, sig), exp

    def values(self) -> np.ndarray:
        """Every finite value encode can produce, sorted ascending (+0 and -0 counted once)."""
        if self.bits > _TABLE_MAX_BITS:
            raise ValueError(f"values() needs a format of <= {_TABLE_MAX_BITS} bits; {self.name} has {self.bits}")
        table = self._table
        return np.unique(table[np.isfinite(table)])

    def spec(self) -> dict[str, Any]:
        """A summary for tables and JSON output."""
        return {
            "name": self.name,
            "bits": self.bits,
            "max": self.max,
            "min_normal": self.min_normal,
            "min_subnormal": self.min_subnormal,
            "inf": self.has_inf,
            "nan": self.has_nan,
        }
