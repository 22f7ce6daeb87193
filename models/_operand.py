"""One operand of a matrix product, read from a Brevitas QuantTensor: its format, its codes for
hardware, its scales, and the framework's own view of it (to check the extraction against).

The format is read from the tensor itself (bit width, sign, zero point, exponent and mantissa
bits, exponent bias, Inf/NaN encodings, group size), never taken from a name the user typed:
- integers: `int{b}` / `uint{b}` codes; one (integer) zero point per tensor stays with the codes
  and the array edge subtracts it (the datapath multiplies `code - zero_point`, a signed integer
  one bit wider, exactly); zero points per channel are subtracted before the array (`int{b+1}`
  codes);
- minifloats: the numerics minifloat with the same exponent and mantissa bits, bias and
  Inf/NaN policy (Brevitas' non-OCP E4M3, max 480, is `fp8_e4m3_finite`);
- groupwise (MX) tensors with power-of-two scales whose groups lie along K: a numerics block
  format with an E8M0 scale per group, the encoding built from Brevitas' own scales.
Scales that are not per-group are factored out of the product: one per tensor, one per row of
A (per token), or one per column of B (per output channel). Anything else is refused with
`Unmappable`, naming the quantizer and the reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch

import numerics

Layout = Callable[[torch.Tensor], torch.Tensor]  # the tensor in the layer's layout -> (M, K) or (K, N)


class Unmappable(ValueError):
    """A layer or operand that has no exact mapping to the arrays, with the reason."""


@dataclass(frozen=True)
class Operand:
    """A (M, K) or (K, N) operand: value = decode(codes) * scale (block formats carry their scales)."""

    format: Any  # numerics ElementFormat, or BlockFormat for groupwise tensors
    codes: Any  # integer codes laid out like the product, or a numerics.BlockEncoded along K
    scale: np.ndarray  # float64 holding float32 values: () per tensor, (M, 1) per row, (N,) per column; 1.0 in blocks
    grid: np.ndarray  # float64: the framework's operand on its own grid (int - zero point, minifloat; blocks: values)
    values: np.ndarray  # float32: the framework's dequantized operand (QuantTensor.value)
    description: str  # what was read, for people
    zero_point: int = 0  # subtracted from the codes at the array edge (one per tensor)

    def decoded(self) -> np.ndarray:
        """The codes' grid values (float64), laid out like the product (block scales applied)."""
        if isinstance(self.codes, numerics.BlockEncoded):
            return np.asarray(self.codes.decode(), dtype=np.float64)
        if isinstance(self.codes, numerics.OVPEncoded):  # the array multiplies the grid; the scale is `scale`
            return np.asarray(
                replace(self.codes, scale=np.full_like(self.codes.scale, 0x3F800000)).decode(), np.float64
            )
        return np.asarray(self.format.decode(self.codes), dtype=np.float64) - self.zero_point

    def dequantized(self) -> np.ndarray:
        """decode(codes) * scale in float64 (exact: the products of small grids and float32 scales)."""
        return self.decoded() * self.scale


def format_name(fmt: Any) -> str:
    """The registered numerics name of an equal format, else the format's own name."""
    for name in numerics.formats():
        candidate = numerics.get(name)
        if candidate == fmt:
            return name
    return str(getattr(fmt, "name", fmt))


