"""Format decoders: the hardware twin of `numerics` `lower`.

Every decoder turns a code into (sig, exp, nan, inf, neg) with value = sig * 2**(exp + exp_base):
`sig` signed, `exp` an unsigned offset, `exp_base` a constant of the decoder. Posits decode to a
fixed-width significand, so their `exp_base` sits `zero_lsbs` below numerics' `lsb_exponent`
(those low significand bits are always zero).
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import numerics
from numerics import IntFormat, Minifloat, Posit, Specials


@dataclass(frozen=True)
class DecodedLayout:
    """What a decoder outputs for a format: value = sig * 2**(exp + exp_base)."""

    sig_width: int  # the port is signed(sig_width + 1): magnitude bits, or width - 1 for signed integers
    exp_width: int
    exp_base: int


def decoded_layout(fmt: numerics.ElementFormat) -> DecodedLayout:
    """The decoder's output layout, without building the decoder."""
    if isinstance(fmt, IntFormat):
        # A signed integer is already two's complement: its own width, no extra sign bit (8x8, not 9x9, multipliers).
        return DecodedLayout(fmt.width - 1 if fmt.signed else fmt.width, 1, 0)
    if isinstance(fmt, Minifloat):
        # exp offset = max(field, 1) - 1 with subnormals (lsb = emin - man_bits), else the field.
        return DecodedLayout(fmt.man_bits + 1, max(fmt.exp_bits, 1), fmt.lsb_exponent)
    if isinstance(fmt, Posit):
        # exp offset = regime * 2**es + e + max_scale; the fraction is top-aligned in n - 1 - es bits.
        frac_bits = fmt.n - 1 - fmt.es
        return DecodedLayout(frac_bits + 1, (2 * fmt.max_scale).bit_length(), -fmt.max_scale - frac_bits)
    raise ValueError(
        f"no decoder for {fmt.name}: element decoders exist for integer, minifloat and posit formats "
        "(composite formats decode through their element formats)"
    )


class Decoder(wiring.Component):
    """Base of all decoders; subclasses set the widths and describe the logic.

    Ports: code : In(bits); sig : Out(signed(sig_width + 1)); exp : Out(exp_width);
    nan, inf, neg : Out(1) (neg is the sign, meaningful for Inf).
    """

    def __init__(self, fmt: numerics.ElementFormat) -> None:
        layout = decoded_layout(fmt)
        self.format = fmt
        self.sig_width, self.exp_width, self.exp_base = layout.sig_width, layout.exp_width, layout.exp_base
        self.zero_lsbs = fmt.lsb_exponent - layout.exp_base
        sig_width = layout.sig_width
        super().__init__({
            "code": In(fmt.bits),
            "sig": Out(signed(sig_width + 1)),
            "exp": Out(unsigned(layout.exp_width)),
            "nan": Out(1),
            "inf": Out(1),
            "neg": Out(1),
        })  # fmt: skip


class IntDecoder(Decoder):
    def elaborate(self, platform: object) -> Module:
        m = Module()
        fmt = self.format
        assert isinstance(fmt, IntFormat)
        value = self.code.as_signed() if fmt.signed else self.code.as_unsigned()
        negative = self.code[fmt.width - 1] if fmt.signed else Const(0, 1)
        m.d.comb += [self.sig.eq(value), self.exp.eq(0), self.neg.eq(negative)]
        return m


