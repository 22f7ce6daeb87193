"""Pieces both systolic dataflows are built from: skew lines, edge decoders, sticky-flag sums."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Module, Mux, Signal, signed
from amaranth.hdl import Value
from amaranth.lib import data

from numerics import FloatAccumulator, OVPFormat

from ._decode import DecodedLayout, decoded_layout, decoder_for
from ._float_acc import FloatTerm, code_term, float_add
from ._float_compact import compact_add, compact_fits, compact_round
from ._float_convert import code_flags, float_round
from ._ovp import OVPPairDecoder
from ._pe import Term, decoded_struct


def skew_line(m: Module, name: str, value: Any, delay: int) -> Any:
    """`value` (a Value or a struct View) delayed by `delay` registers (0: the value itself)."""
    current = value
    for stage in range(delay):
        nxt = Signal(current.shape(), name=f"{name}_d{stage}")
        m.d.sync += nxt.eq(current)
        current = nxt
    return current


def register(m: Module, name: str, value: Any) -> Any:
    return skew_line(m, name, value, 1)


def cleared(total: Any, clear: Value) -> SimpleNamespace:
    """A running sum's fields, or zeros where `clear` starts a new sum."""
    fields = ("acc", "nan", "pos_inf", "neg_inf")
    return SimpleNamespace(**{field: Mux(clear, 0, getattr(total, field)) for field in fields})


def decoded(m: Module, name: str, fmt: Any, code: Value) -> Any:
    """A decoder on `code`, its outputs gathered into one decoded struct (combinational)."""
    decoder = decoder_for(fmt)
    m.submodules[f"{name}_decoder"] = decoder
    view = Signal(decoded_struct(decoded_layout(decoder.format)), name=f"{name}_decoded")
    m.d.comb += [
        decoder.code.eq(code),
        view.sig.eq(decoder.sig),
        view.exp.eq(decoder.exp),
        view.nan.eq(decoder.nan),
        view.inf.eq(decoder.inf),
        view.neg.eq(decoder.neg),
    ]
    return view


def edge_code(stream: Any, zero_point: int, datapath: Any, code: Value) -> Value:
    """A stream code as the datapath's code: with a zero point, code - zero point in the signed
    integer one bit wider (exact: both lie in the stream format's range)."""
    if stream is None:
        return code
    value = code.as_signed() if stream.signed else code.as_unsigned()
    return (value - zero_point)[: datapath.bits]


def edge_lanes(m: Module, name: str, fmt: Any, codes: list[Value], early_odd_lanes: bool = False) -> list[Any]:
    """Decoded operands entering the array, lane l delayed by l + 1 cycles (the skew); with
    `early_odd_lanes` lane 2p + 1 is delayed as lane 2p is (DSP packing: both meet in PE 2p).

    Element formats skew the codes and decode at the array edge; OliVe pairs (lanes 2p, 2p + 1)
    decode first, so both codes of a pair meet in one pair decoder."""
    if not isinstance(fmt, OVPFormat):
        delays = [lane + 1 - (early_odd_lanes and lane % 2) for lane in range(len(codes))]
        return [decoded(m, f"{name}_edge{lane}", fmt, skew_line(m, f"{name}_line{lane}", code, delays[lane]))
                for lane, code in enumerate(codes)]  # fmt: skip
    layout = decoded_struct(ovp_layout(fmt))
    lanes = []
    for pair in range(len(codes) // 2):
        decoder = OVPPairDecoder(fmt.element_bits)
        m.submodules[f"{name}_pair{pair}"] = decoder
        m.d.comb += [decoder.c0.eq(codes[2 * pair]), decoder.c1.eq(codes[2 * pair + 1])]
        for half, (sig, exp) in enumerate(((decoder.sig0, decoder.exp0), (decoder.sig1, decoder.exp1))):
            view = Signal(layout, name=f"{name}_pair{pair}_{half}")
            m.d.comb += [view.sig.eq(sig), view.exp.eq(exp)]
            lanes.append(view)
    return [skew_line(m, f"{name}_line{lane}", view, lane + 1) for lane, view in enumerate(lanes)]


def ovp_layout(fmt: OVPFormat) -> DecodedLayout:
    """An OliVe element as the pair decoder gives it: int * 2**exp, exp in 0..5."""
    return DecodedLayout(fmt.element_bits, 3, 0)


def sum_layout(width: int) -> data.StructLayout:
    """A running sum with the sticky special-value flags of `MacPE`."""
    return data.StructLayout({"acc": signed(width), "nan": 1, "pos_inf": 1, "neg_inf": 1})


def add_term(base: Any, term: Term, valid: Value) -> list[Any]:
    """Fields of `base` + `term` (the term counts only when `valid`), as (acc, nan, pos_inf, neg_inf)."""
    return [
        base.acc + Mux(valid, term.value, 0),
        base.nan | (valid & term.nan),
        base.pos_inf | (valid & term.inf & ~term.neg),
        base.neg_inf | (valid & term.inf & term.neg),
    ]


def assign_sum(target: Any, fields: list[Any]) -> list[Any]:
    return [
        target.acc.eq(fields[0]),
        target.nan.eq(fields[1]),
        target.pos_inf.eq(fields[2]),
        target.neg_inf.eq(fields[3]),
    ]


def merge_sums(a: Any, b: Any) -> list[Any]:
    """Fields of the sum of two running sums."""
    return [a.acc + b.acc, a.nan | b.nan, a.pos_inf | b.pos_inf, a.neg_inf | b.neg_inf]


def sum_term(m: Module, name: str, total: Any, exp: Value, exp_base: int, nan: Value | int = 0) -> FloatTerm:
    """An exact running sum (acc and sticky flags, as `sum_layout`) as a float addend worth
    acc * 2**(exp + exp_base); `nan` adds a reason for NaN (an MX NaN scale). Its flags read as
    `MacPE`'s do: NaN, or both infinities, is NaN."""
    is_nan, is_inf = Signal(name=f"{name}_nan"), Signal(name=f"{name}_inf")
    m.d.comb += [
        is_nan.eq(total.nan | (total.pos_inf & total.neg_inf) | nan),
        is_inf.eq((total.pos_inf | total.neg_inf) & ~is_nan),
    ]
    return FloatTerm(total.acc, exp, exp_base, is_nan, is_inf, Mux(is_inf, total.neg_inf, total.acc < 0))


def code_lane(m: Module, name: str, lane: Any, code: Value, fmt: Any) -> list[Any]:
    """Statements setting a result lane from a float accumulator's code: `acc` is the code, the
    flags are read off its value."""
    nan, pos_inf, neg_inf = code_flags(m, name, code, fmt)
    return [lane.acc.eq(code), lane.nan.eq(nan), lane.pos_inf.eq(pos_inf), lane.neg_inf.eq(neg_inf)]


def add_rounded(m: Module, name: str, base: Value, term: FloatTerm, accumulator: FloatAccumulator) -> Value:
    """The code of base + term, term (a block's or a fold's exact sum) first rounded to the
    accumulator's format: numerics' order "blocked". Combinational; `name` must be unique in `m`.
    IEEE-style formats with full alignment take the lean datapath (hw/_float_compact.py)."""
    fmt = accumulator.format
    if compact_fits(accumulator):
        toward_zero = accumulator.rounding == "toward_zero"
        return compact_add(m, name, base, compact_round(m, f"{name}_sum", term, fmt, toward_zero), fmt, toward_zero)
    rounded = float_round(m, f"{name}_sum", term, fmt, accumulator.rounding)
    return float_add(m, name, base, code_term(m, f"{name}_sum", rounded, fmt), accumulator)
