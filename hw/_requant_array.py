"""A systolic array with an output stage on every result lane: a network layer in hardware.

The array's exact (or wrapping) accumulators leave through one stage per lane that computes

    code = clamp(round((acc + bias) * multiplier / 2**shift) + zero_point, low, high)

rounding once, to nearest even — `numerics.requantize` with activation "clamp" (ReLU is
low = zero point; a format's saturation is its range). Bias and multiplier are per output
channel: a parameter memory holds one (bias, multiplier) row per fold of C channels, written by
the `params` stream while the layer runs (beat f: channels f*C .. f*C+C-1), and read by a counter
that follows the array's result order. The layer's shift, zero point and clamp bounds are
settings sampled on `start`, so one design serves every layer of a network. A result waits until
its fold's parameters have arrived; the stage is registered: results leave one cycle after the
array's (`cycles` = `hw.cycles` + 1 when nothing stalls).

With `out_format` a minifloat, the layer's `to_format` setting chooses per layer between the INT
path above and the minifloat path: each lane rounds the same exact (acc + bias) * multiplier /
2**shift to the format (the `OutputRounder`, its lsb exponent -shift a run-time input),
saturating, then clamps between two codes of the format (`low`, `high`, in their low bits: ReLU
is low = +0); the code leaves zero-extended in the int{out_bits} lane. So a network's hidden
layers hand minifloat codes to the next layer and its last layer hands accumulators to the
host, on one design. With an MX format, each
lane keeps the exact value (ReLU: `relu`), a row buffer collects a block of channels across the
folds that carry it, and `hw.MXQuantizer` (run on the value in units of 2**0, its scale code then
lowered by the shift — no E8M0 clamp is reachable at these widths) emits the block's scale and
elements: `out` then carries blocks, one beat per completed block of a row (or C / block blocks
per beat when the array is wider than a block). Golden models: `numerics.requantize_minifloat`,
`numerics.requantize_mx`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

import numerics
from numerics import BlockFormat, Minifloat
from numerics._block import element_emax

from ._array_config import SIZE_BITS, ArrayConfig
from ._mx_quantizer import MXQuantizer, _is_mx
from ._round import OutputRounder
from ._schedule import cycles as array_cycles
from ._systolic import SystolicArray


@dataclass(frozen=True)
class RequantConfig:
    """The array's configuration and the stage's widths; `n_max` bounds N (the parameter memory)."""

    array: Any  # ArrayConfig, or the bit-serial unit's BitSerialConfig
    out_bits: int
    bias_bits: int
    multiplier_bits: int
    n_max: int
    output: Minifloat | BlockFormat | None = None  # None: int{out_bits} lanes
    period_max: int = 1  # the most result beats per fold (the MX row buffer's depth)

    @property
    def kind(self) -> str:
        """The output's kind: "int", "minifloat" or "mx"."""
        return "int" if self.output is None else "minifloat" if isinstance(self.output, Minifloat) else "mx"

    @property
    def code_bits(self) -> int:
        """Bits of one lane's (or one MX element's) code."""
        if isinstance(self.output, BlockFormat):
            return self.output.element.bits
        return self.out_bits if self.output is None else self.output.bits

    @property
    def block(self) -> int:
        assert isinstance(self.output, BlockFormat)
        return self.output.block_size

    @property
    def blocks_per_beat(self) -> int:
        """MX: blocks in one `out` beat."""
        return max(1, self.array.cols // self.block)

    @property
    def folds_per_block(self) -> int:
        """MX: folds of C channels that carry one block."""
        return max(1, self.block // self.array.cols)

    def settings(self) -> dict[str, Any]:
        """The layer's run-time settings (ports sampled on `start`) and their shapes."""
        shift = range(self.shift_max + 1)
        if self.kind == "mx":
            return {"shift": shift, "relu": unsigned(1)}
        word = signed(self.out_bits)
        ints = {"shift": shift, "zero_point": word, "low": word, "high": word}
        return ints if self.kind == "int" else {**ints, "to_format": unsigned(1)}

    def out_layout(self) -> Any:
        if self.kind == "mx":
            block = data.StructLayout({"scale": unsigned(8), "elements": data.ArrayLayout(self.code_bits, self.block)})
            return data.ArrayLayout(block, self.blocks_per_beat)
        return data.ArrayLayout(signed(self.out_bits), self.array.cols)

    @property
    def folds_max(self) -> int:
        return -(-self.n_max // self.array.cols)

    @property
    def sum_width(self) -> int:
        """Bits of acc + bias, the multiplier's other operand."""
        return max(self.array.acc_width, self.bias_bits) + 1

    @property
    def product_width(self) -> int:
        """Bits of (acc + bias) * multiplier, rounding increment included."""
        return self.sum_width + self.multiplier_bits + 2

    @property
    def shift_max(self) -> int:
        return self.product_width - 1

    def describe(self) -> str:
        inner = (
            self.array.describe()
            if isinstance(self.array, ArrayConfig)
            else (
                f"bit-serial {self.array.cols} PEs x {self.array.lanes} lanes, {self.array.a_format.name} activations"
            )
        )
        out = f"int{self.out_bits}" if self.output is None else self.output.name
        return (f"{inner}, output stage {out} (bias {self.bias_bits} bits, "
                f"multiplier {self.multiplier_bits} bits)")  # fmt: skip


def requant_cycles(config: RequantConfig, m: int, k: int, n: int) -> int:
    """Cycles of one layer on the requantizing array: the array's, plus the stage's register."""
    return array_cycles(config.array, m, k, n) + 1


class RequantArray(wiring.Component):
    """Ports: those of `SystolicArray` (a, b, m/k/n_size, start, busy) with `out` carrying C lanes
    of signed(out_bits) codes; params : In(stream of C (bias, multiplier)); shift, zero_point,
    low, high : In (the layer's settings, sampled on `start`)."""

    def __init__(self, a_format: Any, b_format: Any, accumulator: Any = None, *, out_bits: int = 32,
                 bias_bits: int = 32, multiplier_bits: int = 16, n_max: int | None = None,
                 out_format: str | None = None, **options: Any) -> None:  # fmt: skip
        try:
            self.array = SystolicArray(a_format, b_format, accumulator, **options)
            self.array._MustUse__silence = True  # elaborated by this component, or unused with it
            self.config = self._configure(self.array.config, out_bits, bias_bits, multiplier_bits, n_max, out_format)
        except (ValueError, TypeError):
            self._MustUse__silence = True
            raise
        ports = {name: port for name, port in self.array.signature.members.items() if name != "out"}
        super().__init__({**ports, **stage_ports(self.config)})

    @staticmethod
    def _configure(array: ArrayConfig, out_bits: int, bias_bits: int, multiplier_bits: int,
                   n_max: int | None, out_format: str | None) -> RequantConfig:  # fmt: skip
        if array.float_format is not None:
            raise ValueError(f"the output stage takes integer accumulators; this array accumulates in "
                             f"{array.float_format.name} (use an exact or int{{W}} accumulator)")  # fmt: skip
        n_max = array.k_max if n_max is None else n_max
        check_stage_widths(out_bits, bias_bits, multiplier_bits, n_max)
        period = array.m_max if array.dataflow == "ws" else array.rows
        return stage_config(array, out_bits, bias_bits, multiplier_bits, n_max, out_format, period)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        array = self.array
        r, c = array.config.rows, array.config.cols
        m.submodules.array = array
        for name in ("a", "b"):
            wiring.connect(m, wiring.flipped(getattr(self, name)), getattr(array, name))
        m.d.comb += [array.m_size.eq(self.m_size), array.k_size.eq(self.k_size), array.n_size.eq(self.n_size),
                     array.start.eq(self.start)]  # fmt: skip

        period = self.m_size if array.config.dataflow == "ws" else r
        accs = [array.out.payload[j].acc for j in range(c)]
        drive_stage(m, self, array.out, accs, period, ready_for_params=array.busy)
        m.d.comb += self.busy.eq(array.busy | self.out.valid)
        return m


def stage_ports(cfg: RequantConfig) -> dict[str, Any]:
    """The stage's ports: the params stream, the layer's settings and `out`."""
    c = cfg.array.cols
    lane = data.StructLayout({"bias": data.ArrayLayout(signed(cfg.bias_bits), c),
                              "multiplier": data.ArrayLayout(unsigned(cfg.multiplier_bits), c)})  # fmt: skip
    settings = {name: In(shape) for name, shape in cfg.settings().items()}
    return {"params": In(stream.Signature(lane)), **settings, "out": Out(stream.Signature(cfg.out_layout()))}


def stage_config(array: Any, out_bits: int, bias_bits: int, multiplier_bits: int, n_max: int,
                 out_format: str | None, period_max: int) -> RequantConfig:  # fmt: skip
    """The stage's configuration; `out_format` (None: int{out_bits} lanes whose format is the
    run-time clamp) a minifloat the output rounder takes or an MX format whose block and the
    array's C divide one another."""
    config = RequantConfig(array, out_bits, bias_bits, multiplier_bits, n_max, None, period_max)
    if out_format is None:
        return config
    try:
        fmt = numerics.get(out_format)
    except (ValueError, TypeError):
        fmt = None
    floats = isinstance(fmt, Minifloat) and fmt.signed and fmt.subnormals and fmt.bits <= 32
    if not (floats or _is_mx(fmt)):
        raise ValueError(f"out_format must be a signed minifloat with subnormals of <= 32 bits or an MX format "
                         f"(integer outputs: out_format=None, the format's range is the run-time low/high), "
                         f"got {out_format!r}")  # fmt: skip
    config = RequantConfig(array, out_bits, bias_bits, multiplier_bits, n_max, fmt, period_max)  # type: ignore[arg-type]
    if isinstance(fmt, Minifloat) and out_bits < fmt.bits:
        raise ValueError(f"out_bits ({out_bits}) must hold a {fmt.name} code ({fmt.bits} bits)")
    if isinstance(fmt, BlockFormat):
        c, block = array.cols, fmt.block_size
        if block % c and c % block:
            raise ValueError(f"an MX output needs the array's {c} columns and the block of {block} to divide "
                             "one another")  # fmt: skip
        emax = element_emax(fmt.element, fmt.element_exponent)
        if config.shift_max + emax > 127 or config.product_width - 1 - emax > 127:
            raise ValueError(f"an MX output's block scale must stay inside E8M0's exponents -127..127 at every shift; "
                             f"this stage's {config.product_width}-bit products reach beyond")  # fmt: skip
    return config


def check_stage_widths(out_bits: int, bias_bits: int, multiplier_bits: int, n_max: int) -> None:
    for name, value, low, high in (("out_bits", out_bits, 2, 48), ("bias_bits", bias_bits, 2, 64),
                                   ("multiplier_bits", multiplier_bits, 1, 32), ("n_max", n_max, 1,
                                                                                 (1 << SIZE_BITS) - 1)):  # fmt: skip
        if not low <= value <= high:
            raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def drive_stage(m: Module, top: Any, results: Any, accs: list[Any], period: Any, ready_for_params: Any) -> None:
    """The stage between `results` (a stream whose beats hold C accumulators `accs`, in fold order:
    `period` beats per fold of C channels) and `top.out`, with `top`'s params stream, settings,
    start and busy. `period` is read at `start`; params are taken while `ready_for_params`."""
    cols = len(accs)
    cfg = top.config
    ports = [getattr(top, name) for name in cfg.settings()]
    latched = {p.name: Signal.like(p, name=f"{p.name}_latched") for p in ports}
    latched_period, n_size = Signal(SIZE_BITS), Signal(SIZE_BITS)
    begin = top.start & ~top.busy
    with m.If(begin):
        m.d.sync += [latched[p.name].eq(p) for p in ports]
        m.d.sync += [latched_period.eq(period), n_size.eq(top.n_size)]

    # the parameter memory: one row of C (bias, multiplier) per fold, written in fold order
    depth = max(2, cfg.folds_max)
    m.submodules.memory = memory = Memory(shape=top.params.payload.shape(), depth=depth, init=[])
    write, read = memory.write_port(), memory.read_port(domain="comb")
    loaded = Signal(range(depth + 1))
    with m.If(begin):
        m.d.sync += loaded.eq(0)
    m.d.comb += [top.params.ready.eq(ready_for_params & (loaded < cfg.folds_max)), write.addr.eq(loaded),
                 write.data.eq(top.params.payload), write.en.eq(top.params.valid & top.params.ready)]  # fmt: skip
    with m.If(write.en):
        m.d.sync += loaded.eq(loaded + 1)

    # which fold a result beat belongs to: `period` beats per fold, folds wrap after N channels;
    # `position` is the fold's place in its MX block of channels
    row, fold = Signal(SIZE_BITS), Signal(range(depth))
    position = Signal(range(cfg.folds_per_block + 1) if cfg.kind == "mx" else 1)
    base = Signal(SIZE_BITS + 1)  # the fold's first channel
    last_fold = Signal()
    m.d.comb += [read.addr.eq(fold), last_fold.eq(base + cols >= n_size)]
    take = Signal()
    m.d.comb += [results.ready.eq((fold < loaded) & (~top.out.valid | top.out.ready)),
                 take.eq(results.valid & results.ready)]  # fmt: skip
    with m.If(begin):
        m.d.sync += [row.eq(0), fold.eq(0), base.eq(0), position.eq(0)]
    with m.Elif(take):
        with m.If(row == latched_period - 1):
            m.d.sync += row.eq(0)
            with m.If(last_fold):
                m.d.sync += [base.eq(0), fold.eq(0)]
            with m.Else():
                m.d.sync += [base.eq(base + cols), fold.eq(fold + 1)]
            if cfg.kind == "mx":
                m.d.sync += position.eq(Mux(last_fold | (position == cfg.folds_per_block - 1), 0, position + 1))
        with m.Else():
            m.d.sync += row.eq(row + 1)

    params = read.data
    if cfg.kind == "mx":
        totals = [_total(m, cfg, acc, params.bias[j], params.multiplier[j], latched["relu"])
                  for j, acc in enumerate(accs)]  # fmt: skip
        _mx_blocks(m, top, cfg, totals, take, row, position, last_fold, latched["shift"])
        return
    codes = [_lane(m, cfg, acc, params.bias[j], params.multiplier[j], latched) for j, acc in enumerate(accs)]
    if cfg.kind == "minifloat":
        floats = [_float_lane(m, cfg, acc, params.bias[j], params.multiplier[j], latched) for j, acc in enumerate(accs)]
        codes = [Mux(latched["to_format"], f, c) for f, c in zip(floats, codes, strict=True)]
    with m.If(take):
        m.d.sync += [top.out.payload.eq(Cat(*codes)), top.out.valid.eq(1)]
    with m.Elif(top.out.ready):
        m.d.sync += top.out.valid.eq(0)


def _lane(m: Module, cfg: RequantConfig, acc: Any, bias: Any, multiplier: Any, settings: dict[str, Any]) -> Any:
    """One lane's INT code: round half up by adding half an lsb, then undo the tie's odd result."""
    shift, zero_point, low, high = (settings[name] for name in ("shift", "zero_point", "low", "high"))
    width = cfg.product_width
    total, biased = Signal(signed(width)), Signal(signed(width + 1))
    mask = Cat(*(shift > i for i in range(width + 1)))  # the bits below the binary point
    half = Cat(*(shift == i + 1 for i in range(width + 1)))
    m.d.comb += [total.eq((acc + bias) * multiplier), biased.eq(total + half)]
    floor = Signal(signed(width + 1))
    m.d.comb += floor.eq(biased >> shift)
    tie = (shift != 0) & ((biased.as_unsigned() & mask) == 0)
    rounded = Signal(signed(width + 2))
    m.d.comb += rounded.eq(floor - (tie & floor[0]) + zero_point)
    clamped = Mux(rounded < low, low, Mux(rounded > high, high, rounded))
    code = Signal(signed(cfg.out_bits))
    m.d.comb += code.eq(clamped)
    return code


def _float_lane(m: Module, cfg: RequantConfig, acc: Any, bias: Any, multiplier: Any,
                settings: dict[str, Any]) -> Any:  # fmt: skip
    """One lane's minifloat code: the output rounder at lsb exponent -shift, saturating, then the
    clamp between two codes in the format's order (-0 below +0, so ReLU maps -0 to +0)."""
    fmt = cfg.output
    total = Signal(signed(cfg.product_width))
    m.d.comb += total.eq((acc + bias) * multiplier)
    rounder = OutputRounder(cfg.product_width, 0, fmt, saturate=True, lsb_range=(-cfg.shift_max, 0))
    m.submodules += rounder
    m.d.comb += [rounder.acc.eq(total), rounder.lsb.eq(-settings["shift"])]
    code, bits = rounder.code, cfg.code_bits
    low, high = settings["low"][:bits], settings["high"][:bits]
    order = [_code_order(m, fmt, x) for x in (code, low, high)]
    out = Signal(bits)
    m.d.comb += out.eq(Mux(order[0] < order[1], low, Mux(order[0] > order[2], high, code)))
    return out


def _code_order(m: Module, fmt: Any, code: Any) -> Any:
    """A sign-magnitude code as a two's complement integer in the order of the values it stands for."""
    sign, magnitude = code[fmt.bits - 1], code[: fmt.bits - 1]
    order = Signal(signed(fmt.bits + 1))
    m.d.comb += order.eq(Mux(sign, -1 - magnitude, magnitude))
    return order


def _total(m: Module, cfg: RequantConfig, acc: Any, bias: Any, multiplier: Any, relu: Any) -> Any:
    """(acc + bias) * multiplier, exactly; zero where ReLU cuts it."""
    total = Signal(signed(cfg.product_width))
    m.d.comb += total.eq((acc + bias) * multiplier)
    kept = Signal(signed(cfg.product_width))
    m.d.comb += kept.eq(Mux(relu & (total < 0), 0, total))
    return kept


def _mx_blocks(m: Module, top: Any, cfg: RequantConfig, totals: list[Any], take: Any, row: Any, position: Any,
               last_fold: Any, shift: Any) -> None:  # fmt: skip
    """The row buffer and the MX quantizers: a block of channels is quantized when its last fold's
    beat arrives (or the layer's last fold, the missing channels zero)."""
    cols, fmt = len(totals), cfg.output
    lanes = data.ArrayLayout(signed(cfg.product_width), cols)
    earlier = []  # the row's values from the block's earlier folds, one memory per fold position
    for q in range(cfg.folds_per_block - 1):
        memory = Memory(shape=lanes, depth=max(2, cfg.period_max), init=[])
        m.submodules[f"row_buffer{q}"] = memory
        write, read = memory.write_port(), memory.read_port(domain="comb")
        m.d.comb += [write.addr.eq(row), write.data.eq(Cat(*totals)), write.en.eq(take & (position == q)),
                     read.addr.eq(row)]  # fmt: skip
        earlier.append([Mux(position > q, read.data[j], 0) for j in range(cols)])
    current = [[Mux(position == q, totals[j], 0) for j in range(cols)] for q in range(cfg.folds_per_block)]
    slots = [Signal(signed(cfg.product_width), name=f"slot{i}") for i in range(cfg.folds_per_block * cols)]
    for q in range(cfg.folds_per_block):
        for j in range(cols):
            value = current[q][j] if q == cfg.folds_per_block - 1 else current[q][j] | earlier[q][j]
            m.d.comb += slots[q * cols + j].eq(value)
    complete = last_fold | (position == cfg.folds_per_block - 1)
    blocks = []
    for b in range(cfg.blocks_per_beat):
        quantizer = MXQuantizer(fmt, cfg.product_width, 0)
        m.submodules[f"mx{b}"] = quantizer
        m.d.comb += [quantizer.values[i].eq(slots[b * cfg.block + i]) for i in range(cfg.block)]
        # the block's scale at lsb 2**-shift: the code for the value in units of 2**0, lowered by
        # the shift (0x00, the zero block's, stays)
        scale = Mux(quantizer.scale == 0, 0, quantizer.scale - shift)
        blocks.append(Cat(scale[:8], quantizer.elements))
    with m.If(take & complete):
        m.d.sync += [top.out.payload.eq(Cat(*blocks)), top.out.valid.eq(1)]
    with m.Elif(top.out.ready):
        m.d.sync += top.out.valid.eq(0)
