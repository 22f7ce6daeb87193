"""A multiply-accumulate PE for any pair of element formats, the hardware of `numerics.dot`.

Each cycle with `en` high, the product of the decoded operands is aligned to the accumulator's
lsb and added (`clear` starts a new sum with this cycle's product). The exact accumulator is
exactly `numerics.exact_width(a, b, k_terms)` bits wide, so the register equals
`numerics.dot(..., ExactAccumulator())` in units of 2**lsb_exponent; a fixed accumulator wraps or
saturates like `numerics.FixedAccumulator`. NaN and Inf are tracked in sticky flags as IEEE would.
A float accumulator (`numerics.FloatAccumulator`, order "sequential") holds a format code and adds
each exact product with one rounding (hw/_float_acc.py), a fused multiply-add chain.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import numerics
from numerics import ExactAccumulator, FixedAccumulator, FloatAccumulator

from ._decode import MinifloatDecoder, decoded_layout, decoder_for, element_format
from ._float_acc import check_float_format, float_add
from ._pe import exact_product, product_term


class MacPE(wiring.Component):
    """Ports: a : In(a.bits); b : In(b.bits); en, clear : In(1); acc : Out(signed(acc_width));
    valid : Out(1) (acc holds a finished update); nan, pos_inf, neg_inf : Out(1) (sticky since
    the last clear). `pipeline` (0-2) registers the decoded operands and the product first.

    With a `FloatAccumulator`, acc : Out(unsigned(format.bits)) is the accumulator's format code
    (acc_width = format.bits) and nan, pos_inf, neg_inf read it: NaN, +Inf, -Inf (sticky by IEEE
    arithmetic: NaN stays, Inf stays or meets -Inf and becomes NaN). `lsb_exponent` is 0 there (a
    code is no scaled integer). The accumulate loop (unpack, align, add, round) is one cycle: the
    PE's long path, as in any single-cycle fused multiply-add chain.
    """

    def __init__(
        self,
        a_format: numerics.ElementFormat | str,
        b_format: numerics.ElementFormat | str,
        accumulator: ExactAccumulator | FixedAccumulator | FloatAccumulator | None = None,
        k_terms: int = 1024,
        pipeline: int = 1,
        use_dsp: bool = True,
    ) -> None:
        self.use_dsp = use_dsp  # False: a LUT Booth multiplier instead of `*` (no DSP inferred)
        try:
            self._configure(a_format, b_format, accumulator, k_terms, pipeline)
        except (ValueError, TypeError):
            self._MustUse__silence = True  # a rejected configuration is not an unused design
            raise
        super().__init__({
            "a": In(self.a_format.bits),
            "b": In(self.b_format.bits),
            "en": In(1),
            "clear": In(1),
            "acc": Out(unsigned(self.acc_width) if self.is_float else signed(self.acc_width)),
            "valid": Out(1),
            "nan": Out(1),
            "pos_inf": Out(1),
            "neg_inf": Out(1),
        })  # fmt: skip

    def _configure(
        self,
        a_format: numerics.ElementFormat | str,
        b_format: numerics.ElementFormat | str,
        accumulator: ExactAccumulator | FixedAccumulator | FloatAccumulator | None,
        k_terms: int,
        pipeline: int,
    ) -> None:
        a, b = element_format(a_format), element_format(b_format)
        self.a_format, self.b_format = a, b
        self.a_layout, self.b_layout = decoded_layout(a), decoded_layout(b)
        self.accumulator = accumulator or ExactAccumulator()
        if not isinstance(self.accumulator, ExactAccumulator | FixedAccumulator | FloatAccumulator):
            raise ValueError(
                "accumulator must be ExactAccumulator, FixedAccumulator or FloatAccumulator, "
                f"got {type(self.accumulator).__name__}"
            )
        self.is_float = isinstance(self.accumulator, FloatAccumulator)
        if isinstance(self.accumulator, FloatAccumulator):
            if self.accumulator.order != "sequential":
                raise ValueError(
                    "a MAC PE adds every product to its float accumulator: order must be 'sequential', "
                    f"got {self.accumulator.order!r}"
                )
            check_float_format(self.accumulator.format)
        if k_terms < 1:
            raise ValueError(f"k_terms must be >= 1, got {k_terms}")
        if pipeline not in (0, 1, 2):
            raise ValueError(f"pipeline must be 0, 1 or 2, got {pipeline}")
        self.k_terms, self.pipeline = k_terms, pipeline
        self.acc_width = self.accumulator.required_width(a, b, k_terms)
        exact_lsb = a.lsb_exponent + b.lsb_exponent
        if self.is_float:
            self.lsb_exponent, self.saturate = 0, False
            return
        lsb = getattr(self.accumulator, "lsb_exponent", None)
        self.lsb_exponent = exact_lsb if lsb is None else lsb
        if self.lsb_exponent < exact_lsb:
            raise ValueError(f"lsb_exponent must be >= the exact product lsb {exact_lsb}, got {self.lsb_exponent}")
        self.saturate = isinstance(self.accumulator, FixedAccumulator) and self.accumulator.overflow == "saturate"

    @property
    def latency(self) -> int:
        """Cycles from inputs to the accumulator holding their product."""
        return self.pipeline + 1

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.a_decoder = a_dec = decoder_for(self.a_format)
        m.submodules.b_decoder = b_dec = decoder_for(self.b_format)
        m.d.comb += [a_dec.code.eq(self.a), b_dec.code.eq(self.b)]

        en, clear = Signal(), Signal()
        m.d.comb += [en.eq(self.en), clear.eq(self.clear)]
        layouts = (self.a_layout, self.b_layout)
        if self.is_float:
            self._accumulate_float(m, a_dec, b_dec, en, clear)
            return m
        term = product_term(m, a_dec, b_dec, *layouts, self.lsb_exponent, self.pipeline, (en, clear), self.use_dsp)
        en2, clear2 = term.passengers
        aligned, nan2, inf2, neg2 = term.value, term.nan, term.inf, term.neg
        aligned_width = aligned.shape().width

        # Accumulate.
        base = Mux(clear2, 0, self.acc)
        addend = Mux(en2, aligned, 0)
        if self.saturate:
            wide = Signal(signed(max(aligned_width, self.acc_width) + 1))
            high, low = (1 << (self.acc_width - 1)) - 1, -(1 << (self.acc_width - 1))
            m.d.comb += wide.eq(base + addend)
            total = Mux(wide > high, high, Mux(wide < low, low, wide))
        else:
            total = base + addend  # truncated to acc_width on assignment: two's complement wrap
        with m.If(en2 | clear2):
            m.d.sync += self.acc.eq(total)
        m.d.sync += self.valid.eq(en2)
        keep_nan, keep_pos, keep_neg = (
            Mux(clear2, 0, self.nan),
            Mux(clear2, 0, self.pos_inf),
            Mux(clear2, 0, self.neg_inf),
        )
        with m.If(en2 | clear2):
            m.d.sync += [
                self.nan.eq(keep_nan | (en2 & nan2)),
                self.pos_inf.eq(keep_pos | (en2 & inf2 & ~neg2)),
                self.neg_inf.eq(keep_neg | (en2 & inf2 & neg2)),
            ]
        return m

    def _accumulate_float(self, m: Module, a_dec: object, b_dec: object, en: Signal, clear: Signal) -> None:
        """acc <= add(clear ? +0 : acc, a * b) on enabled cycles; a clear alone leaves +0."""
        assert isinstance(self.accumulator, FloatAccumulator)
        layouts = (self.a_layout, self.b_layout)
        term, (en2, clear2) = exact_product(m, a_dec, b_dec, *layouts, self.pipeline, (en, clear), self.use_dsp)
        total = float_add(m, "float", Mux(clear2, 0, self.acc), term, self.accumulator)
        with m.If(en2):
            m.d.sync += self.acc.eq(total)
        with m.Elif(clear2):
            m.d.sync += self.acc.eq(0)  # +0: the code 0 in every format the accumulator takes
        m.d.sync += self.valid.eq(en2)
        m.submodules.acc_reader = reader = MinifloatDecoder(self.accumulator.format)
        m.d.comb += [
            reader.code.eq(self.acc),
            self.nan.eq(reader.nan),
            self.pos_inf.eq(reader.inf & ~reader.neg),
            self.neg_inf.eq(reader.inf & reader.neg),
        ]
