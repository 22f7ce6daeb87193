"""The bit-serial GEMM unit with the output stage on its result lanes (`hw.RequantArray`'s stage):
weight-only layers (INT8 activations, INT2..8 / FP4 / BitMoD weights) in a network.

The unit emits a fold of P output channels as M beats, like a weight-stationary array, so the same
parameter memory and fold counter serve it; `m_size` and `n_size` (sampled on `start`) tell the
stage the layer's M and N. The unit cannot be stalled: its parameters must have arrived before its
first result (they stream in from `start`, one fold per cycle, long before a group's terms are
summed), and `out` is not stalled (a lost beat shows as a missing result, never a wrong one).
"""

from __future__ import annotations

from typing import Any

from amaranth import Module, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ._array_config import SIZE_BITS
from ._bitserial import BitSerialArray
from ._requant_array import RequantConfig, check_stage_widths, drive_stage


class RequantBitSerial(wiring.Component):
    """Ports: beat (the bit-serial unit's); params, shift, zero_point, low, high, out as
    `hw.RequantArray`'s; m_size, n_size, start : In (the layer's M and N); busy : Out(1)."""

    def __init__(self, a_format: Any, *, lanes: int = 8, cols: int = 4, group: int = 128, out_bits: int = 32,
                 bias_bits: int = 64, multiplier_bits: int = 16, n_max: int = 1024) -> None:  # fmt: skip
        try:
            self.unit = BitSerialArray(a_format, lanes=lanes, cols=cols, group=group)
            self.unit._MustUse__silence = True  # elaborated by this component, or unused with it
            check_stage_widths(out_bits, bias_bits, multiplier_bits, n_max)
        except ValueError:
            self._MustUse__silence = True
            raise
        self.config = RequantConfig(self.unit.config, out_bits, bias_bits, multiplier_bits, n_max)  # type: ignore[arg-type]
        lane = data.StructLayout({"bias": data.ArrayLayout(signed(bias_bits), cols),
                                  "multiplier": data.ArrayLayout(unsigned(multiplier_bits), cols)})  # fmt: skip
        super().__init__({
            "beat": In(stream.Signature(self.unit.beat.payload.shape())),
            "params": In(stream.Signature(lane)),
            "shift": In(range(self.config.shift_max + 1)),
            "zero_point": In(signed(out_bits)),
            "low": In(signed(out_bits)),
            "high": In(signed(out_bits)),
            "m_size": In(SIZE_BITS),
            "k_size": In(SIZE_BITS),
            "n_size": In(SIZE_BITS),
            "start": In(1),
            "out": Out(stream.Signature(data.ArrayLayout(signed(out_bits), cols))),
            "busy": Out(1),
        })  # fmt: skip

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.unit = unit = self.unit
        wiring.connect(m, wiring.flipped(self.beat), unit.beat)
        armed = Signal()  # from `start` on, the stage takes the layer's parameters
        with m.If(self.start & ~self.busy):
            m.d.sync += armed.eq(1)
        accs = [unit.out.payload[j] for j in range(unit.config.cols)]
        drive_stage(m, self, unit.out, accs, self.m_size, ready_for_params=armed)
        m.d.comb += self.busy.eq(unit.busy | self.out.valid)
        return m