class MinifloatDecoder(Decoder):
    def elaborate(self, platform: object) -> Module:
        m = Module()
        fmt = self.format
        assert isinstance(fmt, Minifloat)
        mb, eb = fmt.man_bits, fmt.exp_bits
        mant = self.code[:mb] if mb else Const(0, 1)
        field = self.code[mb : mb + eb] if eb else Const(0, 1)
        sign = self.code[fmt.bits - 1] if fmt.signed else Const(0, 1)
        mag = self.code[: mb + eb]
        hidden = (field != 0) if fmt.subnormals else Const(1, 1)
        magnitude = Cat(mant, hidden) if mb else hidden
        exp = Mux(field == 0, 0, field - 1) if fmt.subnormals else field
        nan = Const(0, 1)
        inf = Const(0, 1)
        all_ones = (1 << eb) - 1
        if fmt.specials is Specials.IEEE:
            inf = (field == all_ones) & ((mant == 0) if mb else Const(1, 1))
            nan = (field == all_ones) & ((mant != 0) if mb else Const(0, 1))
        elif fmt.specials is Specials.FN:
            nan = mag == (1 << (mb + eb)) - 1
        elif fmt.specials is Specials.FNUZ:
            nan = self.code == 1 << (fmt.bits - 1)
        special = nan | inf
        m.d.comb += [
            self.sig.eq(Mux(special, 0, Mux(sign, -magnitude, magnitude))),
            self.exp.eq(Mux(special, 0, exp)),
            self.nan.eq(nan),
            self.inf.eq(inf),
            self.neg.eq(sign),
        ]
        return m


class PositDecoder(Decoder):
    """posit<n, es>: two's complement, regime by leading-run count, exponent, fraction."""

    def elaborate(self, platform: object) -> Module:
        m = Module()
        fmt = self.format
        assert isinstance(fmt, Posit)
        n, es = fmt.n, fmt.es
        code = self.code
        sign = code[n - 1]
        magnitude = Mux(sign, -code, code)[: n - 1]
        first = magnitude[n - 2]
        flipped = Signal(n - 1)
        m.d.comb += flipped.eq(Mux(first, ~magnitude, magnitude))
        run = Signal(range(n + 1))  # leading zeros of `flipped` = the regime run length
        m.d.comb += run.eq(n - 1)
        for i in range(n - 1):  # the highest set bit wins: later assignments take priority
            with m.If(flipped[i]):
                m.d.comb += run.eq(n - 2 - i)
        rest = Signal(n - 1)
        m.d.comb += rest.eq(magnitude << (run + 1))
        expo = rest[n - 1 - es : n - 1] if es else Const(0, 1)
        fraction = rest[: n - 1 - es]
        regime = Signal(signed(run.shape().width + 2))
        m.d.comb += regime.eq(Mux(first, run - 1, -run))  # -run is signed and one bit wider
        scale = Signal(signed(regime.shape().width + es + 2))
        m.d.comb += scale.eq((regime << es) + expo + fmt.max_scale)
        zero = code == 0
        nar = code == 1 << (n - 1)
        significand = Cat(fraction, Const(1, 1))
        m.d.comb += [
            self.sig.eq(Mux(zero | nar, 0, Mux(sign, -significand, significand))),
            self.exp.eq(Mux(zero | nar, 0, scale)),
            self.nan.eq(nar),
            self.inf.eq(0),
            self.neg.eq(sign),
        ]
        return m


def element_format(fmt: numerics.ElementFormat | str) -> numerics.ElementFormat:
    """Resolve a name to an element format that has a decoder, or explain what is supported."""
    resolved = numerics.get(fmt)
    if isinstance(resolved, Minifloat) and resolved.bits > 32:
        raise ValueError(f"minifloat decoders take formats of <= 32 bits, got {resolved.name}")
    if not isinstance(resolved, IntFormat | Minifloat | Posit):
        decoded_layout(resolved)  # type: ignore[arg-type]  # raises the explanation
    return resolved  # type: ignore[return-value]


def decoder_for(fmt: numerics.ElementFormat | str) -> Decoder:
    """The decoder of an element format (INT, minifloat incl. E8M0, posit)."""
    resolved = element_format(fmt)
    if isinstance(resolved, IntFormat):
        return IntDecoder(resolved)
    if isinstance(resolved, Minifloat):
        return MinifloatDecoder(resolved)
    return PositDecoder(resolved)  # type: ignore[arg-type]
