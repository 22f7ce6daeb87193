"""A lean floating-point datapath for the common case: IEEE-style formats (Inf and NaN at the top
exponent, subnormals) and full alignment (no window). Bit for bit the same as the general
`float_round` and `float_add` (hw/_float_convert.py, hw/_float_acc.py), at a fraction of their
logic, because it uses what IEEE codes give for free:

- a code's magnitude bits order the magnitudes, so one comparator picks the larger operand and the
  difference of the aligned significands is never negative (no negation after the add);
- a code is its own unpacked form (exponent field, fraction; hidden bit = field != 0, subnormals
  at field 1), so nothing is normalized on the way in;
- codes grow linearly with the rounded significand, so the rounding increment carries into the
  exponent and from the largest finite into Inf by itself;
- the bits below the kept significand matter only through their OR (the sticky bit), which is a
  comparison of the lowest set bit's index with the cut, instead of a masked wide OR.

Both are one rounding of a fixed-point magnitude, `_round_fixed`: the window of precision + 1
bits whose top is the value's leading one, or the subnormal floor's position when that is
higher, is shifted out once; its lowest bit is the guard bit.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed
from amaranth.hdl import Value

import numerics
from numerics import FloatAccumulator, Minifloat

from ._float_acc import GUARD_BITS, FloatTerm, _leading_one


def compact_fits(accumulator: FloatAccumulator) -> bool:
    """Whether the lean datapath realises this accumulator's adds (else the general one does)."""
    fmt = accumulator.format
    return accumulator.window is None and fmt.specials is numerics.Specials.IEEE and fmt.subnormals and fmt.signed


def _trailing_one(value: Value) -> Value:
    """Index of the lowest set bit (garbage when none)."""
    width = len(value)
    reversed_bits = Cat(*(value[width - 1 - i] for i in range(width)))
    return width - 1 - _leading_one(reversed_bits)


def _round_fixed(m: Module, name: str, negative: Value, mag: Value, lsb: Value, fmt: Minifloat, toward_zero: bool,
                 *, nan: Value, inf: Value, inf_neg: Value) -> Value:  # fmt: skip
    """The code of (-1)**negative * mag * 2**lsb rounded once to fmt (an IEEE-style format),
    combinational. `lsb` is a signed signal wide enough for lsb + len(mag) + fmt.man_bits and for
    emin - lsb. NaN, then Inf (of sign `inf_neg`), win. Overflow: Inf, or the largest finite
    toward zero. mag = 0 gives the zero of sign `negative`."""
    width, man, exp_shape = len(mag), fmt.man_bits, len(lsb)
    top = Signal(range(max(width, 2)), name=f"{name}_top")
    m.d.comb += top.eq(_leading_one(mag))
    low = Signal(range(max(width, 2)), name=f"{name}_low")
    m.d.comb += low.eq(_trailing_one(mag))
    # Bit `floor` of mag weighs 2**emin: below it the quantum stays that of the subnormals.
    floor = Signal(signed(exp_shape), name=f"{name}_floor")
    m.d.comb += floor.eq(fmt.emin - lsb)
    window_top = Signal(signed(exp_shape), name=f"{name}_window_top")  # mag's bit kept as the leading one
    m.d.comb += window_top.eq(Mux(floor > top, floor, top))
    # mag with man + 1 zeros below: the window's man + 1 bits and the guard bit are bits
    # window_top .. window_top + man + 1 of it; past its top every bit is below half a quantum.
    padded = Cat(Const(0, man + 1), mag)
    limit = len(padded)
    shift = Signal(range(limit + 1), name=f"{name}_shift")
    m.d.comb += shift.eq(Mux(window_top > limit, limit, window_top))
    window = Signal(man + 2, name=f"{name}_window")
    m.d.comb += window.eq(padded >> shift)
    kept = window[1:]
    if toward_zero:
        up: Value = Const(0, 1)
    else:
        sticky = (mag != 0) & (low + man + 1 < window_top)  # a set bit below the guard bit
        up = window[0] & (sticky | kept[0])
    # (window_top + lsb - emin) << man: the biased exponent field - 1 for a normal result (kept's
    # hidden bit adds the 1), 0 for a subnormal one (no hidden bit)
    code = Signal(exp_shape + man + 1, name=f"{name}_code")
    m.d.comb += code.eq(((window_top - floor).as_unsigned() << man) + kept + up)

    bits = fmt.bits
    inf_code = ((1 << fmt.exp_bits) - 1) << man
    max_code = inf_code - 1
    nan_code = Const(fmt._nan_code & ((1 << bits) - 1), bits)
    too_large = max_code if toward_zero else inf_code
    magnitude = Mux(mag == 0, 0, Mux(code >= inf_code, too_large, code[: bits - 1]))
    result = Signal(bits, name=f"{name}_result")
    m.d.comb += result.eq(Mux(nan, nan_code, Mux(inf, Cat(Const(inf_code, bits - 1), inf_neg),
                                                 Cat(magnitude, negative))))  # fmt: skip
    return result


