"""Block formats: OCP Microscaling (MX), generic block floating point, NVFP4 two-level scales.

Pipeline (OCP MX v1.0, section 6.3): blocks along the reduction axis -> block amax -> shared scale
-> elements rounded (nearest even, saturating) at that scale -> codes. The shared exponent comes
from the exponent bits of amax (frexp), never from a float log2.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import numpy as np

from ._composite import CompositeFormat, Encoded, blocks_view, pack_bits, unblock, unpack_bits
from ._fast import absmax_rows, int_from_scaled_rne
from ._format import ElementFormat, as_float_array
from ._int import IntFormat
from ._minifloat import Minifloat
from ._rounding import Rounding


class ScaleRule(enum.Enum):
    """How a power-of-two block scale 2**e is chosen from the block's amax.

    FLOOR (the OCP spec): e = floor(log2 amax) - emax_elem; maxima whose significand exceeds the
    element's saturate. CEIL: ceil(log2 amax) - emax_elem. EVEN: amax first rounded (nearest even)
    to the element's precision, then FLOOR. RCEIL (cuBLAS/Blackwell): the smallest e with
    max_elem * 2**e >= amax, so nothing saturates.
    """

    FLOOR = "floor"
    CEIL = "ceil"
    EVEN = "even"
    RCEIL = "rceil"


def element_emax(element: ElementFormat, element_exponent: int) -> int:
    """floor(log2) of the element's largest value (with its implicit scale)."""
    return int(np.frexp(element.max)[1]) - 1 + element_exponent


def element_precision(element: ElementFormat) -> int:
    """Fraction bits below the leading one at the top binade (EVEN rounds amax to this)."""
    if isinstance(element, Minifloat):
        return element.man_bits
    return element.bits - 2  # a two's complement int: the top binade holds [2**(b-2), 2**(b-1))


