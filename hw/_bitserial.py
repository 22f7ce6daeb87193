"""Bit-serial GEMM unit in the style of BitMoD (HPCA'25): weights one term per cycle, activations
in parallel, one unified term representation for every weight datatype.

A term is (zero, sign, 1-bit mantissa m, exponent e) worth +-(2 + m) * 2**e half-units of the
weight grid, so a lane's product is a shift-add, (a << 1) + m*a shifted by e: no multiplier.
- INT2..INT8 weights arrive as two bit-planes per cycle and are Booth radix-4 recoded in the PE
  (digit j in {-2..2} at 4**j): ceil(bits / 2) cycles per weight.
- FP4 E2M1 / FP3 codes and the BitMoD grids (the -0 code is +-5, +-8, +-3 or +-6, chosen by a
  per-group selector) arrive as codes and are recoded by a small table: one term per value, two
  for +-5 (= 4 + 1).
Precision is a run-time input (`mode`, and how many term beats the schedule sends): the same
hardware runs 2-, 4- and 8-bit weights in 1, 2 and 4 cycles per weight.

P PEs (one per output column) share the activation vector of L lanes. Each PE sums a group's
terms exactly, then applies the group's fp16 scale bit-serially (one significand bit per cycle,
11 cycles, overlapped with the next group) into an exact output accumulator.
"""

from __future__ import annotations

from dataclasses import dataclass

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

import numerics
from numerics import IntFormat

from ._decode import decoder_for

SCALE_BITS = 11  # fp16 significand, one bit per cycle
SCALE_EXP_RANGE = 40  # fp16 exponents of the significand lsb: -24 .. 15
MODES = {"int": 0, "fp4": 1, "fp3": 2}
_TERM = data.StructLayout({"zero": 1, "neg": 1, "man": 1, "exp": 3})


def grid_terms(bits: int, selector: int, code: int) -> list[tuple[int, int, int, int]]:
    """The two (zero, neg, man, exp) terms of a BitMoD grid code, in half-units of the grid step:
    the largest +-(2 + man) * 2**exp first (a second term only for +-5 = 4 + 1)."""
    value = int(numerics.grid_lowered(bits, selector)[0][code])
    remaining, neg = 2 * abs(value), int(value < 0)
    candidates = sorted(((2 + man) << e, man, e) for e in range(8) for man in (0, 1))
    terms = []
    while remaining:
        term, man, e = max(c for c in candidates if c[0] <= remaining)
        terms.append((0, neg, man, e))
        remaining -= term
    if len(terms) > 2:
        raise AssertionError(f"grid value {value} needs {len(terms)} terms")
    return terms + [(1, 0, 0, 0)] * (2 - len(terms))


@dataclass(frozen=True)
class BitSerialConfig:
    a_format: IntFormat
    lanes: int
    cols: int
    group: int

    @property
    def group_width(self) -> int:
        """A group's exact sum: |a| * 16 half-units (BitMoD's 8.0, INT8's -128 = -256 half-units) per term."""
        a_max = max(abs(self.a_format.min_int), self.a_format.max_int)
        return (a_max * 256 * self.group).bit_length() + 1

    @property
    def acc_width(self) -> int:
        return self.group_width + SCALE_BITS + SCALE_EXP_RANGE + 16

    @property
    def lsb_exponent_offset(self) -> int:
        """Accumulator lsb = a lsb + weight grid unit - 1 (half-units) - 24 (fp16 scale lsb)."""
        return -1 - 24


