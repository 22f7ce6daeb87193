"""BitMoD decoder: a code and its group's 2-bit grid selector to (sig, exp), the twin of
`numerics.BitMoDEncoded.lower` (FP4 grids in steps of 0.5: exponent -1; FP3 grids: 0)."""

from __future__ import annotations

import numpy as np
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from numerics._bitmod import _UNIT_EXPONENT, grid_by_code


class BitMoDDecoder(wiring.Component):
    """code : In(bits); selector : In(2); sig : Out(signed(6)); exp_base is the constant exponent."""

    def __init__(self, element_bits: int = 4) -> None:
        if element_bits not in (3, 4):
            self._MustUse__silence = True
            raise ValueError(f"element_bits must be 3 or 4, got {element_bits}")
        self.element_bits = element_bits
        self.exp_base = _UNIT_EXPONENT[element_bits]
        self.table = [
            [int(v) for v in grid_by_code(element_bits, s) * 2.0 ** -self.exp_base] for s in range(4)
        ]  # fmt: skip
        width = int(np.abs(self.table).max()).bit_length() + 1
        super().__init__({"code": In(element_bits), "selector": In(2), "sig": Out(signed(width))})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        with m.Switch(self.selector):
            for selector, row in enumerate(self.table):
                with m.Case(selector), m.Switch(self.code):
                    for code, value in enumerate(row):
                        with m.Case(code):
                            m.d.comb += self.sig.eq(value)
        return m