@dataclass(frozen=True)
class BlockFormat(CompositeFormat):
    """Blocks of `block_size` elements sharing one scale code (plus an optional tensor scale).

    value = element * 2**element_exponent * scale * tensor_scale. A power-of-two `scale` format
    (E8M0) uses `scale_rule`; any other (E4M3 for NVFP4) takes amax / max_elem rounded with
    `scale_rounding`, clamped to [scale.min_normal, scale.max]. The fp32 tensor scale is
    amax / (scale.max * max_elem): nearest even, rounded up below fp32's normal range (so tiny
    tensors keep their values), and an amax beyond scale.max * max_elem * fp32 max raises.
    """

    element: ElementFormat
    block_size: int = 32
    scale: ElementFormat = field(default=None)  # type: ignore[assignment]
    scale_rule: ScaleRule = ScaleRule.FLOOR
    element_exponent: int = 0
    tensor_scale: bool = False
    scale_rounding: Rounding = Rounding.NEAREST_EVEN
    partial: Literal["pad", "reject"] = "pad"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        if self.scale is None:
            raise ValueError("scale must be an element format (e8m0 for MX, fp8_e4m3 for NVFP4)")
        if not isinstance(self.scale_rule, ScaleRule):
            raise ValueError(
                f"scale_rule must be one of {', '.join(r.value for r in ScaleRule)}, got {self.scale_rule!r}"
            )
        if self.partial not in ("pad", "reject"):
            raise ValueError(f"partial must be 'pad' or 'reject', got {self.partial!r}")
        if self.scale_rounding not in (Rounding.NEAREST_EVEN, Rounding.TOWARD_POSITIVE):
            raise ValueError(f"scale_rounding must be nearest_even or toward_positive, got {self.scale_rounding}")
        if not self.name:
            object.__setattr__(self, "name", f"block{self.block_size}_{self.element.name}_{self.scale.name}")

    @property
    def power_of_two_scale(self) -> bool:
        return isinstance(self.scale, Minifloat) and self.scale.man_bits == 0

    @property
    def bits(self) -> float:
        return self.element.bits + self.scale.bits / self.block_size

    @property
    def element_max(self) -> float:
        """The largest element value, its implicit scale included (127/64 for MXINT8)."""
        return self.element.max * 2.0**self.element_exponent

    def block_scales(self, scale_codes: np.ndarray, tensor: float) -> np.ndarray:
        """What each block's elements are multiplied by: scale * tensor scale * 2**element_exponent."""
        return self.scale.decode(scale_codes) * tensor * 2.0**self.element_exponent

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "bits": self.bits, "element": self.element.name, "block_size": self.block_size,
                "scale": self.scale.name, "scale_rule": self.scale_rule.value}  # fmt: skip

    # -- scales -------------------------------------------------------------------------------
    def shared_exponent(self, amax: np.ndarray) -> np.ndarray:
        """The power-of-two scale exponent per block (before clamping to the scale format)."""
        frac, exp = np.frexp(amax)
        floor_log2 = exp.astype(np.int64) - 1
        emax = element_emax(self.element, self.element_exponent)
        if self.scale_rule is ScaleRule.FLOOR:
            return floor_log2 - emax
        if self.scale_rule is ScaleRule.CEIL:
            return floor_log2 + (frac != 0.5) - emax
        if self.scale_rule is ScaleRule.EVEN:
            steps = 1 << (element_precision(self.element) + 1)
            return floor_log2 + (np.rint(frac * steps) == steps) - emax
        top = self.element_max
        low = floor_log2 - emax
        return np.where(np.ldexp(top, low.astype(np.int32)) >= amax, low, low + 1)

    def _tensor_scale(self, amax: np.ndarray) -> np.ndarray:
        """The fp32 tensor scale code: s_t = amax / (scale max * element max), 1.0 for a tensor
        of zeros (NaN/Inf blocks do not count).

        In fp32's normal range s_t rounds to nearest even (torchao). Below it s_t rounds up onto
        fp32's subnormal grid (at least 2**-149), so a tiny tensor keeps its values and no block
        scale needs more than its max. An amax beyond scale max * element max * fp32 max has no
        fp32 tensor scale: ValueError.
        """
        fp32 = _fp32()
        finite = amax[np.isfinite(amax)]
        finite_max = float(finite.max()) if finite.size else 0.0
        top = self.scale.max * self.element_max
        limit = top * fp32.max  # exact in float64: 2688 * (2**128 - 2**104) for NVFP4
        if finite_max > limit:
            raise ValueError(
                f"{self.name}: amax {finite_max!r} is beyond the fp32 tensor scale: magnitudes must be <= "
                f"{self.scale.max:g} * {self.element_max:g} * fp32 max = {limit!r}"
            )
        ideal = finite_max / top if finite_max > 0 else 1.0
        rounding = Rounding.NEAREST_EVEN if ideal >= fp32.min_normal else Rounding.TOWARD_POSITIVE
        return fp32.encode(np.array(ideal), rounding=rounding)

    def _scales(self, amax: np.ndarray, tensor: float) -> np.ndarray:
        """Scale codes per block (NaN code where the block holds NaN or Inf)."""
        bad = ~np.isfinite(amax)
        safe = np.where(bad, 0.0, amax)
        if self.power_of_two_scale:
            assert isinstance(self.scale, Minifloat)
            low, high = self.scale.emin, int(np.frexp(self.scale.max)[1]) - 1
            shared = np.clip(self.shared_exponent(np.where(safe > 0, safe, 1.0)), low, high)
            shared = np.where(safe > 0, shared, low)
            codes = self.scale.encode(np.ldexp(1.0, shared.astype(np.int32)), saturate=True)
        else:
            ideal = safe / self.element_max / tensor
            clamped = np.clip(ideal, self.scale.min_normal, self.scale.max)
            codes = self.scale.encode(clamped, rounding=self.scale_rounding, saturate=True)
        if bad.any():
            if not self.scale.has_nan:
                raise ValueError(f"{self.name}: the input holds NaN or Inf and {self.scale.name} has no NaN")
            codes = np.where(bad, self.scale.encode(np.array(np.nan)), codes).astype(codes.dtype)
        return codes

    # -- encode / decode ---------------------------------------------------------------------
    def encode(self, x: Any, axis: int = -1) -> BlockEncoded:
        values = as_float_array(x, self.name)
        blocks, length = blocks_view(values, axis, self.block_size, self.partial, self.name)
        rows = blocks.reshape(-1, self.block_size)
        amax = np.empty(rows.shape[0])
        absmax_rows(rows, amax)
        amax = amax.reshape(blocks.shape[:-1])
        nonfinite = ~np.isfinite(blocks).all(axis=-1)
        amax[nonfinite] = np.nan
        tensor_code = None
        tensor = 1.0
        if self.tensor_scale:
            tensor_code = self._tensor_scale(amax)
            tensor = float(_fp32().decode(tensor_code))
        scale_codes = self._scales(amax, tensor)
        block_scale = self.block_scales(scale_codes, tensor)
        block_scale = np.where(nonfinite, 1.0, block_scale)
        clean = np.where(nonfinite[..., None], 0, blocks)
        elements = self._encode_elements(clean, block_scale)
        return BlockEncoded(self, elements, scale_codes, tensor_code, values.shape, axis % values.ndim, length)

    def _encode_elements(self, blocks: np.ndarray, block_scale: np.ndarray) -> np.ndarray:
        if isinstance(self.element, IntFormat):
            out = np.empty(blocks.size, self.element.code_dtype)
            int_from_scaled_rne(blocks.reshape(-1), block_scale.reshape(-1).astype(np.float64), self.block_size,
                                self.element.min_int, self.element.max_int, self.element.width, out)  # fmt: skip
            return out.reshape(blocks.shape)
        inverse = 1.0 / block_scale[..., None]
        if self.power_of_two_scale and (blocks.dtype == np.float64 or np.max(inverse, initial=1.0) < 2.0**127):
            scaled = blocks * inverse.astype(blocks.dtype)  # exact: float32 input stays on the fast path
        else:
            scaled = blocks.astype(np.float64) / block_scale[..., None]
        return self.element.encode(scaled, saturate=True)

    def unpack(self, element_bytes: np.ndarray, scale_bytes: np.ndarray, shape: tuple[int, ...], axis: int = -1,
               tensor_scale: np.ndarray | None = None) -> BlockEncoded:  # fmt: skip
        """Rebuild an encoding from `BlockEncoded.pack()` output."""
        moved = list(shape)
        length = moved.pop(axis % len(shape))
        n_blocks = -(-length // self.block_size)
        count = int(np.prod(moved, dtype=np.int64)) * n_blocks
        elements = unpack_bits(element_bytes, self.element.bits, count * self.block_size)
        scales = unpack_bits(scale_bytes, self.scale.bits, count)
        return BlockEncoded(self, elements.reshape(*moved, n_blocks, self.block_size).astype(self.element.code_dtype),
                            scales.reshape(*moved, n_blocks).astype(self.scale.code_dtype), tensor_scale,
                            tuple(shape), axis % len(shape), length)  # fmt: skip


@dataclass(frozen=True)
class BlockEncoded(Encoded):
    """Element codes (..., n_blocks, block_size) and scale codes (..., n_blocks); the block axis
    is the input's `axis`, moved last and split. `tensor_scale` is an fp32 code or None."""

    format: BlockFormat
    elements: np.ndarray
    scales: np.ndarray
    tensor_scale: np.ndarray | None
    shape: tuple[int, ...]
    axis: int
    length: int

    def _block_scale(self) -> np.ndarray:
        tensor = 1.0 if self.tensor_scale is None else float(_fp32().decode(self.tensor_scale))
        return self.format.block_scales(self.scales, tensor)

    def decode(self) -> np.ndarray:
        values = self.format.element.decode(self.elements) * self._block_scale()[..., None]
        return unblock(values, self.shape, self.axis, self.length)

    def lower(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per element (significand, exponent incl. element_exponent), per block scale (sig, exp),
        all in the blocked layout. The tensor scale, if any, is `tensor_scale`'s own lowering."""
        sig, exp = self.format.element.lower(self.elements)
        scale_sig, scale_exp = self.format.scale.lower(self.scales)
        return sig, exp + self.format.element_exponent, scale_sig, scale_exp

    def lower_full(self) -> tuple[np.ndarray, np.ndarray]:
        """Raises where a block has a NaN scale or an element is NaN/Inf; see lower_with_specials."""
        sig, exp, special = self.lower_with_specials()
        if special.any():
            raise ValueError(
                f"{self.format.name}: {int(np.count_nonzero(special))} elements are NaN or Inf (a NaN block scale or "
                "a NaN/Inf element code) and have no integer lowering; lower_with_specials() sets them aside"
            )
        return sig, exp

    def lower_with_specials(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every element of a block with a NaN scale is NaN (OCP MX: a NaN scale makes the whole
        block NaN); an element's NaN/Inf code times its scale is NaN or +-Inf. Those elements
        lower to significand 0 (the block scale of a NaN block lowers as 1.0)."""
        fmt = self.format
        block_scale = self._block_scale()[..., None]
        bad_scale = ~np.isfinite(block_scale)
        if fmt.element.has_inf or fmt.element.has_nan:
            with np.errstate(invalid="ignore"):  # an Inf element times a zero scale is NaN, as IEEE says
                values = fmt.element.decode(self.elements) * block_scale
            special = np.where(np.isfinite(values), 0.0, values)
        else:
            special = np.where(bad_scale, np.nan, np.zeros(self.elements.shape))
        clean = self
        if special.any():  # code 0 is zero in every element format; 1.0 stands in for a NaN scale
            elements = np.where(special != 0, 0, self.elements).astype(self.elements.dtype)
            scales = np.where(bad_scale[..., 0], fmt.scale.encode(np.array(1.0)), self.scales)
            clean = replace(self, elements=elements, scales=scales.astype(self.scales.dtype))
        sig, exp, scale_sig, scale_exp = clean.lower()
        sig = sig * scale_sig[..., None]
        exp = exp + scale_exp[..., None]
        if self.tensor_scale is not None:
            t_sig, t_exp = _fp32().lower(self.tensor_scale)
            sig, exp = sig * int(t_sig), exp + int(t_exp)
        return tuple(unblock(x, self.shape, self.axis, self.length) for x in (sig, exp, special))  # type: ignore[return-value]

    def pack(self) -> tuple[np.ndarray, np.ndarray]:
        """(element bytes, scale bytes): codes packed LSB first, element 0 in the low bits of
        byte 0 (4-bit: low nibble first); scales one per block, in block order. The tensor
        scale, if any, stays in `tensor_scale`."""
        return pack_bits(self.elements, self.format.element.bits), pack_bits(self.scales, self.format.scale.bits)


def _fp32() -> ElementFormat:
    from ._registry import get

    return get("fp32")
