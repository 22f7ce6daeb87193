"""An exact sum rounded once to a float format: the converter between an array's exact partial
sums (an MX block, a weight-stationary fold) and its float accumulator.

The twin of `numerics.ExactResult.round_to(fmt, rounding, saturate)` with numerics' default
overflow policy for the format (Inf, NaN where it has no Inf, the largest finite where it has
neither; toward zero stops at the largest finite, as IEEE 754). The exponent is a signal: an MX
block's two E8M0 scales only move it, so no wide shifter is needed before the rounding.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.hdl import Value

import numerics

from ._float_acc import FloatTerm, check_float_format, code_term, round_to_format


def float_round(m: Module, name: str, term: FloatTerm, fmt: numerics.Minifloat, rounding: str) -> Value:
    """The code of the exact value term.sig * 2**(term.exp + term.exp_base) rounded once to `fmt`
    (`rounding`: "nearest_even" or "toward_zero"), combinational. NaN and Inf in `term` give the
    format's NaN and Inf codes; an exact zero is +0, a nonzero value that rounds to zero keeps
    its sign (numerics' round_one). `name` prefixes the signals; unique within `m`."""
    check_float_format(fmt)
    if rounding not in ("nearest_even", "toward_zero"):
        raise ValueError(f"rounding must be 'nearest_even' or 'toward_zero', got {rounding!r}")
    width = len(term.sig)
    bounds = [term.exp_base, term.exp_base + (1 << len(term.exp)) + width, fmt.emin, fmt.man_bits]
    exp_shape = (max(abs(b) for b in bounds) + 2 * width + fmt.man_bits + 8).bit_length() + 2
    negative = term.sig[-1]
    mag = Signal(width, name=f"{name}_mag")  # -(-2**(w-1)) still fits w unsigned bits
    m.d.comb += mag.eq(Mux(negative, -term.sig, term.sig))
    lsb = Signal(signed(exp_shape), name=f"{name}_lsb")
    m.d.comb += lsb.eq(term.exp + term.exp_base)
    return round_to_format(m, name, negative, mag, lsb, fmt, rounding == "toward_zero", nan=term.nan, inf=term.inf,
                           inf_neg=term.neg, signed_zero=True)  # fmt: skip


def code_flags(m: Module, name: str, code: Value, fmt: numerics.Minifloat) -> tuple[Value, Value, Value]:
    """(nan, pos_inf, neg_inf) of a format code: the result lane's flags, read off the value."""
    term = code_term(m, name, code, fmt)
    return term.nan, term.inf & ~term.neg, term.inf & term.neg
