"""BitMoD mixture of datatypes (HPCA 2025): per group, the best of four FP4 (or FP3) grids.

Each grid is FP4 E2M1 (FP3: {0, +-1, +-2, +-4}) whose redundant -0 code stands for one special
value: +5, -5 ("extra resolution"), +8, -8 ("extra asymmetry"); FP3: +3, -3, +6, -6. A 2-bit
selector per group names the grid, chosen by least squared error; the scale is
absmax / max|grid|, stored as fp16. Rounding follows the reference: ties toward -inf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numba as nb
import numpy as np

from ._composite import CompositeFormat, Encoded, blocks_view, unblock
from ._fast import absmax_rows
from ._format import as_float_array

_BASE = {
    4: [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0],  # E2M1 magnitudes by code
    3: [0.0, 1.0, 2.0, 4.0],
}
_SPECIALS = {4: [5.0, -5.0, 8.0, -8.0], 3: [3.0, -3.0, 6.0, -6.0]}
_UNIT_EXPONENT = {4: -1, 3: 0}  # grid values are integers times 2**this


def grid_by_code(bits: int, selector: int) -> np.ndarray:
    """Values of the 2**bits codes under one selector (code 100..0 is the special value)."""
    base = _BASE[bits]
    half = len(base)
    values = np.array(base + [-v for v in base])
    values[half] = _SPECIALS[bits][selector]
    return values


def grid_lowered(bits: int, selector: int) -> tuple[np.ndarray, int]:
    """The grid as integers times 2**exponent (what `BitMoDEncoded.lower` and hardware see)."""
    exponent = _UNIT_EXPONENT[bits]
    return (grid_by_code(bits, selector) * 2.0**-exponent).astype(np.int64), exponent


@nb.njit(cache=True, nogil=True, parallel=True)
def _choose_grids(groups, scales, ordered, order, codes, selectors):  # type: ignore[no-untyped-def]
    """Per group: the grid with least squared error (ties: lowest selector), and its codes.

    ordered[s] is grid s sorted ascending, order[s] the codes in that order; scales[s, g] > 0.
    x rounds to the grid value whose index counts the midpoints strictly below x / scale; the
    test x > mid * scale is exact (mid has few bits, scale is an fp16 value), so no division
    rounds first, and ties go down as in the reference.
    """
    n_grids, n_values = ordered.shape
    mids = (ordered[:, 1:] + ordered[:, :-1]) / 2
    for g in nb.prange(groups.shape[0]):
        best, best_err = 0, np.inf
        thresholds = np.empty(n_values - 1)
        for s in range(n_grids):
            for j in range(n_values - 1):
                thresholds[j] = mids[s, j] * scales[s, g]
            err = 0.0
            for i in range(groups.shape[1]):
                x = np.float64(groups[g, i])
                index = 0
                for j in range(n_values - 1):
                    index += thresholds[j] < x
                d = ordered[s, index] * scales[s, g] - x
                err += d * d
            if err < best_err:
                best, best_err = s, err
        selectors[g] = best
        for j in range(n_values - 1):
            thresholds[j] = mids[best, j] * scales[best, g]
        for i in range(groups.shape[1]):
            x = np.float64(groups[g, i])
            index = 0
            for j in range(n_values - 1):
                index += thresholds[j] < x
            codes[g, i] = order[best, index]


@dataclass(frozen=True)
class BitMoDFormat(CompositeFormat):
    element_bits: int = 4
    group_size: int = 128
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.element_bits not in (3, 4):
            raise ValueError(f"element_bits must be 3 or 4, got {self.element_bits}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if not self.name:
            object.__setattr__(self, "name", f"bitmod{self.element_bits}")

    @property
    def bits(self) -> float:
        return self.element_bits + (2 + 16) / self.group_size  # selector + fp16 scale per group

    def spec(self) -> dict[str, Any]:
        element = f"fp{self.element_bits}+special"
        return {"name": self.name, "bits": self.bits, "element": element, "block_size": self.group_size,
                "scale": "fp16", "scale_rule": "absmax, least-MSE grid"}  # fmt: skip

    def _quantize_grid(self, groups: np.ndarray, selector: int, fp16: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(codes, fp16 scale codes, squared error per group) for one grid."""
        values = grid_by_code(self.element_bits, selector)
        order = np.argsort(values)
        ordered = values[order]
        absmax = np.abs(groups).max(axis=-1)
        scale_codes = fp16.encode(np.where(absmax > 0, absmax, 1.0) / np.abs(values).max(), saturate=True)
        scale = fp16.decode(scale_codes)
        scale = np.where(scale > 0, scale, fp16.min_subnormal)
        mids = (ordered[1:] + ordered[:-1]) / 2
        index = np.searchsorted(mids, groups / scale[..., None], side="left")  # mid[i-1] < x <= mid[i]
        codes = order[index]
        error = ((ordered[index] * scale[..., None] - groups) ** 2).sum(axis=-1)
        return codes.astype(np.uint8), scale_codes, error

    def encode(self, x: Any, axis: int = -1) -> BitMoDEncoded:
        from ._registry import get

        fp16 = get("fp16")
        values = as_float_array(x, self.name)
        if not np.isfinite(values).all():
            raise ValueError(f"{self.name}: the input holds NaN or Inf; BitMoD grids have neither")
        groups, length = blocks_view(values, axis, self.group_size, "pad", self.name)
        rows = np.ascontiguousarray(groups.reshape(-1, self.group_size))
        grids = np.stack([grid_by_code(self.element_bits, s) for s in range(4)])
        order = np.argsort(grids, axis=1, kind="stable")
        ordered = np.take_along_axis(grids, order, axis=1)
        absmax = np.empty(rows.shape[0])
        absmax_rows(rows, absmax)
        scale_codes = fp16.encode(np.where(absmax > 0, absmax, 1.0)[None, :] / np.abs(grids).max(axis=1)[:, None],
                                  saturate=True)  # fmt: skip
        scales = fp16.decode(scale_codes)
        scales = np.where(scales > 0, scales, fp16.min_subnormal)
        codes = np.empty(rows.shape, np.uint8)
        selectors = np.empty(rows.shape[0], np.uint8)
        _choose_grids(rows, scales, ordered, order.astype(np.int64), codes, selectors)
        chosen = np.take_along_axis(scale_codes, selectors[None, :].astype(np.int64), axis=0)[0]
        return BitMoDEncoded(
            self, codes.reshape(groups.shape), selectors.reshape(groups.shape[:-1]),
            chosen.reshape(groups.shape[:-1]).astype(np.uint16), values.shape, axis % values.ndim, length,
        )  # fmt: skip


