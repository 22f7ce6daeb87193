"""OliVe hardware: the pair decoder (two codes in, two (int, exp) out) and a two-lane MAC PE.

The decoder is the twin of `numerics.OVPEncoded.lower`: a victim is 0, an outlier is
(2**M + m) * 2**(e + 2), a normal element its two's complement int. The PE adds
a0*b0 + a1*b1 per cycle, in units of the int grid (the scales are applied outside, once).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from numerics import OVPFormat

_EXP_WIDTH = 3  # exponents 0 (normal) or 2..5 (outliers)


class OVPPairDecoder(wiring.Component):
    """c0, c1 : In(bits); sig0, sig1 : Out(signed(bits + 1)); exp0, exp1 : Out(3)."""

    def __init__(self, element_bits: int) -> None:
        self.format = OVPFormat(element_bits)
        self.element_bits = element_bits
        b = element_bits
        super().__init__({"c0": In(b), "c1": In(b), "sig0": Out(signed(b + 1)), "exp0": Out(_EXP_WIDTH),
                          "sig1": Out(signed(b + 1)), "exp1": Out(_EXP_WIDTH)})  # fmt: skip

    def elaborate(self, platform: object) -> Module:
        m = Module()
        b = self.element_bits
        mant = b - 3
        victim = 1 << (b - 1)
        for code, partner, sig, exp in (
            (self.c0, self.c1, self.sig0, self.exp0),
            (self.c1, self.c0, self.sig1, self.exp1),
        ):
            magnitude = Cat(code[:mant], Const(1, 1))  # 2**M + m
            outlier = Mux(code[b - 1], -magnitude, magnitude)
            with m.If(code == victim):
                m.d.comb += [sig.eq(0), exp.eq(0)]
            with m.Elif(partner == victim):
                m.d.comb += [sig.eq(outlier), exp.eq(code[mant : mant + 2] + 2)]
            with m.Else():
                m.d.comb += [sig.eq(code.as_signed()), exp.eq(0)]
        return m


class OVPMacPE(wiring.Component):
    """a, b : In(2 * bits) (pair codes, element 0 in the low bits); en, clear : In(1);
    acc : Out(signed(acc_width)) in int-grid units; valid : Out(1)."""

    def __init__(self, element_bits: int = 4, k_pairs: int = 1024) -> None:
        if element_bits not in (4, 8):
            self._MustUse__silence = True
            raise ValueError(f"element_bits must be 4 or 8, got {element_bits}")
        if k_pairs < 1:
            self._MustUse__silence = True
            raise ValueError(f"k_pairs must be >= 1, got {k_pairs}")
        self.element_bits, self.k_pairs = element_bits, k_pairs
        top = float(OVPFormat(element_bits).grid[0][-1])
        self.acc_width = (2 * k_pairs * int(top) ** 2).bit_length() + 1
        self.latency = 2
        b = element_bits
        super().__init__({"a": In(2 * b), "b": In(2 * b), "en": In(1), "clear": In(1),
                          "acc": Out(signed(self.acc_width)), "valid": Out(1)})  # fmt: skip

    def elaborate(self, platform: object) -> Module:
        m = Module()
        b = self.element_bits
        m.submodules.a_pair = a_dec = OVPPairDecoder(b)
        m.submodules.b_pair = b_dec = OVPPairDecoder(b)
        m.d.comb += [a_dec.c0.eq(self.a[:b]), a_dec.c1.eq(self.a[b:]), b_dec.c0.eq(self.b[:b]), b_dec.c1.eq(self.b[b:])]
        lane_width = 2 * (b + 1) + 2 * 5 + 1
        lanes = Signal(signed(lane_width + 1))
        en, clear = Signal(), Signal()
        m.d.sync += [
            lanes.eq(((a_dec.sig0 * b_dec.sig0) << (a_dec.exp0 + b_dec.exp0))
                     + ((a_dec.sig1 * b_dec.sig1) << (a_dec.exp1 + b_dec.exp1))),
            en.eq(self.en),
            clear.eq(self.clear),
        ]  # fmt: skip
        with m.If(en | clear):
            m.d.sync += self.acc.eq(Mux(clear, 0, self.acc) + Mux(en, lanes, 0))
        m.d.sync += self.valid.eq(en)
        return m