def read(quant: Any, layout: Layout, axis: int, what: str, element: Any = None) -> Operand:
    """The operand of a QuantTensor `quant`; `layout` puts a tensor shaped like `quant.value`
    into the product's layout, `axis` is K in that layout (1 for A, 0 for B). `element` is the
    format of bitfab's own quantizers (posits, OliVe), which a QuantTensor cannot carry."""
    if quant is None or not hasattr(quant, "scale"):
        raise Unmappable(f"{what} is not quantized (a float tensor): the arrays multiply codes, so both operands "
                         "need a quantizer (set input_quant, or feed a QuantTensor)")  # fmt: skip
    kind = type(quant).__name__
    values = layout(quant.value.detach()).double()
    scale = layout(quant.scale.detach().expand_as(quant.value)).double()
    zero_point = layout(quant.zero_point.detach().expand_as(quant.value)).double()
    padded = scale == 0  # im2col's zero padding: no element there, take the line's scale
    if bool(padded.any()):
        scale = torch.where(padded, scale.amax(dim=axis, keepdim=True), scale)
    if not torch.isfinite(values).all():
        raise Unmappable(f"{what} has Inf or NaN values: the model's own forward pass produced them")
    if "Groupwise" in kind:
        return _groupwise(quant, values, scale, axis, what)
    if bool((zero_point != 0).any()) and "Float" in kind:
        raise Unmappable(f"{what}: minifloat tensors with a zero point have no exact mapping")
    factored = _factor(scale, axis, what)
    if element is not None:
        return _bitfab_element(element, values, factored, axis, what)
    if "Float" in kind:
        element = _minifloat(quant, what)
        grid = layout(quant.minifloat().detach()).double()
        codes = element.encode(grid.numpy())
        granularity = _granularity(factored, axis)
        desc = f"{format_name(element)} ({_float_policy(quant)}), scale {granularity}"
    elif "Int" in kind:
        grid = layout(quant.int().detach().double()).double() - zero_point
        points = torch.unique(quant.zero_point.detach())
        if points.numel() == 1 and float(points[0]) != 0 and float(points[0]) == round(float(points[0])):
            # one zero point: the stream carries the framework's own codes, the array edge subtracts it
            zp = int(points[0])
            element = numerics.IntFormat(int(quant.bit_width.item()), signed=bool(quant.signed_t.item()))
            codes = element.encode(grid.numpy() + zp)
            desc = f"{element.name}, zero point {zp} (subtracted at the array edge)"
            return Operand(element, codes, factored, grid.numpy(), values.float().numpy(),
                           f"{desc}, scale {_granularity(factored, axis)}", zp)  # fmt: skip
        element, desc = _integer(quant, zero_point, what)
        codes = element.encode(grid.numpy())
        if not np.array_equal(element.decode(codes), grid.numpy()):
            raise Unmappable(f"{what}: {kind} with bit width {int(quant.bit_width.item())} holds integers "
                             f"{grid.min():g}..{grid.max():g}, outside {element.name}")  # fmt: skip
        desc = f"{desc}, scale {_granularity(factored, axis)}"
    else:
        raise Unmappable(f"{what}: quantized tensors of type {kind} have no mapping (integer, minifloat and "
                         "groupwise tensors do)")  # fmt: skip
    if _power_of_two(factored):
        desc += " (power of two)"
    return Operand(element, codes, factored, grid.numpy(), values.float().numpy(), desc)


def _factor(scale: torch.Tensor, axis: int, what: str) -> np.ndarray:
    """A scale laid out like the product, factored out of the sum over K: (), (M, 1) or (N,)."""
    along_k = scale.amax(dim=axis) != scale.amin(dim=axis)
    if bool(along_k.any()):
        raise Unmappable(f"{what}: the scale varies along the reduction axis (K) without forming power-of-two "
                         "groups, so it cannot be applied after the product")  # fmt: skip
    per_line = scale.select(axis, 0).numpy().astype(np.float32).astype(np.float64)
    if np.all(per_line == per_line.flat[0]):
        return np.array(per_line.flat[0])
    return per_line.reshape(-1, 1) if axis == 1 else per_line.reshape(-1)


def _granularity(scale: np.ndarray, axis: int) -> str:
    if scale.ndim == 0:
        return "per tensor"
    return "per row (token)" if axis == 1 else "per output channel"


def _power_of_two(scale: np.ndarray) -> bool:
    mantissa, _ = np.frexp(scale)
    return bool(np.all(mantissa == 0.5))


