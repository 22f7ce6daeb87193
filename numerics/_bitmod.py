"""BitMoD mixture of datatypes (HPCA 2025): per group, the best of four FP4 (or FP3) grids.

Each grid is FP4 E2M1 (FP3: {0, +-1, +-2, +-4}) whose redundant -0 code stands for one special
value: +5, -5 ("extra resolution"), +8, -8 ("extra asymmetry"); FP3: +3, -3, +6, -6. A 2-bit
selector per group names the grid; each grid's scale is absmax / max|grid|, stored as fp16;
rounding ties go toward -inf and ties between grids to the lower selector.

Two rules pick the codes (`arithmetic`):
- "fp16" (`bitmod4`, `bitmod3`): the reference (BitMoD-HPCA-25, `quant_weight.py`,
  `search_datatype` over `quant_datatype`) bit for bit, which runs its fp16 model in fp16 tensor
  ops. Per grid, in the reference's units (FP4 grids doubled to integers, max 12 or 16):
  w = fp16(x); scale = clamp(fp16(absmax / max|grid|), fp16(1e-5), 1e4); the quotient
  fp16(w / scale) rounds to the grid value with mid[i-1] < q <= mid[i]; the group's error is
  fp16(mean(fp16(fp16(fp16(v * scale) - w) ** 2))), the mean summed in fp32, divided in fp32 and
  rounded to fp16 (torch's fp16 mean); a grid wins with an error strictly below the running best,
  which starts at 1000. Where no grid beats 1000 (|w| in the hundreds) the reference outputs zeros;
  here the grid with least exact squared error wins instead. The stored scale is the reference's
  times 2 for FP4 (its units are half of E2M1's), so decode gives v * scale exactly, where the
  reference keeps fp16(v * scale).
- "exact" (`bitmod4_exact`, `bitmod3_exact`): the idealised rule on the input as given: the
  quotient is compared with the midpoints exactly, the least exact squared error wins; a zero
  group's scales are fp16(1 / max|grid|) (its codes decode to 0 on any scale), a scale that rounds
  to 0 in fp16 becomes the least fp16 subnormal, and a group no grid's fp16 scale can reach
  (absmax >= 65520 * max|grid|) is refused rather than saturated.
"""

from __future__ import annotations

import functools
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


_ARITHMETIC = ("fp16", "exact")
_SCALE_CLAMP = (np.float16(1e-5), np.float16(1e4))  # the reference's scale_fp.clamp(min=1e-5, max=1e4)
_START_ERROR = np.float16(1000.0)  # the reference's initial best error per group


@functools.cache
def _fp16_grid_index(bits: int, selector: int) -> np.ndarray:
    """The sorted grid's index of every fp16 bit pattern q (reference units): mid[i-1] < q <= mid[i]
    (NaN patterns never occur as quotients)."""
    grid = np.sort(grid_by_code(bits, selector)) / 2.0 ** _UNIT_EXPONENT[bits]
    every_fp16 = np.arange(1 << 16).astype(np.uint16).view(np.float16).astype(np.float64)
    return np.searchsorted((grid[1:] + grid[:-1]) / 2, every_fp16, side="left").astype(np.uint8)


