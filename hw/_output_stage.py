"""A layer's output stage: bias, integer requantization, activation and rounding to the next
layer's INT codes — the hardware twin of `numerics.requantize`.

    total = (acc + bias) * multiplier + zero_point * 2**shift, clamped to the activation's bounds
    times 2**shift, then rounded once (nearest, ties to even) and saturated by `OutputRounder`

The shift, zero point and activation are the layer's constants; bias and multiplier are ports,
so a lane serves whichever output channel a fold puts on it (per-channel requantization). Clamping
before the rounding equals clamping after it: the bounds are integers, exact at 2**shift.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from numerics import IntFormat
from numerics._requant import stage_bounds

from ._round import OutputRounder


class OutputStage(wiring.Component):
    """Ports: acc : In(signed(acc_width)); bias : In(signed(bias_width)); multiplier :
    In(unsigned(multiplier_bits)); code : Out(fmt.bits). Combinational."""

    def __init__(self, acc_width: int, fmt: IntFormat | str, shift: int, *, bias_width: int = 32,
                 multiplier_bits: int = 31, zero_point: int = 0, activation: str = "identity",
                 clamp: tuple[int, int] | None = None) -> None:  # fmt: skip
        try:
            self._configure(acc_width, fmt, shift, bias_width, multiplier_bits, zero_point, activation, clamp)
        except ValueError:
            self._MustUse__silence = True
            raise
        super().__init__({"acc": In(signed(acc_width)), "bias": In(signed(bias_width)),
                          "multiplier": In(unsigned(multiplier_bits)), "code": Out(self.format.bits)})  # fmt: skip

    def _configure(self, acc_width: int, fmt: IntFormat | str, shift: int, bias_width: int, multiplier_bits: int,
                   zero_point: int, activation: str, clamp: tuple[int, int] | None) -> None:  # fmt: skip
        if min(acc_width, bias_width, multiplier_bits) < 1 or shift < 0:
            raise ValueError(f"widths must be >= 1 and shift >= 0, got acc_width={acc_width}, bias_width="
                             f"{bias_width}, multiplier_bits={multiplier_bits}, shift={shift}")  # fmt: skip
        self.format, self.low, self.high = stage_bounds(fmt, zero_point, activation, clamp)
        self.acc_width, self.shift, self.activation = acc_width, shift, activation
        self.bias_width, self.multiplier_bits, self.zero_point = bias_width, multiplier_bits, zero_point

    def elaborate(self, platform: object) -> Module:
        m = Module()
        fmt, shift = self.format, self.shift
        width = max(self.acc_width, self.bias_width) + 1 + self.multiplier_bits + 1
        width = max(width, (abs(self.zero_point) << shift).bit_length() + 2) + 1
        total = Signal(signed(width))
        m.d.comb += total.eq((self.acc + self.bias) * self.multiplier + (self.zero_point << shift))
        bounded = total  # identity: the rounder saturates to the format's range
        if self.activation != "identity":
            bounded = Mux(total < (self.low << shift), self.low << shift, bounded)
            bounded = Mux(total > (self.high << shift), self.high << shift, bounded)
        clamped = Signal(signed(width))
        m.d.comb += clamped.eq(bounded)
        m.submodules.rounder = rounder = OutputRounder(width, -shift, fmt, saturate=True)
        m.d.comb += [rounder.acc.eq(clamped), self.code.eq(rounder.code)]
        return m
