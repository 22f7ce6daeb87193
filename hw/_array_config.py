"""What a systolic array is: formats, shape, dataflow and options, checked once with clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from amaranth import signed, unsigned
from amaranth.lib import data

import numerics
from numerics import BlockFormat, ExactAccumulator, FixedAccumulator, FloatAccumulator, IntFormat, OVPFormat

from ._array_parts import ovp_layout
from ._decode import DecodedLayout, decoded_layout, element_format
from ._dsp_ecp5 import PORT_BITS as DSP_PORT_BITS  # a packed multiply, and a primitive's operands, fit it
from ._float_acc import check_float_format

Dataflow = Literal["ws", "os"]
MX_SCALE_BIAS = 127
SIZE_BITS = 16  # M, K and N ports: GEMMs up to 65,535 in each dimension
DSP_PRIMITIVES = ("ecp5",)


@dataclass(frozen=True)
class ArrayConfig:
    """An R x C array for (a, b, accumulator). `k_max` bounds K (it sets the exact accumulator
    width); `m_max` is the depth of the weight-stationary output accumulator (M <= m_max).

    A float accumulator is held with the order this dataflow realises (`numerics_accumulator`):
    output-stationary PEs add every product in k order ("sequential"; MX: each block's exact
    scaled sum, rounded, "blocked" by the block size); weight-stationary columns round the exact
    sum of a fold's R rows and add it into the output buffer ("blocked", block = rows).

    `build` without an accumulator takes, for MX operands, the OCP MX datapath: each block's dot
    product exact in a narrow register, scaled by both E8M0 scales, added into fp32; for other
    operands, exact (Kulisch) accumulation. `ExactAccumulator()` keeps MX exact (2 * 254 bits wider)."""

    a_format: numerics.ElementFormat
    b_format: numerics.ElementFormat
    accumulator: ExactAccumulator | FixedAccumulator | FloatAccumulator
    rows: int
    cols: int
    dataflow: Dataflow = "ws"
    double_buffer: bool = False
    pipeline: int = 0
    dsp_budget: int | None = None
    k_max: int = 4096
    m_max: int = 256
    block: BlockFormat | None = None  # OCP MX operands: both a and b, blocks of this format along K
    a_ovp: OVPFormat | None = None  # OliVe operands: pairs along the stream's lanes
    b_ovp: OVPFormat | None = None
    # Integer codes with a zero point: the stream carries `stream` codes, the array edge subtracts
    # the zero point, and the datapath (a_format / b_format) is the signed integer one bit wider.
    a_stream: IntFormat | None = None
    b_stream: IntFormat | None = None
    a_zero_point: int = 0
    b_zero_point: int = 0
    # two PEs of a row share one DSP multiply: a * (b1 * 2**pack_shift + b0) (see `pack_shift`)
    dsp_pack: bool = False
    # "ecp5": each DSP product on an instantiated MULT18X18D with its input and output registers in
    # use (yosys' inference leaves them off); None: `*`, which the synthesis tool maps
    dsp_primitive: str | None = None

    @classmethod
    def build(
        cls,
        a_format: numerics.ElementFormat | str,
        b_format: numerics.ElementFormat | str,
        accumulator: ExactAccumulator | FixedAccumulator | FloatAccumulator | None = None,
        rows: int = 4,
        cols: int = 4,
        dataflow: str = "ws",
        double_buffer: bool = False,
        pipeline: int = 0,
        dsp_budget: int | None = None,
        k_max: int = 4096,
        m_max: int = 256,
        a_zero_point: int = 0,
        b_zero_point: int = 0,
        dsp_pack: bool = False,
        dsp_primitive: str | None = None,
    ) -> ArrayConfig:
        a_stream, a_format = _zero_pointed(a_format, a_zero_point, "a")
        b_stream, b_format = _zero_pointed(b_format, b_zero_point, "b")
        block = _mx_block(a_format, b_format, accumulator, dataflow, rows)
        if accumulator is None:
            accumulator = default_accumulator(a_format)
        if block is not None:
            a_format = b_format = block.element
        a_ovp, b_ovp = _ovp(a_format, rows, "rows"), _ovp(b_format, cols, "cols")
        if a_ovp is not None:
            a_format = _OVP_WIDTH_BOUND[a_ovp.element_bits]
        if b_ovp is not None:
            b_format = _OVP_WIDTH_BOUND[b_ovp.element_bits]
        if not isinstance(accumulator, ExactAccumulator | FixedAccumulator | FloatAccumulator):
            raise ValueError(f"accumulator must be ExactAccumulator, FixedAccumulator or FloatAccumulator, "
                             f"got {type(accumulator).__name__}")  # fmt: skip
        if isinstance(accumulator, FixedAccumulator) and accumulator.overflow == "saturate":
            raise ValueError(
                "a systolic array sums partial sums in dataflow order, so a saturating accumulator would not "
                "match numerics' k-order clamping: use ExactAccumulator, FixedAccumulator(overflow='wrap') or "
                f"FloatAccumulator; got {_spelled(accumulator)}"
            )
        for name, value in (("rows", rows), ("cols", cols)):
            if not 2 <= value <= 64:
                raise ValueError(f"{name} must be between 2 and 64, got {value}")
        if dataflow not in ("ws", "os"):
            raise ValueError(f"dataflow must be 'ws' (weight-stationary) or 'os' (output-stationary), got {dataflow!r}")
        if double_buffer and dataflow != "ws":
            raise ValueError("double_buffer applies to weight-stationary arrays (dataflow='ws'), not 'os'")
        if pipeline not in (0, 1, 2):
            raise ValueError(f"pipeline must be 0, 1 or 2, got {pipeline}")
        if dsp_budget is not None and dsp_budget < 0:
            raise ValueError(f"dsp_budget must be >= 0 (or None for no limit), got {dsp_budget}")
        if not 1 <= k_max < 1 << SIZE_BITS:
            raise ValueError(f"k_max must be between 1 and {(1 << SIZE_BITS) - 1}, got {k_max}")
        if not 1 <= m_max <= 1 << 14:
            raise ValueError(f"m_max must be between 1 and {1 << 14}, got {m_max}")
        if isinstance(accumulator, FloatAccumulator):
            if a_ovp is not None or b_ovp is not None:
                raise ValueError(f"OliVe arrays compute on the integer grid and apply the fp32 scale outside, once "
                                 f"per result: a float accumulator would round before it; use ExactAccumulator "
                                 f"('exact') or a wrapping FixedAccumulator ('int{{W}}'); got "
                                 f"{_spelled(accumulator)}")  # fmt: skip
            check_float_format(accumulator.format)
            if block is None:
                _check_reach(accumulator, element_format(a_format), element_format(b_format))
            accumulator = realised_order(accumulator, dataflow, rows, block)
        config = cls(element_format(a_format), element_format(b_format), accumulator, rows, cols, dataflow,
                     double_buffer, pipeline, dsp_budget, k_max, m_max, block, a_ovp, b_ovp, a_stream,
                     b_stream, a_zero_point, b_zero_point, dsp_pack, dsp_primitive)  # type: ignore[arg-type]  # fmt: skip
        if dsp_pack:
            config.check_dsp_pack()
        if dsp_primitive is not None:
            config.check_dsp_primitive()
        if isinstance(accumulator, FixedAccumulator) and config.lsb_exponent < config.exact_lsb:
            raise ValueError(
                f"lsb_exponent must be >= the exact product lsb {config.exact_lsb}, got {config.lsb_exponent}"
            )
        return config

    @property
    def a_code_format(self) -> numerics.ElementFormat:
        """The format of the codes on the a stream (the datapath's, unless a zero point is subtracted)."""
        return self.a_stream or self.a_format

    @property
    def b_code_format(self) -> numerics.ElementFormat:
        return self.b_stream or self.b_format

    @property
    def a_kind(self) -> numerics.ElementFormat | OVPFormat:
        """What the a lanes carry: an element format or OliVe pairs."""
        return self.a_ovp or self.a_format

    @property
    def b_kind(self) -> numerics.ElementFormat | OVPFormat:
        return self.b_ovp or self.b_format

    @property
    def a_layout(self) -> DecodedLayout:
        return ovp_layout(self.a_ovp) if self.a_ovp else decoded_layout(self.a_format)

    @property
    def b_layout(self) -> DecodedLayout:
        return ovp_layout(self.b_ovp) if self.b_ovp else decoded_layout(self.b_format)

    @property
    def float_format(self) -> numerics.Minifloat | None:
        """The accumulator's format when it is a float accumulator (results are its codes), else None."""
        return self.accumulator.format if isinstance(self.accumulator, FloatAccumulator) else None

    @property
    def numerics_accumulator(self) -> ExactAccumulator | FixedAccumulator | FloatAccumulator:
        """What numerics must be given to predict the results: the accumulator itself; a float one
        with the order this dataflow realises (see the class docstring)."""
        return self.accumulator

    @property
    def exact_lsb(self) -> int:
        return self.a_format.lsb_exponent + self.b_format.lsb_exponent

    @property
    def product_lsb(self) -> int:
        """The weight of a PE partial sum's lsb (element products, before any MX block scale)."""
        lsb = getattr(self.accumulator, "lsb_exponent", None)
        return self.exact_lsb if lsb is None else lsb

    @property
    def lsb_exponent(self) -> int:
        """The weight of the result's lsb: results are integers in units of 2**lsb_exponent. MX
        results sit 2 * 127 below the element lsb: the block scales add 0..508 to the exponent.
        (Float accumulators: the results are format codes, and this is the exact partial sums' lsb.)"""
        if self.block is None:
            return self.product_lsb
        return self.product_lsb + 2 * self.block.element_exponent - 2 * MX_SCALE_BIAS

    @property
    def acc_width(self) -> int:
        """Bits of a result's `acc`: the accumulator register (a float accumulator: its format's code)."""
        width = self.accumulator.required_width(self.a_format, self.b_format, self.k_max)
        return width if self.block is None or self.float_format is not None else width + 4 * MX_SCALE_BIAS

    def partial_width(self, terms: int) -> int:
        """Width of a partial sum of `terms` products (exact: just enough; fixed: the register; a
        float accumulator sums blocks and folds exactly before it rounds them)."""
        if isinstance(self.accumulator, FloatAccumulator):
            return numerics.exact_width(self.a_format, self.b_format, min(terms, self.k_max))
        return self.accumulator.required_width(self.a_format, self.b_format, min(terms, self.k_max))

    @property
    def shares_block_adder(self) -> bool:
        """An output-stationary MX array with a float accumulator rounds and adds its blocks in one
        unit per PE row: the PEs of a row finish a block on successive cycles (the skew), so while
        a row is no wider than a block no two of them need the unit at once, except at a fold's
        short last block, before which the controller waits (`final_block_wait`)."""
        return (self.dataflow == "os" and self.block is not None and self.float_format is not None
                and self.cols <= self.block.block_size)  # fmt: skip

    def final_block_wait(self, k: int) -> int:
        """Idle cycles before a fold's last block when it is shorter than a row (L < C of them, after
        a full block): its ends then reach each row's block adder C cycles after the full block's."""
        if not self.shares_block_adder or self.block is None or k <= self.block.block_size:
            return 0
        last = k - self.block.block_size * ((k - 1) // self.block.block_size)
        return max(0, self.cols - last)

    @property
    def pack_shift(self) -> int:
        """DSP packing: where b1 sits in the packed weight. a * b0 of signed wa- and wb-bit operands
        lies in (-2**(wa+wb-1), 2**(wa+wb-1)), so the low wa + wb bits of the product hold it exactly."""
        return self.a_layout.sig_width + 1 + self.b_layout.sig_width + 1

    @property
    def packed_width(self) -> int:
        """Bits of the packed weight (b1 - sign(b0)) * 2**pack_shift + (b0 mod 2**pack_shift), signed."""
        return self.pack_shift + self.b_layout.sig_width + 2

    def check_dsp_pack(self) -> None:
        """DSP packing is built for output-stationary integer arrays whose packed multiply fits one
        18 x 18 DSP: columns 2p and 2p + 1 share row i's activation, so PE(i, 2p)'s DSP computes both
        products."""
        fmt = f"{self.a_name} x {self.b_name}"
        if self.dataflow != "os":
            raise ValueError(f"dsp_pack is built for output-stationary arrays (dataflow='os'), got {self.dataflow!r}")
        if self.cols % 2:
            raise ValueError(f"dsp_pack pairs columns: cols must be even, got {self.cols}")
        if self.dsp_budget is not None:
            raise ValueError(f"dsp_pack puts every column pair on one DSP multiplier: dsp_budget must be None, "
                             f"got {self.dsp_budget}")  # fmt: skip
        integers = isinstance(self.a_format, IntFormat) and isinstance(self.b_format, IntFormat)
        if not integers or self.block is not None or self.a_ovp or self.b_ovp or self.float_format is not None:
            raise ValueError(f"dsp_pack takes integer operands and an exact or int{{W}} accumulator, got {fmt} "
                             f"with {_spelled(self.accumulator)}")  # fmt: skip
        wa = self.a_layout.sig_width + 1
        if self.packed_width > DSP_PORT_BITS or wa > DSP_PORT_BITS:
            raise ValueError(f"dsp_pack needs a x (two weights) within one {DSP_PORT_BITS} x {DSP_PORT_BITS} DSP: "
                             f"{fmt} packs {wa} x {self.packed_width} bits (int8 x int4, int4 x int4 fit)")  # fmt: skip

    def check_dsp_primitive(self) -> None:
        """The instantiated MULT18X18D is built for output-stationary arrays: nothing there freezes,
        so the DSP's registers, which no enable reaches, keep step with the fabric's."""
        if self.dsp_primitive not in DSP_PRIMITIVES:
            raise ValueError(f"dsp_primitive must be one of {', '.join(DSP_PRIMITIVES)} (or None: the synthesis "
                             f"tool maps `*`), got {self.dsp_primitive!r}")  # fmt: skip
        if self.dataflow != "os":
            raise ValueError(f"dsp_primitive is built for output-stationary arrays (dataflow='os'), "
                             f"got {self.dataflow!r}")  # fmt: skip
        if self.dsp_pack:
            raise ValueError("dsp_primitive and dsp_pack cannot be combined: a packed pair's split is not built "
                             "around the DSP's registers")  # fmt: skip
        if self.dsp_budget == 0:
            raise ValueError("dsp_primitive needs DSPs: dsp_budget is 0 (LUT multipliers only)")
        widths = (self.a_layout.sig_width + 1, self.b_layout.sig_width + 1)
        if max(widths) > DSP_PORT_BITS:
            raise ValueError(f"dsp_primitive needs operands within one {DSP_PORT_BITS} x {DSP_PORT_BITS} DSP: "
                             f"{self.a_name} x {self.b_name} multiplies {widths[0]} x {widths[1]} bits")  # fmt: skip

    def uses_dsp(self, row: int, col: int) -> bool:
        """PEs are numbered row-major; those beyond the DSP budget get LUT multipliers."""
        return self.dsp_budget is None or row * self.cols + col < self.dsp_budget

    @property
    def lane_layout(self) -> data.StructLayout:
        """A result lane; a float accumulator's `acc` is its format code (the flags read off it)."""
        acc = signed(self.acc_width) if self.float_format is None else unsigned(self.acc_width)
        return data.StructLayout({"acc": acc, "nan": 1, "pos_inf": 1, "neg_inf": 1})

    @property
    def latency(self) -> int:
        """Cycles a product spends in the PE before it reaches the adder."""
        return self.pipeline

    @property
    def a_name(self) -> str:
        if self.a_stream is not None:
            return f"{self.a_stream.name} zp {self.a_zero_point}"
        return (self.block or self.a_ovp or self.a_format).name

    @property
    def b_name(self) -> str:
        if self.b_stream is not None:
            return f"{self.b_stream.name} zp {self.b_zero_point}"
        return (self.block or self.b_ovp or self.b_format).name

    def describe(self) -> str:
        accumulator = self.accumulator
        if isinstance(accumulator, FloatAccumulator):
            block = f" by {accumulator.block}" if accumulator.block else ""
            acc = f"{numerics.accumulator_name(accumulator)} {accumulator.order}{block}"
        else:
            acc = "exact" if isinstance(accumulator, ExactAccumulator) else f"int{accumulator.width}"
            if isinstance(accumulator, FixedAccumulator) and accumulator.lsb_exponent is not None:
                acc += f" at 2**{accumulator.lsb_exponent}"
        extras = " double-buffered" if self.double_buffer else ""
        extras += f" pipeline {self.pipeline}" if self.pipeline else ""
        extras += " DSP-packed pairs" if self.dsp_pack else ""
        extras += f" on {self.dsp_primitive.upper()} MULT18X18D registers" if self.dsp_primitive else ""
        return (f"{self.rows}x{self.cols} {self.dataflow.upper()} array, {self.a_name} x {self.b_name}, "
                f"{acc} accumulator ({self.acc_width} bits){extras}")  # fmt: skip


def default_accumulator(a_format: numerics.ElementFormat | BlockFormat | str) -> ExactAccumulator | FloatAccumulator:
    """What an array accumulates in when none is named: MX operands get OCP's datapath (each block's
    exact dot, scaled, added in FP32), everything else the exact (Kulisch) register."""
    return (
        FloatAccumulator(numerics.get("fp32"))
        if isinstance(numerics.get(a_format), BlockFormat)
        else ExactAccumulator()
    )


def _mx_block(
    a_format: numerics.ElementFormat | str,
    b_format: numerics.ElementFormat | str,
    accumulator: ExactAccumulator | FixedAccumulator | FloatAccumulator | None,
    dataflow: str,
    rows: int,
) -> BlockFormat | None:
    """The MX block format when the operands are MX (checked), else None."""
    a, b = numerics.get(a_format), numerics.get(b_format)
    if not isinstance(a, BlockFormat) and not isinstance(b, BlockFormat):
        return None
    if a != b or not isinstance(a, BlockFormat):
        raise ValueError(f"MX arrays take the same MX format for a and b, got {a.name} and {b.name}")
    if a.scale.name != "e8m0" or a.tensor_scale:
        raise ValueError(f"arrays take OCP MX block formats (E8M0 scales, no tensor scale), got {a.name}")
    if a.block_size & (a.block_size - 1):
        raise ValueError(f"array MX blocks must be a power of two long, got {a.block_size}")
    if dataflow == "ws" and a.block_size % rows:
        raise ValueError(f"rows must divide the MX block size {a.block_size} (a k-fold stays in one block), got {rows}")
    if isinstance(accumulator, FixedAccumulator):
        raise ValueError(f"MX arrays accumulate exactly (ExactAccumulator, 'exact') or in a float format "
                         f"(FloatAccumulator, e.g. 'fp32', the default): block scales shift sums by up to 2**508; "
                         f"got {_spelled(accumulator)}")  # fmt: skip
    return a


def _spelled(accumulator: object) -> str:
    """An accumulator as `numerics.parse_accumulator` spells it, else its repr."""
    try:
        return numerics.accumulator_name(accumulator)  # type: ignore[arg-type]
    except ValueError:
        return repr(accumulator)


def _check_reach(accumulator: FloatAccumulator, a: numerics.ElementFormat, b: numerics.ElementFormat) -> None:
    """Refuse a float format that holds no nonzero element product at all (every result would be
    0, an infinity or NaN). A narrower one that some products overflow or underflow is a design
    choice numerics defines (fp16 accumulation of fp8_e4m3 products, as FP8 tensor cores offer),
    and is built. MX operands are not checked: their block scales move the sums anywhere."""
    fmt = accumulator.format
    smallest = a.min_subnormal * b.min_subnormal
    largest = max(a.max, -float(getattr(a, "min_int", 0))) * max(b.max, -float(getattr(b, "min_int", 0)))
    if smallest > fmt.max or largest < fmt.min_subnormal:
        raise ValueError(f"accumulator {_spelled(accumulator)} holds no nonzero {a.name} x {b.name} product: their "
                         f"magnitudes lie in [{smallest:.4g}, {largest:.4g}], {fmt.name}'s nonzero finite values in "
                         f"[{fmt.min_subnormal:.4g}, {fmt.max:.4g}]")  # fmt: skip


_DATAFLOW_NAMES = {"os": "an output-stationary", "ws": "a weight-stationary"}


def realised_order(
    accumulator: FloatAccumulator, dataflow: str, rows: int, block: BlockFormat | None
) -> FloatAccumulator:
    """The float accumulator with the order the dataflow realises. A plain (sequential) one is
    mapped to it; an explicit order must be that one (a blocked one's `block` may be left to the
    MX block size where that is the dataflow's)."""
    if dataflow == "ws":
        order, size, how = "blocked", rows, f"rounds each column's exact sum of its {rows} rows, then adds it"
    elif block is not None:
        order, size = "blocked", block.block_size
        how = f"rounds each {block.name} block's exact scaled sum ({size} products), then adds it"
    else:
        order, size, how = "sequential", None, "adds every exact product in k order"
    realised = accumulator.with_order(order, size)  # type: ignore[arg-type]
    given_block = accumulator.block or (block.block_size if block is not None else None)
    if accumulator.order == "sequential" or (accumulator.order, given_block) == (order, size):
        return realised
    text = numerics.accumulator_name(accumulator)
    spelled = f"order={order!r}" + (f", block={size}" if size else "")
    given = f"order={accumulator.order!r}" + (f", block={accumulator.block}" if accumulator.block else "")
    spelling = f"numerics.parse_accumulator({text!r})"
    if size:
        spelling += f", which it maps to that, or {spelling}.with_order({order!r}, {size})"
    raise ValueError(f"{_DATAFLOW_NAMES[dataflow]} array {how} ({spelled}): give {spelling}; got {given}")


def _zero_pointed(fmt: numerics.ElementFormat | str, zero_point: int, role: str) -> tuple[IntFormat | None, object]:
    """(stream format, datapath format) of an operand with a zero point (None, fmt without one)."""
    if zero_point == 0:
        return None, fmt
    stream = numerics.get(fmt)
    if not isinstance(stream, IntFormat) or isinstance(zero_point, bool) or not isinstance(zero_point, int):
        raise ValueError(f"{role}_zero_point applies to integer formats and takes an integer, got "
                         f"{zero_point!r} for {getattr(stream, 'name', stream)}")  # fmt: skip
    if not stream.min_int <= zero_point <= stream.max_int:
        raise ValueError(f"{role}_zero_point must be a {stream.name} code ({stream.min_int}..{stream.max_int}), "
                         f"got {zero_point}")  # fmt: skip
    return stream, IntFormat(stream.bits + 1)


# OliVe grids reach 96 (4-bit) and 2016 (8-bit): these integers bound them for the accumulator width.
_OVP_WIDTH_BOUND = {4: IntFormat(8), 8: IntFormat(12)}


def _ovp(fmt: numerics.ElementFormat | str, lanes: int, name: str) -> OVPFormat | None:
    resolved = numerics.get(fmt)
    if not isinstance(resolved, OVPFormat):
        return None
    if lanes % 2:
        raise ValueError(f"{name} must be even to pair OliVe lanes ({resolved.name}), got {lanes}")
    return resolved