def _integer(quant: Any, zero_point: torch.Tensor, what: str) -> tuple[numerics.IntFormat, str]:
    bits, signed = int(quant.bit_width.item()), bool(quant.signed_t.item())
    name = f"{'' if signed else 'u'}int{bits}"
    if not bool((zero_point == zero_point.round()).all()):
        raise Unmappable(f"{what}: {name} with a fractional zero point has no exact integer mapping")
    if not bool((zero_point != 0).any()):
        if signed and bits == 1:  # Brevitas' binary quantizers: +-1, which a 1-bit two's complement cannot hold
            return numerics.IntFormat(2), "bipolar +-1 (1-bit signed) as int2"
        return numerics.IntFormat(bits, signed=signed), name
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    lowest, highest = low - float(zero_point.max()), high - float(zero_point.min())
    wider = numerics.IntFormat(bits + 1)
    if lowest < wider.min_int or highest > wider.max_int:
        raise Unmappable(f"{what}: {name} with zero points up to {float(zero_point.abs().max()):g} leaves "
                         f"[{lowest:g}, {highest:g}], beyond int{bits + 1}")  # fmt: skip
    points = np.unique(zero_point.numpy())
    shown = f"{points[0]:g}" if points.size == 1 else f"per channel ({points.size} distinct values)"
    return wider, f"{name}, zero point {shown} (code - zero point as int{bits + 1})"


_POLICIES = {numerics.Specials.FINITE: "no Inf/NaN", numerics.Specials.FN: "NaN only, OCP",
             numerics.Specials.IEEE: "IEEE Inf/NaN"}  # fmt: skip


def _float_policy(quant: Any) -> str:
    saturating = bool(quant.saturating_t.item()) if hasattr(quant, "saturating_t") else True
    return f"{'saturating' if saturating else 'non-saturating'}, bias {int(quant.exponent_bias.item())}"


def _minifloat(quant: Any, what: str) -> numerics.Minifloat:
    e, m = int(quant.exponent_bit_width.item()), int(quant.mantissa_bit_width.item())
    bias, signed = int(quant.exponent_bias.item()), bool(quant.signed_t.item())
    nan, inf = quant.nan_values, quant.inf_values
    ones, zeros = "1" * m, "0" * m
    all_other = {format(v, f"0{m}b") for v in range(1, 2**m)} if m else set()
    if nan is None and inf is None:
        specials = numerics.Specials.FINITE
    elif inf is None and tuple(nan) == (ones,):
        specials = numerics.Specials.FN
    elif inf is not None and tuple(inf) == (zeros,) and nan is not None and set(nan) == all_other:
        specials = numerics.Specials.IEEE
    else:
        raise Unmappable(f"{what}: minifloat e{e}m{m} with NaN mantissas {nan} and Inf mantissas {inf} (in the "
                         "top exponent) is none of: no specials, OCP NaN-only (all ones), IEEE")  # fmt: skip
    default_bias = 2 ** (e - 1) - 1
    suffix = {numerics.Specials.FINITE: "_finite", numerics.Specials.FN: "fn", numerics.Specials.IEEE: ""}[specials]
    name = f"{'' if signed else 'u'}fp{int(signed) + e + m}_e{e}m{m}{suffix}" + (
        "" if bias == default_bias else f"_bias{bias}"
    )
    try:
        fmt = numerics.Minifloat(e, m, bias=None if bias == default_bias else bias, specials=specials, signed=signed,
                                 name=name)  # fmt: skip
    except ValueError as error:
        raise Unmappable(f"{what}: {error}") from None
    registered = format_name(fmt)
    return numerics.get(registered) if registered != name else fmt