def _fp16_choose_grids(w: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The reference's arithmetic on fp16 groups w (n, size): (codes, selectors, fp16 scale codes).

    Every step rounds to fp16 as torch's fp16 ops do: a quotient or product of fp16 values taken in
    float32 (or float64) and rounded once to fp16 is the correctly rounded fp16 result, and numpy's
    float16 arithmetic works that way. The mean sums the fp16 squares exactly (float64 holds the
    sum), rounds it to fp32 as torch's fp32 accumulator does, divides in fp32 and rounds to fp16.
    """
    n, size = w.shape
    unit = 2.0 ** _UNIT_EXPONENT[bits]  # bitfab value = reference value * unit
    w32 = w.astype(np.float32)
    absmax = np.abs(w32).max(axis=-1)
    codes = np.empty((4, n, size), np.uint8)
    scales = np.empty((4, n), np.float16)
    errors = np.empty((4, n), np.float16)
    with np.errstate(over="ignore", invalid="ignore"):  # v * scale may round past 65504 near the top of fp16
        for s in range(4):
            values = grid_by_code(bits, s)
            order = np.argsort(values, kind="stable")
            grid = values[order] / unit
            scale = np.clip((absmax / np.float32(np.abs(grid).max())).astype(np.float16), *_SCALE_CLAMP)
            quotient = (w32 / scale[:, None].astype(np.float32)).astype(np.float16)
            index = _fp16_grid_index(bits, s)[quotient.view(np.uint16)]
            difference = grid.astype(np.float16)[index] * scale[:, None] - w
            squares = difference * difference
            total = squares.sum(axis=-1, dtype=np.float64).astype(np.float32)
            errors[s] = (total / np.float32(size)).astype(np.float16)
            scales[s], codes[s] = scale, order.astype(np.uint8)[index]
    selectors = np.zeros(n, np.int64)
    best = np.full(n, _START_ERROR)
    for s in range(4):
        better = errors[s] < best
        selectors[better], best[better] = s, errors[s][better]
    unbeaten = np.flatnonzero(~(errors < _START_ERROR).any(axis=0))
    if unbeaten.size:  # the reference outputs zeros here; take the least exact squared error instead
        w64 = w[unbeaten].astype(np.float64)
        exact = np.empty((4, unbeaten.size))
        for s in range(4):
            scale = scales[s, unbeaten, None].astype(np.float64) / unit
            exact[s] = ((grid_by_code(bits, s)[codes[s, unbeaten]] * scale - w64) ** 2).sum(axis=-1)
        selectors[unbeaten] = exact.argmin(axis=0)  # ties: the lower selector
    rows = np.arange(n)
    chosen = (scales[selectors, rows].astype(np.float64) / unit).astype(np.float16).view(np.uint16)
    return codes[selectors, rows], selectors.astype(np.uint8), chosen


@dataclass(frozen=True)
class BitMoDFormat(CompositeFormat):
    element_bits: int = 4
    group_size: int = 128
    arithmetic: str = "fp16"  # "fp16": the reference's rounding and selection; "exact": the idealised rule
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.element_bits not in (3, 4):
            raise ValueError(f"element_bits must be 3 or 4, got {self.element_bits}")
        if self.group_size < 1:
            raise ValueError(f"group_size must be >= 1, got {self.group_size}")
        if self.arithmetic not in _ARITHMETIC:
            raise ValueError(f"arithmetic must be 'fp16' or 'exact', got {self.arithmetic!r}")
        if not self.name:
            suffix = "_exact" if self.arithmetic == "exact" else ""
            object.__setattr__(self, "name", f"bitmod{self.element_bits}{suffix}")

    @property
    def bits(self) -> float:
        return self.element_bits + (2 + 16) / self.group_size  # selector + fp16 scale per group

    def spec(self) -> dict[str, Any]:
        element = f"fp{self.element_bits}+special"
        rule = "absmax, least-MSE grid" if self.arithmetic == "exact" else "absmax, least fp16-MSE grid (reference)"
        return {"name": self.name, "bits": self.bits, "element": element, "block_size": self.group_size,
                "scale": "fp16", "scale_rule": rule}  # fmt: skip

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
        if self.arithmetic == "fp16":  # the reference's model holds fp16 weights
            with np.errstate(over="ignore"):
                rounded = values.astype(np.float16)
            if np.isinf(rounded).any():
                raise ValueError(f"{self.name}: the reference computes in fp16, so |x| must be below 65520, "
                                 f"got {np.abs(values).max():g}")  # fmt: skip
            groups, length = blocks_view(rounded, axis, self.group_size, "pad", self.name)
            codes, selectors, chosen = _fp16_choose_grids(groups.reshape(-1, self.group_size), self.element_bits)
            return BitMoDEncoded(
                self, codes.reshape(groups.shape), selectors.reshape(groups.shape[:-1]),
                chosen.reshape(groups.shape[:-1]), values.shape, axis % values.ndim, length,
            )  # fmt: skip
        groups, length = blocks_view(values, axis, self.group_size, "pad", self.name)
        rows = np.ascontiguousarray(groups.reshape(-1, self.group_size))
        grids = np.stack([grid_by_code(self.element_bits, s) for s in range(4)])
        order = np.argsort(grids, axis=1, kind="stable")
        ordered = np.take_along_axis(grids, order, axis=1)
        absmax = np.empty(rows.shape[0])
        absmax_rows(rows, absmax)
        reach = 65520.0 * np.abs(grids).max()  # from here on every grid's fp16 scale would saturate
        if absmax.max(initial=0.0) >= reach:
            raise ValueError(f"{self.name}: a group's absmax {absmax.max():g} is beyond every grid's fp16 scale; "
                             f"|x| must be below {reach:g}")  # fmt: skip
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