@dataclass(frozen=True)
class BitMoDEncoded(Encoded):
    """Codes (..., n_groups, group_size), selectors and fp16 scale codes (..., n_groups)."""

    format: BitMoDFormat
    codes: np.ndarray
    selectors: np.ndarray
    scales: np.ndarray
    shape: tuple[int, ...]
    axis: int
    length: int

    def lower(self) -> tuple[np.ndarray, np.ndarray]:
        """Per element: grid value as integer * 2**exponent (E2M1 steps of 0.5 are exponent -1)."""
        bits = self.format.element_bits
        table = np.stack([grid_lowered(bits, s)[0] for s in range(4)])
        sig = table[self.selectors[..., None], self.codes]
        return sig, np.full(sig.shape, _UNIT_EXPONENT[bits], np.int64)

    def lower_full(self) -> tuple[np.ndarray, np.ndarray]:
        from ._registry import get

        sig, exp = self.lower()
        scale_sig, scale_exp = get("fp16").lower(self.scales)
        full_sig, full_exp = sig * scale_sig[..., None], exp + scale_exp[..., None]
        return unblock(full_sig, self.shape, self.axis, self.length), unblock(
            full_exp, self.shape, self.axis, self.length
        )

    def decode(self) -> np.ndarray:
        from ._registry import get

        bits = self.format.element_bits
        table = np.stack([grid_by_code(bits, s) for s in range(4)])
        values = table[self.selectors[..., None], self.codes] * get("fp16").decode(self.scales)[..., None]
        return unblock(values, self.shape, self.axis, self.length)
