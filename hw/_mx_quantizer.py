"""OCP MX quantization of one block in hardware: the shared E8M0 scale from the block's amax (the
spec's floor rule) and every element rounded once, nearest even and saturating — the twin of
`numerics.BlockFormat.encode` for a block of exact fixed-point values (an accumulator's output).

    shared = clamp(floor(log2 amax) - emax_elem, -127, 127)    (-127, code 0x00, for a zero block)
    element_i = round_ne(v_i / 2**shared) saturated to the element's largest finite value

floor(log2 amax) is the leading one of the OR of the magnitudes (the largest magnitude has the
highest leading one), so no comparator tree is needed. Each element is shifted left by
`shared_max - shared` (never right: nothing is lost) and rounded by an `OutputRounder` whose lsb
exponent is then a constant.
"""

from __future__ import annotations

import functools
import math
import operator
from dataclasses import replace

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

import numerics
from numerics import BlockFormat, IntFormat, Minifloat, ScaleRule
from numerics._block import element_emax

from ._round import OutputRounder


def _is_mx(fmt: object) -> bool:
    """An E8M0-scaled block format on the OCP floor rule whose elements the output rounder takes."""
    if not isinstance(fmt, BlockFormat):
        return False
    element = fmt.element
    rounds = (isinstance(element, IntFormat) and element.signed) or (
        isinstance(element, Minifloat) and element.signed and element.subnormals and element.bits <= 32
    )
    return fmt.scale == numerics.get("e8m0") and fmt.scale_rule is ScaleRule.FLOOR and not fmt.tensor_scale and rounds


class MXQuantizer(wiring.Component):
    """Ports: values : In(ArrayLayout(signed(in_width), block)), each value v_i * 2**lsb_exponent;
    scale : Out(8), the E8M0 code; elements : Out(ArrayLayout(element bits, block)), the element
    codes. Combinational. `format` is the numerics BlockFormat at this block size (the golden
    model: `format.encode(values * 2.0**lsb_exponent)`)."""

    def __init__(self, fmt: BlockFormat | str, in_width: int, lsb_exponent: int, block: int | None = None) -> None:
        try:
            self._configure(fmt, in_width, lsb_exponent, block)
        except ValueError:
            self._MustUse__silence = True
            raise
        element = self.format.element
        super().__init__({"values": In(data.ArrayLayout(signed(in_width), self.block)), "scale": Out(8),
                          "elements": Out(data.ArrayLayout(element.bits, self.block))})  # fmt: skip

    def _configure(self, fmt: BlockFormat | str, in_width: int, lsb_exponent: int, block: int | None) -> None:
        try:
            resolved = numerics.get(fmt)
        except (ValueError, TypeError):
            resolved = None
        if not _is_mx(resolved):
            allowed = ", ".join(name for name in numerics.formats() if _is_mx(numerics.get(name)))
            shown = repr(fmt) if isinstance(fmt, str | int) else repr(getattr(fmt, "name", type(fmt).__name__))
            if isinstance(resolved, BlockFormat):  # a variant of a registered name: say what differs
                shown += (f" (element {resolved.element.name}, scale {resolved.scale.name}, scale_rule "
                          f"{resolved.scale_rule.value}, tensor_scale {resolved.tensor_scale})")  # fmt: skip
            raise ValueError(f"fmt must be an MX block format (E8M0 scale, OCP floor rule, signed int or minifloat "
                             f"elements): {allowed} or a BlockFormat like them, got {shown}")  # fmt: skip
        assert isinstance(resolved, BlockFormat)
        if not isinstance(in_width, int) or in_width < 2:
            raise ValueError(f"in_width must be an integer >= 2, got {in_width!r}")
        if not isinstance(lsb_exponent, int):
            raise ValueError(f"lsb_exponent must be an integer, got {lsb_exponent!r}")
        divisors = [d for d in range(1, resolved.block_size + 1) if resolved.block_size % d == 0]
        block = resolved.block_size if block is None else block
        if block not in divisors:
            raise ValueError(f"block must divide {resolved.name}'s block size {resolved.block_size} (one of "
                             f"{', '.join(map(str, divisors))}), got {block!r}")  # fmt: skip
        self.format = resolved if block == resolved.block_size else replace(resolved, block_size=block)
        self.in_width, self.lsb_exponent, self.block = in_width, lsb_exponent, block
        scale = self.format.scale
        assert isinstance(scale, Minifloat)
        # The scale exponents E8M0 holds (code 0 = 2**-127, 0xFE = 2**127) and those this input reaches.
        self.scale_low, self.scale_high = scale.emin, math.frexp(scale.max)[1] - 1
        offset = lsb_exponent - element_emax(self.format.element, self.format.element_exponent)
        self.shared_min, self.shared_max = (min(max(e, self.scale_low), self.scale_high)
                                            for e in (offset, in_width - 1 + offset))  # fmt: skip
        self._offset = offset

    def elaborate(self, platform: object) -> Module:
        m = Module()
        width = self.in_width
        magnitudes = []
        for i in range(self.block):
            value = self.values[i]
            magnitude = Signal(width, name=f"magnitude{i}")  # |-2**(width-1)| fits in width unsigned bits
            m.d.comb += magnitude.eq(Mux(value < 0, -value, value))
            magnitudes.append(magnitude)
        ored = Signal(width)
        m.d.comb += ored.eq(functools.reduce(operator.or_, magnitudes))
        top = OutputRounder._leading_one(m, ored, width)  # floor(log2 amax) - lsb_exponent
        bound = max(width, abs(self._offset), abs(self.scale_low), self.scale_high).bit_length() + 2
        raw = Signal(signed(bound))
        m.d.comb += raw.eq(top + self._offset)
        shared = Signal(signed(bound))  # clamped to E8M0's exponents
        m.d.comb += shared.eq(Mux(raw < self.scale_low, self.scale_low,
                                  Mux(raw > self.scale_high, self.scale_high, raw)))  # fmt: skip
        # A zero block takes the smallest scale (numerics: code 0x00); its elements are 0 at any scale.
        m.d.comb += self.scale.eq(Mux(ored == 0, 0, shared - self.scale_low))
        shift = Signal(range(self.shared_max - self.shared_min + 1))
        m.d.comb += shift.eq(self.shared_max - shared)
        # v << shift * 2**(lsb - shared_max) = v * 2**(lsb - shared); |v << shift| <= 2**width.
        lsb = self.lsb_exponent - self.shared_max - self.format.element_exponent
        for i in range(self.block):
            m.submodules[f"rounder{i}"] = rounder = OutputRounder(width + 1, lsb, self.format.element, saturate=True)
            m.d.comb += [rounder.acc.eq(self.values[i] << shift), self.elements[i].eq(rounder.code)]
        return m
