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
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from amaranth import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ._array_config import SIZE_BITS, ArrayConfig
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
        return (f"{inner}, output stage int{self.out_bits} (bias {self.bias_bits} bits, "
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
                 **options: Any) -> None:  # fmt: skip
        try:
            self.array = SystolicArray(a_format, b_format, accumulator, **options)
            self.array._MustUse__silence = True  # elaborated by this component, or unused with it
            self.config = self._configure(self.array.config, out_bits, bias_bits, multiplier_bits, n_max)
        except (ValueError, TypeError):
            self._MustUse__silence = True
            raise
        cfg, c = self.config, self.array.config.cols
        lane = data.StructLayout({"bias": data.ArrayLayout(signed(bias_bits), c),
                                  "multiplier": data.ArrayLayout(unsigned(multiplier_bits), c)})  # fmt: skip
        ports = {name: port for name, port in self.array.signature.members.items() if name != "out"}
        super().__init__({
            **ports,
            "params": In(stream.Signature(lane)),
            "shift": In(range(cfg.shift_max + 1)),
            "zero_point": In(signed(out_bits)),
            "low": In(signed(out_bits)),
            "high": In(signed(out_bits)),
            "out": Out(stream.Signature(data.ArrayLayout(signed(out_bits), c))),
        })  # fmt: skip

    @staticmethod
    def _configure(array: ArrayConfig, out_bits: int, bias_bits: int, multiplier_bits: int,
                   n_max: int | None) -> RequantConfig:  # fmt: skip
        if array.float_format is not None:
            raise ValueError(f"the output stage takes integer accumulators; this array accumulates in "
                             f"{array.float_format.name} (use an exact or int{{W}} accumulator)")  # fmt: skip
        n_max = array.k_max if n_max is None else n_max
        check_stage_widths(out_bits, bias_bits, multiplier_bits, n_max)
        return RequantConfig(array, out_bits, bias_bits, multiplier_bits, n_max)

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
    ports = [top.shift, top.zero_point, top.low, top.high]
    settings = [Signal.like(p, name=f"{p.name}_latched") for p in ports]
    latched_period, n_size = Signal(SIZE_BITS), Signal(SIZE_BITS)
    begin = top.start & ~top.busy
    with m.If(begin):
        m.d.sync += [s.eq(p) for s, p in zip(settings, ports, strict=True)]
        m.d.sync += [latched_period.eq(period), n_size.eq(top.n_size)]
    shift, zero_point, low, high = settings

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

    # which fold a result beat belongs to: `period` beats per fold, folds wrap after N channels
    row, fold = Signal(SIZE_BITS), Signal(range(depth))
    base = Signal(SIZE_BITS + 1)  # the fold's first channel
    m.d.comb += read.addr.eq(fold)
    take = Signal()
    m.d.comb += [results.ready.eq((fold < loaded) & (~top.out.valid | top.out.ready)),
                 take.eq(results.valid & results.ready)]  # fmt: skip
    with m.If(begin):
        m.d.sync += [row.eq(0), fold.eq(0), base.eq(0)]
    with m.Elif(take):
        with m.If(row == latched_period - 1):
            m.d.sync += row.eq(0)
            with m.If(base + cols >= n_size):
                m.d.sync += [base.eq(0), fold.eq(0)]
            with m.Else():
                m.d.sync += [base.eq(base + cols), fold.eq(fold + 1)]
        with m.Else():
            m.d.sync += row.eq(row + 1)

    params = read.data
    codes = [_lane(m, cfg, acc, params.bias[j], params.multiplier[j], shift, zero_point, low, high)
             for j, acc in enumerate(accs)]  # fmt: skip
    with m.If(take):
        m.d.sync += [top.out.payload.eq(Cat(*codes)), top.out.valid.eq(1)]
    with m.Elif(top.out.ready):
        m.d.sync += top.out.valid.eq(0)


def _lane(m: Module, cfg: RequantConfig, acc: Any, bias: Any, multiplier: Any, shift: Any, zero_point: Any,
          low: Any, high: Any) -> Any:  # fmt: skip
    """One lane's code: round half up by adding half an lsb, then undo the tie's odd result."""
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
