"""Exact integers of any width, vectorized: the Kulisch accumulator behind `dot` and `matmul`.

A value is `sum(limbs[..., t] * 2**(limb_bits * t)) * 2**lsb_exponent`, with every limb but the
top one in [0, 2**limb_bits) and the top one signed. Products of two lowered operands are
formed limb by limb with int64 matrix products whose sums cannot overflow, so the result is
exact at any width, with no Python loop per element.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numba as nb
import numpy as np

from . import _kernels as k
from ._rounding import Rounding

if TYPE_CHECKING:
    from ._format import ElementFormat

_WINDOW_TOP = 61  # rounding windows carry 62 significant bits plus a sticky flag


def limb_bits_for(k_terms: int) -> int:
    """Limb width such that a sum of k_terms limb products stays inside int64."""
    log_k = max(int(k_terms - 1).bit_length(), 0)
    return max(min(20, (61 - log_k) // 2), 4)


def to_limbs(sig: np.ndarray, exp: np.ndarray, lsb: int, limb_bits: int) -> np.ndarray:
    """Signed significands times 2**exp as limbs (limb axis first) at 2**lsb."""
    mag = np.abs(sig).astype(np.int64)
    sign = np.where(sig < 0, -1, 1).astype(np.int64)
    shift = (exp - lsb).astype(np.int64)
    if shift.size and shift.min() < 0:
        raise ValueError("internal: exponent below the declared lsb")
    top_bits = int(mag.max()).bit_length() + int(shift.max()) if mag.size else 1
    n_limbs = max(-(-top_bits // limb_bits), 1)
    out = np.zeros((n_limbs, *sig.shape), np.int64)
    index = shift // limb_bits
    offset = shift % limb_bits
    mask = (1 << limb_bits) - 1
    positions = np.indices(sig.shape)
    mag_bits = max(int(mag.max()).bit_length(), 1) if mag.size else 1
    for part in range(-(-(mag_bits + limb_bits - 1) // limb_bits)):
        # Bits [part*L - offset, (part+1)*L - offset) of mag; part 0 shifts left, where
        # wrapping past bit 63 cannot touch the low limb_bits bits that are kept.
        if part == 0:
            piece = (mag << offset) & mask
        else:
            piece = (mag >> (part * limb_bits - offset)) & mask
        where = index + part < n_limbs
        target = (np.where(where, index + part, 0), *positions)
        out[target] += np.where(where, piece * sign, 0)  # one target per element: no collisions
    return out


def normalize(limbs: np.ndarray, limb_bits: int) -> np.ndarray:
    """Propagate carries so every limb but the last is in [0, 2**limb_bits)."""
    limbs = limbs.copy()
    for t in range(limbs.shape[-1] - 1):
        carry = limbs[..., t] >> limb_bits
        limbs[..., t] -= carry << limb_bits
        limbs[..., t + 1] += carry
    return limbs


def limb_product(
    a_limbs: np.ndarray, b_limbs: np.ndarray, contract: Callable[[np.ndarray, np.ndarray], np.ndarray], limb_bits: int
) -> np.ndarray:
    """Exact contract(a, b) over limbs (limb axis first in, last out)."""
    na, nb_ = a_limbs.shape[0], b_limbs.shape[0]
    nonzero_a = [bool(np.any(a_limbs[i])) for i in range(na)]
    nonzero_b = [bool(np.any(b_limbs[j])) for j in range(nb_)]
    shape = contract(a_limbs[0], b_limbs[0]).shape
    result = np.zeros((*shape, na + nb_ + 1), np.int64)
    mask = (1 << limb_bits) - 1
    for i in range(na):
        if not nonzero_a[i]:
            continue
        for j in range(nb_):
            if not nonzero_b[j]:
                continue
            partial = contract(a_limbs[i], b_limbs[j])
            result[..., i + j] += partial & mask
            result[..., i + j + 1] += partial >> limb_bits
    return normalize(result, limb_bits)


@nb.njit(cache=True, nogil=True)
def _windows(limbs, limb_bits, cls, neg, sig, exp, sticky):  # type: ignore[no-untyped-def]
    """Per row: sign, a 62-bit window below the leading one, and whether lower bits are set."""
    n_rows, n_limbs = limbs.shape
    mask = (np.int64(1) << limb_bits) - 1
    mag = np.empty(n_limbs, np.int64)
    for r in range(n_rows):
        is_neg = limbs[r, n_limbs - 1] < 0
        carry = 0
        for t in range(n_limbs):  # two's complement negation, limb by limb
            v = -limbs[r, t] + carry if is_neg else limbs[r, t]
            if t < n_limbs - 1:
                carry = v >> limb_bits
                v -= carry << limb_bits
            mag[t] = v
        h = n_limbs - 1
        while h >= 0 and mag[h] == 0:
            h -= 1
        neg[r] = is_neg
        if h < 0:
            cls[r], sig[r], exp[r], sticky[r] = k.ZERO, 0, 0, False
            continue
        window = mag[h]
        pos = h * limb_bits  # bit position of window's lsb
        i = h - 1
        while i >= 0 and k.bit_length(window) + limb_bits <= _WINDOW_TOP + 1:
            window = (window << limb_bits) | mag[i]
            pos -= limb_bits
            i -= 1
        has_sticky = False
        if i >= 0:
            fill = _WINDOW_TOP + 1 - k.bit_length(window)
            if fill > 0:
                window = (window << fill) | (mag[i] >> (limb_bits - fill))
                pos -= fill
                has_sticky = (mag[i] & (mask >> fill)) != 0
            else:
                has_sticky = mag[i] != 0
            for t in range(i):
                has_sticky = has_sticky or mag[t] != 0
        fill = _WINDOW_TOP + 1 - k.bit_length(window)
        cls[r], sig[r], exp[r], sticky[r] = k.FINITE, window << fill, pos - fill, has_sticky


@dataclass(frozen=True)
class ExactResult:
    """Exact accumulator contents for an array of outputs.

    value = (limbs as a big integer) * 2**lsb_exponent, unless `special` holds NaN or +-Inf.
    """

    limbs: np.ndarray
    limb_bits: int
    lsb_exponent: int
    special: np.ndarray

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.special.shape)

    @classmethod
    def from_int64(cls, values: np.ndarray, lsb_exponent: int, limb_bits: int = 20) -> ExactResult:
        values = np.asarray(values, np.int64)
        n_limbs = -(-64 // limb_bits) + 1
        limbs = np.zeros((*values.shape, n_limbs), np.int64)
        limbs[..., 0] = values
        return cls(normalize(limbs, limb_bits), limb_bits, lsb_exponent, np.zeros(values.shape))

    def integers(self) -> np.ndarray:
        """The exact integers in units of 2**lsb_exponent as Python ints (object array)."""
        flat = self.limbs.reshape(-1, self.limbs.shape[-1])
        out = np.empty(flat.shape[0], dtype=object)
        out[:] = [sum(int(v) << (self.limb_bits * t) for t, v in enumerate(row)) for row in flat]
        return out.reshape(self.shape)

    def to_fractions(self) -> np.ndarray:
        """Exact values as `fractions.Fraction` (object array; NaN/Inf stay floats)."""
        scale = Fraction(2) ** self.lsb_exponent
        out = np.empty(self.special.size, dtype=object)
        out[:] = [Fraction(i) * scale for i in self.integers().reshape(-1)]
        out = out.reshape(self.shape)
        special = self.special != 0
        out[special] = self.special[special]
        return out

    def parts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(class, negative, significand, exponent, sticky) with the significand's top bit at 61."""
        flat = np.ascontiguousarray(self.limbs.reshape(-1, self.limbs.shape[-1]))
        n = flat.shape[0]
        cls, neg = np.empty(n, np.int8), np.empty(n, np.bool_)
        sig, exp, sticky = np.empty(n, np.int64), np.empty(n, np.int64), np.empty(n, np.bool_)
        _windows(flat, self.limb_bits, cls, neg, sig, exp, sticky)
        exp += self.lsb_exponent
        special = self.special.reshape(-1)
        cls[np.isinf(special)] = k.INF
        cls[np.isnan(special)] = k.NAN
        neg[np.isinf(special)] = special[np.isinf(special)] < 0
        return cls, neg, sig, exp, sticky

    def round_to(
        self, fmt: ElementFormat, rounding: Rounding | str = Rounding.NEAREST_EVEN, saturate: bool | None = None
    ) -> np.ndarray:
        """Round every value once to `fmt` codes (the output unit of a PE)."""
        cls, neg, sig, exp, sticky = self.parts()
        codes = fmt.round_parts(cls, neg, sig, exp, _WINDOW_TOP, sticky, rounding=rounding, saturate=saturate)
        return codes.reshape(self.shape)

    def to_float64(self) -> np.ndarray:
        """Correctly rounded (nearest-even) float64 values; overflow gives +-Inf."""
        from ._registry import get

        return self.round_to(get("fp64")).view(np.float64)

    def fits(self, width: int) -> np.ndarray:
        """Whether each value fits a two's complement register of `width` bits at the lsb.

        Equivalent to (value >> (width - 1)) in {0, -1}, read off the normalized limbs.
        """
        limbs, bits = self.limbs, self.limb_bits
        top = limbs.shape[-1] - 1
        t0, b0 = divmod(width - 1, bits)
        if t0 >= top:
            shift = min(width - 1 - bits * top, 63)
            high = limbs[..., top] >> shift
            return (high == 0) | (high == -1)
        mask = (1 << bits) - 1
        low_part = limbs[..., t0] >> b0
        middle = limbs[..., t0 + 1 : top]
        is_zero = (low_part == 0) & np.all(middle == 0, axis=-1) & (limbs[..., top] == 0)
        is_minus_one = (low_part == mask >> b0) & np.all(middle == mask, axis=-1) & (limbs[..., top] == -1)
        return is_zero | is_minus_one

    def __repr__(self) -> str:
        return f"ExactResult(shape={self.shape}, lsb_exponent={self.lsb_exponent})"
