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

from amaranth import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ._array_config import SIZE_BITS
from ._bitserial import BitSerialArray
from ._requant_array import check_stage_widths, drive_stage, stage_config, stage_ports


class RequantBitSerial(wiring.Component):
    """Ports: beat (the bit-serial unit's); params, the settings and out as `hw.RequantArray`'s
    (`out_format` likewise); m_size, n_size, start : In (the layer's M and N); busy : Out(1)."""

    def __init__(self, a_format: Any, *, lanes: int = 8, cols: int = 4, group: int = 128, out_bits: int = 32,
                 bias_bits: int = 64, multiplier_bits: int = 16, n_max: int = 1024, m_max: int = 1024,
                 out_format: str | None = None) -> None:  # fmt: skip
        """`m_max` bounds M where it matters: the depth of an MX output's row buffer."""
        try:
            self.unit = BitSerialArray(a_format, lanes=lanes, cols=cols, group=group)
            self.unit._MustUse__silence = True  # elaborated by this component, or unused with it
            check_stage_widths(out_bits, bias_bits, multiplier_bits, n_max)
            if not 1 <= m_max < 1 << SIZE_BITS:
                raise ValueError(f"m_max must be between 1 and {(1 << SIZE_BITS) - 1}, got {m_max}")
            self.config = stage_config(self.unit.config, out_bits, bias_bits, multiplier_bits, n_max, out_format,
                                       m_max)  # fmt: skip
        except ValueError:
            self._MustUse__silence = True
            raise
        super().__init__({
            "beat": In(stream.Signature(self.unit.beat.payload.shape())),
            **stage_ports(self.config),
            "m_size": In(SIZE_BITS),
            "k_size": In(SIZE_BITS),
            "n_size": In(SIZE_BITS),
            "start": In(1),
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
