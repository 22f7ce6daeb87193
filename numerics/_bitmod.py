"""BitMoD mixture of datatypes (HPCA 2025): per group, the best of four FP4 (or FP3) grids.

Each grid is FP4 E2M1 (FP3: {0, +-1, +-2, +-4}) whose redundant -0 code stands for one special
value: +5, -5 ("extra resolution"), +8, -8 ("extra asymmetry"); FP3: +3, -3, +6, -6. A 2-bit
selector per group names the grid, chosen by least squared error; the scale is
absmax / max|grid|, stored as fp16. Rounding follows the reference: ties toward -inf.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._composite import CompositeFormat, Encoded, blocks_view, unblock
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
        values = as_float_array(x, self.name).astype(np.float64)
        if not np.isfinite(values).all():
            raise ValueError(f"{self.name}: the input holds NaN or Inf; BitMoD grids have neither")
        groups, length = blocks_view(values, axis, self.group_size, "pad", self.name)
        best = [self._quantize_grid(groups, s, fp16) for s in range(4)]
        errors = np.stack([b[2] for b in best])
        selector = np.argmin(errors, axis=0)  # ties: the lowest selector
        codes = np.choose(selector[..., None], [b[0] for b in best]).astype(np.uint8)
        scales = np.choose(selector, [b[1] for b in best]).astype(np.uint16)
        return BitMoDEncoded(self, codes, selector.astype(np.uint8), scales, values.shape, axis % values.ndim, length)


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
        table = np.stack([grid_by_code(bits, s) for s in range(4)]) * 2.0 ** -_UNIT_EXPONENT[bits]
        sig = table[self.selectors[..., None], self.codes].astype(np.int64)
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
