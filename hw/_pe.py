"""The arithmetic every MAC shares: decoded operands -> an exact product aligned to the accumulator lsb.

`MacPE`, the systolic arrays and the MX/OVP variants all call `product_term`, so a product means
the same bits everywhere: significand product, exponent sum, arithmetic-shift alignment (bits
below the accumulator lsb are floored, as `numerics.FixedAccumulator` specifies) and IEEE
classification of NaN/Inf. Float accumulators take the same product un-aligned (`exact_product`).
Signals given as `passengers` are delayed along with the pipeline.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Value
from amaranth.lib import data

from ._decode import DecodedLayout
from ._dsp_ecp5 import ecp5_multiply
from ._float_acc import FloatTerm

Signals = tuple[Signal, ...]
Operands = tuple[Value, Value]


def decoded_struct(layout: DecodedLayout) -> data.StructLayout:
    """One decoded operand as a struct, so it can ride through registers as one value."""
    return data.StructLayout({
        "sig": signed(layout.sig_width + 1),
        "exp": unsigned(layout.exp_width),
        "nan": 1,
        "inf": 1,
        "neg": 1,
    })  # fmt: skip


@dataclass(frozen=True)
class Term:
    """An aligned product: value in units of 2**lsb_exponent, and its special-value class."""

    value: Signal
    nan: Signal
    inf: Signal  # Inf and not NaN
    neg: Signal
    passengers: tuple[Signal, ...]


def booth_multiply(m: Module, x: Value, y: Value, name: str = "booth") -> Value:
    """x * y (both signed) from radix-4 Booth partial products, with no `$mul` cell, so no DSP is
    inferred. The partial products are summed as a balanced tree of kept signals, so yosys maps
    each sum to a carry chain (instead of merging them into one LUT adder tree) and the path is
    log2(partial products) chains deep."""
    n = y.shape().width
    width = x.shape().width + n + 2
    level: list[Value] = []
    for j in range((n + 1) // 2):
        high = y[min(2 * j + 1, n - 1)]  # sign-extended past the top bit
        mid, low = y[2 * j], (y[2 * j - 1] if j else Const(0, 1))
        one = mid ^ low
        two = (high & ~mid & ~low) | (~high & mid & low)
        neg = high & ~(mid & low)
        magnitude = Mux(one, x.as_signed(), Mux(two, x.as_signed() << 1, 0))
        level.append((Mux(neg, ~magnitude, magnitude) + neg) << (2 * j))  # ~v + 1 = -v
    depth = 0
    while len(level) > 1:
        sums: list[Value] = []
        for i in range(0, len(level) - 1, 2):
            total = Signal(signed(width), name=f"{name}_sum{depth}_{i // 2}", attrs={"keep": 1})
            m.d.comb += total.eq(level[i] + level[i + 1])
            sums.append(total)
        level = sums + level[len(level) - len(level) % 2 :]
        depth += 1
    return level[0]


def exact_product(m: Module, a: Any, b: Any, a_layout: DecodedLayout, b_layout: DecodedLayout, pipeline: int,
                  passengers: tuple[Value, ...] = (), use_dsp: bool = True,
                  ecp5_next: Operands | None = None) -> tuple[FloatTerm, Signals]:  # fmt: skip
    """The un-aligned exact product of decoded operands `a`, `b` as a FloatTerm (significand
    product, exponent sum, NaN/Inf/sign), for a float accumulator, and the passengers beside it.

    The same stages as `product_term`: pipeline 0: combinational; 1: register the product and
    exponent; 2: register them once more (where `product_term` registers the aligned term).
    """
    (product, exponent), nan, inf, neg, riders = _product(m, a, b, (a_layout, b_layout), None, pipeline, passengers,
                                                          use_dsp, ecp5_next=ecp5_next)  # fmt: skip
    return FloatTerm(product, exponent, a_layout.exp_base + b_layout.exp_base, nan, inf, neg), riders


def product_term(
    m: Module,
    a: Any,
    b: Any,
    a_layout: DecodedLayout,
    b_layout: DecodedLayout,
    lsb_exponent: int,
    pipeline: int,
    passengers: tuple[Value, ...] = (),
    use_dsp: bool = True,
    ecp5_next: Operands | None = None,
) -> Term:
    """Emit the product of decoded operands `a`, `b` (anything with sig/exp/nan/inf/neg) into `m`.

    pipeline 0: combinational; 1: register the product and exponent; 2: also the aligned term.
    """
    (aligned,), nan, inf, neg, riders = _product(m, a, b, (a_layout, b_layout), lsb_exponent, pipeline, passengers,
                                                 use_dsp, ecp5_next=ecp5_next)  # fmt: skip
    return Term(aligned, nan, inf, neg, riders)


def packed_product_terms(m: Module, name: str, a: Any, b0: Any, b1: Any, a_layout: DecodedLayout,
                         b_layout: DecodedLayout, lsb_exponent: int, pipeline: int, shift: int,
                         passengers: tuple[Value, ...] = ()) -> tuple[Term, Term]:  # fmt: skip
    """`product_term` of integer operands a x b0 and a x b1 from one multiplication (DSP packing):
    a * P with P = b1 * 2**shift + b0, written (b1 - sign(b0)) * 2**shift + (b0 mod 2**shift) so
    that it is a concatenation and a short subtraction. `shift` must hold any a * b0 as a signed
    value: the product's low `shift` bits, read signed, are a * b0; the bits above are
    floor(a * P / 2**shift), which is a * b1 - 1 where a * b0 < 0, so that field's sign bit is added
    back. Both terms come out at the same stage, with the same passengers."""
    low_field = Signal(shift, name=f"{name}_packed_low")
    high_field = Signal(signed(b_layout.sig_width + 2), name=f"{name}_packed_high")
    packed = Signal(signed(shift + len(high_field)), name=f"{name}_packed")
    both = Signal(signed(a_layout.sig_width + 1 + len(packed)), name=f"{name}_packed_product")
    low = Signal(signed(shift), name=f"{name}_product_low")
    high = Signal(signed(len(both) - shift + 1), name=f"{name}_product_high")
    m.d.comb += [
        low_field.eq(b0.sig.as_signed()),  # sign-extended into the field
        high_field.eq(b1.sig.as_signed() - b0.sig[-1]),
        packed.eq(Cat(low_field, high_field)),
        both.eq(a.sig * packed),
        low.eq(both[:shift].as_signed()),
        high.eq(both[shift:].as_signed() + both[shift - 1]),
    ]
    layouts = (a_layout, b_layout)
    (aligned0,), nan0, inf0, neg0, riders = _product(m, a, b0, layouts, lsb_exponent, pipeline, passengers, True, low)
    (aligned1,), nan1, inf1, neg1, _ = _product(m, a, b1, layouts, lsb_exponent, pipeline, (), True, high)
    return Term(aligned0, nan0, inf0, neg0, riders), Term(aligned1, nan1, inf1, neg1, riders)  # one set of riders


def _product(m: Module, a: Any, b: Any, layouts: tuple[DecodedLayout, DecodedLayout], lsb_exponent: int | None,
             pipeline: int, passengers: tuple[Value, ...], use_dsp: bool, multiplied: Value | None = None,
             ecp5_next: Operands | None = None) -> tuple[Signals, Signal, Signal, Signal, Signals]:  # fmt: skip
    """Both stages: ((aligned,) or, with lsb_exponent None, (product, exponent)), nan, inf, neg and
    the passengers after the second stage. `multiplied`: a.sig * b.sig computed elsewhere (packing).
    `ecp5_next`: a.sig and b.sig one cycle early, for a MULT18X18D that registers them itself and
    holds the first stage's product in its output register (`ecp5_multiply`)."""
    a_layout, b_layout = layouts
    product = Signal(signed(a_layout.sig_width + b_layout.sig_width + 2))
    exp_width = max(a_layout.exp_width, b_layout.exp_width) + 1
    exponent = Signal(exp_width)
    prod_nan, prod_inf, prod_neg = Signal(), Signal(), Signal()
    zero_a = (a.sig == 0) & ~a.inf & ~a.nan
    zero_b = (b.sig == 0) & ~b.inf & ~b.nan
    stage: list[Any] = []
    if ecp5_next is not None and use_dsp:
        m.d.comb += product.eq(ecp5_multiply(m, "dsp", *ecp5_next, output_register=pipeline >= 1))
    else:
        if multiplied is None:
            multiplied = a.sig * b.sig if use_dsp else booth_multiply(m, a.sig, b.sig)
        stage.append(product.eq(multiplied))
    stage += [
        exponent.eq(a.exp + b.exp),
        prod_nan.eq(a.nan | b.nan | (a.inf & zero_b) | (b.inf & zero_a)),
        prod_inf.eq(a.inf | b.inf),
        prod_neg.eq(a.neg ^ b.neg),
    ]
    riders1 = tuple(Signal.like(p, name=f"rider1_{i}") for i, p in enumerate(passengers))
    stage += [r.eq(p) for r, p in zip(riders1, passengers, strict=True)]
    _emit_stage(m, stage, registered=pipeline >= 1)

    stage2: list[Any]
    if lsb_exponent is None:  # un-aligned: the product and exponent themselves
        values: Signals = (Signal.like(product, name="product2"), Signal.like(exponent, name="exponent2"))
        stage2 = [values[0].eq(product), values[1].eq(exponent)]
    else:
        drop = lsb_exponent - (a_layout.exp_base + b_layout.exp_base)
        aligned = Signal(signed(product.shape().width + (1 << exp_width)))
        values, stage2 = (aligned,), [aligned.eq((product << exponent) >> drop)]
    nan2, inf2, neg2 = Signal(), Signal(), Signal()
    riders2 = tuple(Signal.like(p, name=f"rider2_{i}") for i, p in enumerate(passengers))
    stage2 += [nan2.eq(prod_nan), inf2.eq(prod_inf & ~prod_nan), neg2.eq(prod_neg)]
    stage2 += [r.eq(p) for r, p in zip(riders2, riders1, strict=True)]
    _emit_stage(m, stage2, registered=pipeline >= 2)
    return values, nan2, inf2, neg2, riders2


def _emit_stage(m: Module, statements: list[Any], registered: bool) -> None:
    if registered:
        m.d.sync += statements
    else:
        m.d.comb += statements
