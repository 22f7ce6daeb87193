"""The output unit: round an accumulator (a two's complement integer times 2**lsb_exponent) once,
to nearest even, to codes of an integer or minifloat format — the hardware twin of
`numerics.ExactResult.round_to`."""

from __future__ import annotations

from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import numerics
from numerics import IntFormat, Minifloat, Posit, Specials


class OutputRounder(wiring.Component):
    """Ports: acc : In(signed(acc_width)); nan, pos_inf, neg_inf : In(1) (the MAC's flags);
    code : Out(fmt.bits). Overflow follows numerics' default for the format (Inf/NaN where it has
    them, else saturation) unless `saturate` says otherwise."""

    def __init__(self, acc_width: int, lsb_exponent: int, fmt: numerics.ElementFormat | str,
                 saturate: bool | None = None, lsb_range: tuple[int, int] | None = None) -> None:  # fmt: skip
        """`lsb_range` = (lowest, highest): the lsb exponent is a run-time input `lsb` in that
        range (minifloats only; `lsb_exponent` is then unused)."""
        resolved = numerics.get(fmt)
        supported = isinstance(resolved, IntFormat | Posit) or (
            isinstance(resolved, Minifloat) and resolved.bits <= 32 and resolved.signed and resolved.subnormals
        )
        if not supported:
            self._MustUse__silence = True
            raise ValueError(
                "the output unit rounds to integer formats, posits and signed minifloats with subnormals of "
                f"<= 32 bits, got {resolved.name}"
            )
        if acc_width < 2:
            self._MustUse__silence = True
            raise ValueError(f"acc_width must be >= 2, got {acc_width}")
        if lsb_range is not None and not (isinstance(resolved, Minifloat) and lsb_range[0] <= lsb_range[1]):
            self._MustUse__silence = True
            raise ValueError(f"a run-time lsb exponent takes a minifloat output and lsb_range=(lowest, highest), "
                             f"got {resolved.name} and {lsb_range}")  # fmt: skip
        self.format = resolved
        self.acc_width, self.lsb_exponent, self.lsb_range = acc_width, lsb_exponent, lsb_range
        default = not (resolved.has_inf or resolved.has_nan)
        self.saturate = default if saturate is None else saturate
        ports = {"acc": In(signed(acc_width)), "nan": In(1), "pos_inf": In(1), "neg_inf": In(1),
                 "code": Out(resolved.bits)}  # fmt: skip
        if lsb_range is not None:
            ports["lsb"] = In(signed(max(abs(lsb_range[0]), abs(lsb_range[1])).bit_length() + 1))
        super().__init__(ports)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        width = self.acc_width
        negative = self.acc[width - 1]
        magnitude = Signal(width)
        m.d.comb += magnitude.eq(Mux(negative, -self.acc, self.acc))
        if isinstance(self.format, IntFormat):
            self._round_int(m, negative, magnitude)
        elif isinstance(self.format, Posit):
            self._round_posit(m, negative, magnitude)
        else:
            self._round_minifloat(m, negative, magnitude)
        return m

    @staticmethod
    def _leading_one(m: Module, magnitude: Signal, width: int) -> Signal:
        leading = Signal(range(width))
        for i in range(width):  # the highest set bit wins: later assignments take priority
            with m.If(magnitude[i]):
                m.d.comb += leading.eq(i)
        return leading

    def _round_posit(self, m: Module, negative: Signal, magnitude: Signal) -> None:
        """Nearest even on the bit string; no overflow to NaR, no underflow to zero."""
        fmt = self.format
        assert isinstance(fmt, Posit)
        n, es, width, lsb = fmt.n, fmt.es, self.acc_width, self.lsb_exponent
        top = self._leading_one(m, magnitude, width)
        scale = Signal(signed(max(width, abs(lsb), fmt.max_scale).bit_length() + 3))
        m.d.comb += scale.eq(top + lsb)
        clamped = Signal(signed(scale.shape().width))
        m.d.comb += clamped.eq(
            Mux(scale < -fmt.max_scale, -fmt.max_scale, Mux(scale >= fmt.max_scale, fmt.max_scale - 1, scale))
        )
        regime = Signal(signed(clamped.shape().width))
        m.d.comb += regime.eq(clamped >> es)  # arithmetic: floor division by 2**es
        exponent = clamped[:es] if es else Const(0, 1)
        # The fraction: the bits below the leading one, left-aligned in frac_width bits (at least
        # n + 2, so the string always reaches below the n - 1 kept bits).
        frac_width = max(width, n + 2)
        left = Signal(range(frac_width + 1))
        m.d.comb += left.eq(frac_width - top)
        fraction = Signal(frac_width)
        m.d.comb += fraction.eq(magnitude << left)
        tail = Cat(fraction, exponent) if es else fraction  # exponent on top of the fraction
        tail_width = frac_width + es
        run = Signal(range(n + 2))  # regime run length incl. terminator
        pattern = Signal(n + 1)
        with m.If(regime >= 0):
            m.d.comb += [run.eq(regime + 2), pattern.eq(((Const(1, n + 1) << (regime + 1).as_unsigned()) - 1) << 1)]
        with m.Else():
            m.d.comb += [run.eq(1 - regime), pattern.eq(1)]
        string = Signal(n + 1 + tail_width)
        m.d.comb += string.eq((pattern << tail_width) | tail)
        # Keep the top n - 1 bits of the (run + tail_width)-bit string; round on the rest.
        shift = Signal(range(n + 2 + tail_width))
        m.d.comb += shift.eq(run + tail_width - (n - 1))
        field = self._round_shift(m, string, shift, n + 1 + tail_width)
        max_field = (1 << (n - 1)) - 1
        capped = Signal(n)
        m.d.comb += capped.eq(Mux(field > max_field, max_field, Mux(field == 0, 1, field)))
        with m.If(scale >= fmt.max_scale):
            m.d.comb += capped.eq(max_field)
        with m.If(scale < -fmt.max_scale):
            m.d.comb += capped.eq(1)
        code = Mux(negative, -capped, capped)
        nar = 1 << (n - 1)
        result = Mux(magnitude == 0, 0, code)
        m.d.comb += self.code.eq(Mux(self.nan | self.pos_inf | self.neg_inf, nar, result))

    @staticmethod
    def _round_shift(m: Module, value: Signal, shift: Signal, width: int) -> Signal:
        """value / 2**shift rounded to nearest even (shift >= 0, a Signal)."""
        kept = Signal(width + 1)
        remainder = Signal(width)
        half = Signal(width + 1)
        m.d.comb += [
            kept.eq(value >> shift),
            remainder.eq(value & ((Const(1, width + 1) << shift) - 1)),
            half.eq((Const(1, width + 1) << shift) >> 1),
        ]
        up = (shift != 0) & ((remainder > half) | ((remainder == half) & kept[0]))
        rounded = Signal(width + 2)
        m.d.comb += rounded.eq(kept + up)
        return rounded

    def _round_int(self, m: Module, negative: Signal, magnitude: Signal) -> None:
        fmt = self.format
        assert isinstance(fmt, IntFormat)
        width = self.acc_width
        if self.lsb_exponent >= 0:
            rounded = Signal(width + self.lsb_exponent + 1)
            m.d.comb += rounded.eq(magnitude << self.lsb_exponent)
        else:
            rounded = self._round_shift(m, magnitude, Const(-self.lsb_exponent, range(-self.lsb_exponent + 1)), width)
        value = Signal(signed(rounded.shape().width + 2))
        m.d.comb += value.eq(Mux(negative, -rounded, rounded))
        low, high = fmt.min_int, fmt.max_int
        if self.saturate:
            clamped = Mux(value > high, high, Mux(value < low, low, value))
        else:
            clamped = value
        # The low bits: two's complement code (wraps if not saturating); an infinite sum saturates.
        m.d.comb += self.code.eq(Mux(self.pos_inf, high, Mux(self.neg_inf, low, clamped)))

    def _round_minifloat(self, m: Module, negative: Signal, magnitude: Signal) -> None:
        fmt = self.format
        assert isinstance(fmt, Minifloat)
        width = self.acc_width
        lsb: Any = self.lsb_exponent if self.lsb_range is None else self.lsb
        reach = abs(lsb) if self.lsb_range is None else max(abs(self.lsb_range[0]), abs(self.lsb_range[1]))
        man, emin = fmt.man_bits, fmt.emin
        offset = 0 if fmt.subnormals else 1
        top = self._leading_one(m, magnitude, width)
        # quantum exponent q = max(top + lsb, emin) - man; shift = q - lsb (may be negative)
        e_top = Signal(signed(max(width, reach, abs(emin)).bit_length() + 3))
        m.d.comb += e_top.eq(top + lsb)
        binade = Signal(signed(e_top.shape().width + 1))
        m.d.comb += binade.eq(Mux(e_top > emin, e_top, emin))
        shift = Signal(signed(binade.shape().width + 2))
        m.d.comb += shift.eq(binade - man - lsb)
        right = Signal(range(max(width + man + reach + abs(emin) + 2, 2)))
        m.d.comb += right.eq(Mux(shift > 0, shift, 0))
        rounded = self._round_shift(m, magnitude, right, width)
        left = Signal(range(max(man + reach + abs(emin) + 2, 2)))
        m.d.comb += left.eq(Mux(shift < 0, -shift, 0))
        significand = Signal(width + man + 2)
        m.d.comb += significand.eq(Mux(shift < 0, magnitude << left, rounded))
        mag_code = Signal(width + man + abs(emin) + reach + 8)
        m.d.comb += mag_code.eq(significand + ((binade - emin - offset) << man))
        max_mag = fmt._max_mag  # the same constant numerics uses
        inf_mag = ((1 << fmt.exp_bits) - 1) << man if fmt.has_inf else -1
        nan_code = fmt._nan_code
        sign_bit = Const(1 << (fmt.bits - 1), fmt.bits) if fmt.signed else Const(0, fmt.bits)
        overflow = mag_code > max_mag
        result = Signal(fmt.bits)
        zero = magnitude == 0
        with m.If(zero):
            m.d.comb += result.eq(0 if fmt.subnormals else (0 if self.saturate else nan_code))
        nan_on_overflow = not self.saturate and inf_mag < 0  # E4M3-like: no Inf, overflow is NaN
        with m.Elif(overflow & Const(int(nan_on_overflow), 1)):
            m.d.comb += result.eq(nan_code)
        with m.Else():
            capped = Mux(overflow, max_mag if (self.saturate or inf_mag < 0) else inf_mag, mag_code)
            signed_code = Mux(negative, sign_bit, 0) | capped
            if fmt.specials is Specials.FNUZ:  # no negative zero: -0 is the NaN code
                signed_code = Mux(capped == 0, 0, signed_code)
            m.d.comb += result.eq(signed_code)
        infinite = self.pos_inf | self.neg_inf
        if self.saturate:  # numerics saturates an infinite input too, where the format has Inf or not
            inf_code = Mux(self.neg_inf, sign_bit | max_mag, max_mag)
        elif fmt.has_inf:
            inf_code = Mux(self.neg_inf, sign_bit | inf_mag, inf_mag)
        else:
            inf_code = Const(nan_code if fmt.has_nan else max_mag, fmt.bits)
        nan_out = Const(nan_code if fmt.has_nan else 0, fmt.bits)
        m.d.comb += self.code.eq(Mux(self.nan, nan_out, Mux(infinite, inf_code, result)))