def compact_round(m: Module, name: str, term: FloatTerm, fmt: Minifloat, toward_zero: bool) -> Value:
    """The code of the exact term.sig * 2**(term.exp + term.exp_base) rounded once to `fmt` (as
    `float_round`, but a rounded-off nonzero value may come out as -0 or +0)."""
    width = len(term.sig)
    bounds = [term.exp_base, term.exp_base + (1 << len(term.exp)), fmt.emin, width, fmt.man_bits]
    exp_shape = (sum(abs(b) for b in bounds) + 8).bit_length() + 2
    negative = term.sig[-1]
    mag = Signal(width, name=f"{name}_mag")  # -(-2**(w-1)) still fits w unsigned bits
    m.d.comb += mag.eq(Mux(negative, -term.sig, term.sig))
    lsb = Signal(signed(exp_shape), name=f"{name}_lsb")
    m.d.comb += lsb.eq(term.exp + term.exp_base)
    return _round_fixed(m, name, negative, mag, lsb, fmt, toward_zero, nan=term.nan, inf=term.inf, inf_neg=term.neg)


def compact_add(m: Module, name: str, a: Value, b: Value, fmt: Minifloat, toward_zero: bool) -> Value:
    """The code of a + b (two codes of `fmt`) rounded once, as `float_add` with full alignment:
    NaN in or Inf + -Inf gives NaN, Inf propagates, a zero result is +0."""
    bits, man, exp_bits = fmt.bits, fmt.man_bits, fmt.exp_bits
    a_mag, b_mag = a[: bits - 1], b[: bits - 1]
    a_larger = Signal(name=f"{name}_a_larger")
    m.d.comb += a_larger.eq(a_mag >= b_mag)
    x, y = Signal(bits, name=f"{name}_x"), Signal(bits, name=f"{name}_y")
    m.d.comb += [x.eq(Mux(a_larger, a, b)), y.eq(Mux(a_larger, b, a))]

    def unpacked(code: Value) -> tuple[Value, Value]:  # significand with its hidden bit, exponent field >= 1
        field = code[man : bits - 1]
        return Cat(code[:man], field != 0), Mux(field == 0, 1, field)

    x_sig, x_exp = unpacked(x)
    y_sig, y_exp = unpacked(y)
    distance = Signal(exp_bits, name=f"{name}_distance")
    m.d.comb += distance.eq(x_exp - y_exp)
    data_width = man + 1 + GUARD_BITS
    far = Signal(range(data_width + 1), name=f"{name}_far")  # a larger shift leaves y only as sticky
    m.d.comb += far.eq(Mux(distance > data_width, data_width, distance))
    y_low = Signal(range(man + 1), name=f"{name}_y_low")
    m.d.comb += y_low.eq(_trailing_one(y_sig))
    y_sticky = (y_sig != 0) & (y_low + GUARD_BITS < distance)  # a set bit shifted out below the datapath
    y_data = Signal(data_width, name=f"{name}_y_data")
    m.d.comb += y_data.eq((Cat(Const(0, GUARD_BITS), y_sig) >> far) | y_sticky)
    x_data = Cat(Const(0, GUARD_BITS), x_sig)
    subtract = x[-1] ^ y[-1]
    total = Signal(data_width + 1, name=f"{name}_sum")  # |x| >= |y|: x - y is never negative
    m.d.comb += total.eq(Mux(subtract, x_data - y_data, x_data + y_data))

    exp_shape = (bits + man + 2 * (1 << exp_bits)).bit_length() + 2
    lsb = Signal(signed(exp_shape), name=f"{name}_lsb")
    m.d.comb += lsb.eq(x_exp + (fmt.emin - 1 - man - GUARD_BITS))
    field_ones = (1 << exp_bits) - 1

    def classes(code: Value) -> tuple[Value, Value]:  # (NaN, Inf)
        top_field = code[man : bits - 1] == field_ones
        return top_field & (code[:man] != 0), top_field & (code[:man] == 0)

    a_nan, a_inf = classes(a)
    b_nan, b_inf = classes(b)
    nan = Signal(name=f"{name}_nan")
    m.d.comb += nan.eq(a_nan | b_nan | (a_inf & b_inf & (a[-1] != b[-1])))
    negative = x[-1] & (total != 0)  # an exact cancellation is +0 (a sum of codes never rounds to zero)
    return _round_fixed(m, f"{name}_round", negative, total, lsb, fmt, toward_zero, nan=nan, inf=a_inf | b_inf,
                        inf_neg=Mux(a_inf, a[-1], b[-1]))  # fmt: skip