class BitSerialArray(wiring.Component):
    """Ports: beat : In(stream: a (L codes), w (P x L 4-bit slices), selector (P x 2), scale
    (P x fp16), mode, term, first, last, emit); out : Out(stream: P signed accumulators);
    busy : Out(1). One beat per cycle; `first` opens a group, `last` closes it (its scale is then
    applied), `emit` (with `last`) sends the output row once that scale has been applied."""

    def __init__(self, a_format: numerics.ElementFormat | str, lanes: int = 8, cols: int = 4, group: int = 128) -> None:
        fmt = numerics.get(a_format)
        bad = None
        if not isinstance(fmt, IntFormat) or not fmt.signed or fmt.bits > 16:
            bad = f"activations must be a signed integer format of <= 16 bits, got {getattr(fmt, 'name', fmt)}"
        elif not 1 <= lanes <= 64 or not 1 <= cols <= 64:
            bad = f"lanes and cols must be between 1 and 64, got lanes={lanes}, cols={cols}"
        elif group < 1 or group % lanes:
            bad = f"group must be a positive multiple of lanes={lanes}, got {group}"
        if bad:
            self._MustUse__silence = True
            raise ValueError(bad)
        self.config = BitSerialConfig(fmt, lanes, cols, group)  # type: ignore[arg-type]
        beat = data.StructLayout({
            "a": data.ArrayLayout(fmt.bits, lanes),
            "w": data.ArrayLayout(4, cols * lanes),
            "selector": data.ArrayLayout(2, cols),
            "scale": data.ArrayLayout(16, cols),
            "mode": 2, "term": 2, "first": 1, "last": 1, "emit": 1,
        })  # fmt: skip
        super().__init__({
            "beat": In(stream.Signature(beat)),
            "out": Out(stream.Signature(data.ArrayLayout(signed(self.config.acc_width), cols))),
            "busy": Out(1),
        })  # fmt: skip

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self.config
        beat = self.beat.payload
        fire = Signal()
        m.d.comb += [self.beat.ready.eq(1), fire.eq(self.beat.valid)]
        activations = []
        for lane in range(cfg.lanes):
            decoder = decoder_for(cfg.a_format)
            m.submodules[f"a_decoder{lane}"] = decoder
            m.d.comb += decoder.code.eq(beat.a[lane])
            activations.append(decoder.sig)
        scaling = Signal(range(SCALE_BITS + 1))  # scale bits still to apply
        pending_emit, emit_now = Signal(), Signal()
        for col in range(cfg.cols):
            self._column(m, col, fire, activations, scaling, emit_now)
        with m.If(fire & beat.last):
            m.d.sync += [scaling.eq(SCALE_BITS), pending_emit.eq(beat.emit)]
        with m.Elif(scaling != 0):
            m.d.sync += scaling.eq(scaling - 1)
        m.d.comb += emit_now.eq((scaling == 1) & pending_emit)
        m.d.sync += self.out.valid.eq(emit_now)
        m.d.comb += self.busy.eq((scaling != 0) | self.out.valid)
        return m

    def _column(self, m: Module, col: int, fire: Signal, activations: list, scaling: Signal, emit_now: Signal) -> None:
        cfg, beat = self.config, self.beat.payload
        lane_products = []
        for lane in range(cfg.lanes):
            slice_ = beat.w[col * cfg.lanes + lane]
            term = Signal(_TERM, name=f"term_{col}_{lane}")
            previous = Signal(name=f"booth_prev_{col}_{lane}")  # bit 2j-1 of an INT weight
            booth_prev = Mux(beat.term == 0, 0, previous)
            with m.If(fire):
                m.d.sync += previous.eq(slice_[1])
            self._recode(m, term, slice_, booth_prev, beat.selector[col], beat.mode, beat.term)
            a = activations[lane]
            widened = Signal(signed(a.shape().width + 2), name=f"am_{col}_{lane}")
            m.d.comb += widened.eq((a << 1) + Mux(term.man, a, 0))
            shifted = Signal(signed(widened.shape().width + 7), name=f"prod_{col}_{lane}")
            m.d.comb += shifted.eq(widened << term.exp)
            lane_products.append(Mux(term.zero, 0, Mux(term.neg, -shifted, shifted)))
        chunk = Signal(signed(cfg.group_width), name=f"chunk_{col}")
        m.d.comb += chunk.eq(sum(lane_products[1:], lane_products[0]))
        group = Signal(signed(cfg.group_width), name=f"group_{col}")
        with m.If(fire):
            m.d.sync += group.eq(Mux(beat.first, 0, group) + chunk)
        # Bit-serial scaling: the closed group's sum and scale are latched, then one significand
        # bit per cycle (msb first) adds sum << (bit + exponent) into the output accumulator.
        held = Signal(signed(cfg.group_width), name=f"held_{col}")
        sig, exp = Signal(SCALE_BITS, name=f"scale_sig_{col}"), Signal(range(SCALE_EXP_RANGE), name=f"scale_exp_{col}")
        code = beat.scale[col]
        field = code[10:15]
        acc = Signal(signed(cfg.acc_width), name=f"acc_{col}")
        with m.If(fire & beat.last):
            m.d.sync += [
                held.eq(Mux(beat.first, 0, group) + chunk),
                sig.eq(Cat(code[:10], field != 0)),
                exp.eq(Mux(field == 0, 0, field - 1)),  # significand lsb weighs 2**(exp - 24)
            ]
        bit = Signal(range(SCALE_BITS), name=f"scale_bit_{col}")
        m.d.comb += bit.eq(scaling - 1)
        addend = Mux(sig.bit_select(bit, 1), (held << exp) << bit, 0)
        with m.If(scaling != 0):
            m.d.sync += acc.eq(acc + addend)
        with m.If(emit_now):
            m.d.sync += [self.out.payload[col].eq(acc + addend), acc.eq(0)]

    def _recode(self, m: Module, term: data.View, slice_: object, prev: object, selector: object, mode: object,
                index: object) -> None:  # fmt: skip
        b1, b0 = slice_[1], slice_[0]  # type: ignore[index]
        digit_neg = b1 & ~(b0 & prev)
        two = (b1 & ~b0 & ~prev) | (~b1 & b0 & prev)
        zero = (b1 == b0) & (b0 == prev)
        with m.Switch(mode):
            with m.Case(MODES["int"]):
                m.d.comb += [term.zero.eq(zero), term.neg.eq(digit_neg), term.man.eq(0),
                             term.exp.eq((index << 1) + two)]  # fmt: skip
            for name, bits in (("fp4", 4), ("fp3", 3)):
                with m.Case(MODES[name]):
                    m.d.comb += term.zero.eq(1)
                    with m.Switch(Cat(slice_[:bits], selector, index[0])):  # type: ignore[index]
                        for sel in range(4):
                            for code in range(1 << bits):
                                for which, (z, neg, man, e) in enumerate(grid_terms(bits, sel, code)):
                                    with m.Case(code | (sel << bits) | (which << (bits + 2))):
                                        m.d.comb += [term.zero.eq(z), term.neg.eq(neg), term.man.eq(man),
                                                     term.exp.eq(e)]  # fmt: skip