def _groupwise(quant: Any, values: torch.Tensor, scale: torch.Tensor, axis: int, what: str) -> Operand:
    """A groupwise (MX) tensor as a numerics block format along K, from Brevitas' own scales."""
    group = int(quant.group_size)
    k = values.shape[axis]
    if k % group:
        raise Unmappable(f"{what}: groups of {group} along K = {k} leave a partial group (K must be a multiple)")
    blocks = scale.movedim(axis, -1).reshape(*scale.movedim(axis, -1).shape[:-1], k // group, group)
    if bool((blocks.amax(dim=-1) != blocks.amin(dim=-1)).any()):
        raise Unmappable(f"{what}: its groups of {group} do not lie along the product's reduction axis K "
                         "(group_dim must be the input-feature / channel axis)")  # fmt: skip
    moved_values = values.movedim(axis, -1)
    all_zero = (moved_values.reshape(*moved_values.shape[:-1], k // group, group) == 0).all(dim=-1)
    # an all-zero group's scale is Brevitas' clamped epsilon, not a power of two; any scale gives its zeros
    block_scale = torch.where(all_zero, torch.ones_like(blocks[..., 0]), blocks[..., 0])
    scale = torch.where(all_zero.repeat_interleave(group, dim=-1).movedim(-1, axis), 1.0, scale)
    exponent = torch.log2(block_scale)
    if bool((exponent != exponent.round()).any()):
        raise Unmappable(f"{what}: group scales that are not powers of two have no E8M0 encoding")
    if "Float" in type(quant).__name__:
        element: Any = _minifloat(quant, what)
        element_exponent = 0
    else:
        bits, signed = int(quant.bit_width.item()), bool(quant.signed_t.item())
        if not signed or bool((quant.zero_point != 0).any()):
            raise Unmappable(f"{what}: groupwise integers must be signed with no zero point")
        element, element_exponent = numerics.IntFormat(bits), -(bits - 2)
    e8m0 = numerics.get("e8m0")
    scale_exponent = exponent - element_exponent
    if bool((scale_exponent.abs() > 127).any()):
        raise Unmappable(f"{what}: group scales 2**{int(scale_exponent.min())}..2**{int(scale_exponent.max())} "
                         "exceed E8M0's 2**-127..2**127")  # fmt: skip
    block_format = numerics.BlockFormat(element, group, e8m0, element_exponent=element_exponent,
                                        name=f"mx_{format_name(element)}_g{group}")  # fmt: skip
    grid = values / scale  # exact: power-of-two scales; integer elements are Brevitas' int()
    moved = grid.movedim(axis, -1)
    elements = element.encode(moved.reshape(*moved.shape[:-1], k // group, group).numpy())
    scales = (scale_exponent + 127).to(torch.int64).numpy().astype(e8m0.code_dtype)
    encoded = numerics.BlockEncoded(block_format, elements, scales, None, tuple(values.shape), axis, k)
    desc = f"{format_name(element)} in groups of {group} along K with power-of-two (E8M0) scales"
    return Operand(block_format, encoded, np.array(1.0), values.numpy(), values.float().numpy(), desc)


def _bitfab_element(element: Any, values: torch.Tensor, scale: np.ndarray, axis: int, what: str) -> Operand:
    """Posit and OliVe operands of bitfab's own quantizers: the grid is value / scale (posits: exact,
    power-of-two scales; OliVe: rounded to its integers, as Brevitas' `.int()`); OliVe pairs run
    along K for A (one scale per row) and along N for B (the array's lanes)."""
    grid = values.numpy() / scale
    if isinstance(element, numerics.Posit):
        codes = element.encode(grid)
        desc = f"{element.name} (bitfab's posit quantizer), scale {_granularity(scale, axis)}"
    elif isinstance(element, numerics.OVPFormat):
        grid = np.rint(grid)  # the framework's integers (Brevitas' .int()): fp32 scales make value / scale inexact
        if axis == 1:
            rows = replace(element, channel_axis=0)  # keeps every option of the format
            row_scales = np.broadcast_to(scale.astype(np.float32).reshape(-1), (values.shape[0],)).copy()
            codes = rows.encode(values.numpy(), axis=1, scale=row_scales)
        elif scale.ndim:
            raise Unmappable(f"{what}: OliVe weights pair along the output channels, so they take one scale")
        else:
            codes = element.encode(values.numpy(), axis=1, scale=np.array(np.float32(scale)))
        desc = f"{element.name} pairs along {'K' if axis == 1 else 'N'} (bitfab's OliVe quantizer), scale " \
            f"{_granularity(scale, axis)}"  # fmt: skip
    else:
        raise Unmappable(f"{what}: bitfab quantizer of {element!r} has no operand reader")
    return Operand(element, codes, scale, grid, values.float().numpy(), desc)
