"""One floating-point accumulation step in logic: add(acc, t) of `numerics.FloatAccumulator`.

The twin of numerics' `_add_rounded`: the accumulator code and an exact addend (a product, or
another format value) are unpacked to sign, magnitude and leading-bit exponent, normalized, the
smaller aligned to the larger in a datapath of both whole significands plus guard, round and
sticky bits (the bits shifted out past them are ORed into the lowest one), optionally cut to the
alignment window, added in two's complement and rounded once to the format. Combinational:
callers register the result.

Why three extra bits suffice (and no more are needed for any exponent gap): the larger operand
has its leading one at the datapath's top, so it is a multiple of 2**3 datapath lsbs, and the
sticky-jammed smaller operand lies in the same open interval between multiples of 2 lsbs as the
exact one (or equals it, when no bit was lost). Bits are lost only for gaps > 3, where the sum
keeps its leading one at most one place lower, so the quantum of any rounding (to the format or
to a window of <= p bits) is >= 4 lsbs: its half-way points are multiples of 2 lsbs, and the
jammed and exact sums round alike. Gaps <= 1 (massive cancellation) lose no bit at all.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.hdl import Value

import numerics
from numerics import Minifloat

from ._decode import MinifloatDecoder

GUARD_BITS = 3  # guard, round and sticky below the wider of the two significands


@dataclass(frozen=True)
class FloatTerm:
    """An exact addend: value = sig * 2**(exp + exp_base); sig signed (two's complement), exp unsigned."""

    sig: Value
    exp: Value
    exp_base: int
    nan: Value
    inf: Value  # Inf and not NaN
    neg: Value  # the sign of an Inf (and of the product, zero included)


def code_term(m: Module, name: str, code: Value, fmt: Minifloat) -> FloatTerm:
    """A format code as a FloatTerm (for adding two format values: blocked orders, trees).
    Adds a decoder submodule `{name}_decoder` to `m`."""
    decoder = MinifloatDecoder(fmt)
    m.submodules[f"{name}_decoder"] = decoder
    m.d.comb += decoder.code.eq(code)
    return FloatTerm(decoder.sig, decoder.exp, decoder.exp_base, decoder.nan, decoder.inf, decoder.neg)


def check_float_format(fmt: numerics.Minifloat) -> None:
    """The accumulator formats the hardware takes: signed minifloats with a zero (subnormals)."""
    if not (isinstance(fmt, Minifloat) and fmt.signed and fmt.subnormals):
        name = getattr(fmt, "name", type(fmt).__name__)
        raise ValueError(f"a hardware float accumulator needs a signed minifloat with subnormals (it must hold +0), "
                         f"got {name}")  # fmt: skip


@dataclass(frozen=True)
class _Unpacked:
    neg: Value  # the sign (of a zero too)
    mag: Value  # normalized: the leading one at the top of `width` bits (or all zero)
    lead: Value  # exponent of the leading one (garbage when zero)
    zero: Value  # a finite zero


def _leading_one(value: Value) -> Value:
    """Index of the highest set bit (0 when none): a tree of halves, log2(width) muxes deep."""
    width = len(value)
    if width <= 1:
        return Const(0, 1)
    low_width = 1 << ((width - 1).bit_length() - 1)  # the low half: the largest power of two below width
    high = value[low_width:]
    return Mux(high != 0, low_width + _leading_one(high), _leading_one(value[:low_width]))


def _unpack(m: Module, name: str, term: FloatTerm, width: int, exp_shape: int) -> _Unpacked:
    sig_width = len(term.sig)
    mag = Signal(sig_width, name=f"{name}_mag")
    m.d.comb += mag.eq(Mux(term.sig[-1], -term.sig, term.sig))  # -(-2**(w-1)) still fits w unsigned bits
    top = Signal(range(max(sig_width, 2)), name=f"{name}_top")
    m.d.comb += top.eq(_leading_one(mag))
    zeros = Signal(range(max(sig_width, 2)), name=f"{name}_zeros")
    m.d.comb += zeros.eq(sig_width - 1 - top)
    normal = Signal(width, name=f"{name}_norm")
    m.d.comb += normal.eq(Cat(Const(0, width - sig_width), (mag << zeros)[:sig_width]))
    lead = Signal(signed(exp_shape), name=f"{name}_lead")
    m.d.comb += lead.eq(term.exp + term.exp_base + top)
    zero = Signal(name=f"{name}_zero")
    m.d.comb += zero.eq((mag == 0) & ~term.nan & ~term.inf)
    neg = Signal(name=f"{name}_neg")
    m.d.comb += neg.eq(Mux(mag == 0, term.neg, term.sig[-1]))
    return _Unpacked(neg, normal, lead, zero)


def _cut(m: Module, name: str, value: Value, quantum_bit: int, nearest_even: bool) -> Value:
    """value (unsigned) as a multiple of 2**quantum_bit: the bits below dropped, or rounded to
    the nearest (ties to even)."""
    kept = value[quantum_bit:]
    if nearest_even:
        guard, rest = value[quantum_bit - 1], value[: quantum_bit - 1] != 0
        kept = kept + (guard & (rest | kept[0]))
    cut = Signal(len(value) + 1, name=f"{name}_cut")
    m.d.comb += cut.eq(kept << quantum_bit)
    return cut


def round_to_format(m: Module, name: str, negative: Value, mag: Value, lsb: Value, fmt: Minifloat, toward_zero: bool,
                    *, nan: Value, inf: Value, inf_neg: Value, signed_zero: bool) -> Value:  # fmt: skip
    """The code of (-1)**negative * mag * 2**lsb rounded once to fmt, as `round_one` in
    numerics/_minifloat.py (`mag` unsigned, `lsb` a signed signal wide enough for the exponents
    met plus len(mag) + fmt.man_bits), combinational. `nan`, then `inf` (of sign `inf_neg`) win
    over the value and give the format's codes. Overflow as numerics' default policy for the
    format: Inf (NaN where the format has no Inf, the largest finite where it has neither), or
    the largest finite toward zero, as IEEE 754. An exact zero is +0; a nonzero value rounded to
    zero keeps its sign if `signed_zero` (round_one; FNUZ formats have no -0), else it is +0 too
    (an accumulator: numerics' running sum reads out through ExactResult, which has no -0)."""
    width, man, emin, exp_shape = len(mag), fmt.man_bits, fmt.emin, len(lsb)
    # quantum 2**(binade - man): the binade of the leading one, never below the subnormals'
    e_top = Signal(signed(exp_shape), name=f"{name}_e_top")
    m.d.comb += e_top.eq(lsb + _leading_one(mag))
    binade = Signal(signed(exp_shape), name=f"{name}_binade")
    m.d.comb += binade.eq(Mux(e_top > emin, e_top, emin))
    shift = Signal(signed(exp_shape), name=f"{name}_shift")
    m.d.comb += shift.eq(binade - man - lsb)
    right = Signal(range(width + 2), name=f"{name}_right")  # beyond width + 1 every bit is below half
    m.d.comb += right.eq(Mux(shift > width + 1, width + 1, Mux(shift > 0, shift, 0)))
    left = Signal(range(man + 1), name=f"{name}_left")  # shift >= lead - man >= -man
    m.d.comb += left.eq(Mux(shift < 0, -shift, 0))
    kept = Signal(width, name=f"{name}_kept")
    m.d.comb += kept.eq(mag >> right)
    if toward_zero:
        up: Value = Const(0, 1)
    else:
        one = Const(1, width + 2)
        remainder = mag & ((one << right) - 1)
        half = (one << right) >> 1
        up = (right != 0) & ((remainder > half) | ((remainder == half) & kept[0]))
    significand = Signal(width + man + 1, name=f"{name}_significand")
    m.d.comb += significand.eq(Mux(shift < 0, mag << left, kept + up))
    # codes grow linearly with the rounded significand across binades: a carry moves the exponent
    code = Signal(width + man + exp_shape + 2, name=f"{name}_code")
    m.d.comb += code.eq(significand + ((binade - emin).as_unsigned() << man))

    bits = fmt.bits
    sign_bit = 1 << (bits - 1)
    nan_code = Const(fmt._nan_code & ((1 << bits) - 1), bits)  # a format without NaN: round_one's -1, all ones
    saturate = not (fmt.has_inf or fmt.has_nan)

    def infinity(neg: Value) -> Value:  # an Inf as numerics encodes it
        if saturate:
            return Mux(neg, sign_bit | fmt._max_mag, fmt._max_mag)
        if fmt.has_inf:
            inf_mag = ((1 << fmt.exp_bits) - 1) << man
            return Mux(neg, sign_bit | inf_mag, inf_mag)
        return nan_code

    too_large = Mux(negative, sign_bit | fmt._max_mag, fmt._max_mag) if saturate or toward_zero else infinity(negative)
    zero_sign = negative if signed_zero and fmt.specials is not numerics.Specials.FNUZ else Const(0, 1)
    signed_code = Mux(code == 0, Mux(zero_sign, sign_bit, 0), Mux(negative, sign_bit, 0) | code[:bits])
    finite = Signal(bits, name=f"{name}_finite")
    m.d.comb += finite.eq(Mux(mag == 0, 0, Mux(code > fmt._max_mag, too_large, signed_code)))
    result = Signal(bits, name=f"{name}_result")
    m.d.comb += result.eq(Mux(nan, nan_code, Mux(inf, infinity(inf_neg), finite)))
    return result


def float_add(m: Module, name: str, acc_code: Value, term: FloatTerm, accumulator: numerics.FloatAccumulator) -> Value:
    """The format code of add(acc, term) (see numerics.FloatAccumulator), combinational.

    `name` prefixes the signals and the accumulator decoder's submodule (`{name}_acc_decoder`), so
    it must be unique within `m`. NaN in (or Inf + -Inf) gives the format's NaN code, Inf propagates
    (a format without Inf: NaN, or the largest finite if it has no NaN either, as numerics
    encodes); a zero result is +0, as numerics has no -0 (an exact cancellation, -0 + -0, or a
    negative sum rounded to zero alike)."""
    fmt = accumulator.format
    check_float_format(fmt)
    toward_zero = accumulator.rounding == "toward_zero"
    acc = code_term(m, f"{name}_acc", acc_code, fmt)
    width = max(len(acc.sig), len(term.sig))  # both significands whole (magnitudes of <= sig width bits)
    data_width = width + GUARD_BITS
    far = data_width + 1  # an alignment shift this large or larger leaves only sticky
    bounds = [acc.exp_base, term.exp_base, acc.exp_base + (1 << len(acc.exp)) + width,
              term.exp_base + (1 << len(term.exp)) + width, fmt.emin, fmt.man_bits]  # fmt: skip
    exp_shape = (max(abs(b) for b in bounds) + 4 * data_width + fmt.man_bits + 8).bit_length() + 2
    a = _unpack(m, f"{name}_a", acc, width, exp_shape)
    t = _unpack(m, f"{name}_t", term, width, exp_shape)

    # X: the operand with the higher leading bit (a zero is never X unless both are).
    a_is_x = Signal(name=f"{name}_a_is_x")
    m.d.comb += a_is_x.eq(t.zero | (~a.zero & (a.lead >= t.lead)))
    x_mag, y_mag = Mux(a_is_x, a.mag, t.mag), Mux(a_is_x, t.mag, a.mag)
    x_neg, y_neg = Mux(a_is_x, a.neg, t.neg), Mux(a_is_x, t.neg, a.neg)
    x_lead = Signal(signed(exp_shape), name=f"{name}_x_lead")
    m.d.comb += x_lead.eq(Mux(a_is_x, a.lead, t.lead))
    gap = Signal(signed(exp_shape), name=f"{name}_gap")
    m.d.comb += gap.eq(x_lead - Mux(a_is_x, t.lead, a.lead))
    distance = Signal(range(far + 1), name=f"{name}_distance")
    m.d.comb += distance.eq(Mux((gap > far) | a.zero | t.zero, far, gap))

    x_data = Signal(data_width, name=f"{name}_x_data")
    m.d.comb += x_data.eq(Cat(Const(0, GUARD_BITS), x_mag))
    shifted = Signal(data_width + far, name=f"{name}_shifted")  # far bits below the datapath catch the sticky
    m.d.comb += shifted.eq(Cat(Const(0, far + GUARD_BITS), y_mag) >> distance)
    y_data = Signal(data_width, name=f"{name}_y_data")
    m.d.comb += y_data.eq(Cat(shifted[far] | (shifted[:far] != 0), shifted[far + 1 :]))

    x_value: Value = x_data
    y_value: Value = y_data
    if accumulator.window is not None:  # both cut to the window's N bits from X's leading one
        quantum_bit = data_width - accumulator.window
        nearest = accumulator.align == "nearest_even"
        x_value = _cut(m, f"{name}_x", x_data, quantum_bit, nearest)
        y_value = _cut(m, f"{name}_y", y_data, quantum_bit, nearest)
    total = Signal(signed(data_width + 3), name=f"{name}_sum")
    m.d.comb += total.eq(Mux(x_neg, -x_value, x_value) + Mux(y_neg, -y_value, y_value))
    negative = total[-1]
    magnitude = Signal(data_width + 2, name=f"{name}_magnitude")
    m.d.comb += magnitude.eq(Mux(negative, -total, total))
    lsb = Signal(signed(exp_shape), name=f"{name}_lsb")
    m.d.comb += lsb.eq(x_lead - (data_width - 1))
    nan = Signal(name=f"{name}_nan")
    m.d.comb += nan.eq(acc.nan | term.nan | (acc.inf & term.inf & (acc.neg != term.neg)))
    inf_neg = Mux(acc.inf, acc.neg, term.neg)
    return round_to_format(m, f"{name}_round", negative, magnitude, lsb, fmt, toward_zero, nan=nan,
                           inf=acc.inf | term.inf, inf_neg=inf_neg, signed_zero=False)  # fmt: skip
