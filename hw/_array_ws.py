"""Weight-stationary dataflow: PE(i, j) holds B[k-tile row i, n-tile col j] for one fold.

Weights load as R beats down the columns, written with the same skew as the activations, so
PE(i, j) is written just after the previous fold's last activation passed it. Activations
A[m, k-tile] enter row i skewed by i and flow right; partial sums flow down and leave the bottom
of column j de-skewed. A per-column output accumulator (depth m_max) adds the k-folds of an
n-tile; the last k-fold streams the results out. With a float accumulator the buffer holds
format codes: each column's exact fold sum is rounded to the format (MX: scaled by both block
scales first, which only moves its exponent) and float-added into it (numerics' order "blocked",
block = R).

Serialized (default, SCALE-Sim's model): load R rows, stream M rows, wait R + C - 2 cycles for
the wave to leave. Double-buffered: two weight registers per PE (Gemmini), the next fold loads
while the current one streams, so folds start every max(M, R) cycles.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from amaranth import Elaboratable, Module, Mux, Signal, unsigned
from amaranth.hdl import Value
from amaranth.lib import data
from amaranth.lib.memory import Memory

from . import _array_parts as parts
from ._array_config import SIZE_BITS, ArrayConfig
from ._array_parts import add_term, assign_sum, cleared, edge_lanes, merge_sums, register, skew_line, sum_layout
from ._pe import decoded_struct, product_term

_CONTROL = data.StructLayout({"valid": 1, "bank": 1, "first_k": 1, "last_k": 1, "scale": 8})  # scale: MX a-row
_ZERO = SimpleNamespace(acc=0, nan=0, pos_inf=0, neg_inf=0)


class _Sequencer:
    """Walks the folds (n-tile outer, k-tile inner) on one stream: `length` beats per fold."""

    def __init__(self, m: Module, name: str, cfg: ArrayConfig, length: Value, sizes: tuple[Value, Value]) -> None:
        self.active, self.done = Signal(name=f"{name}_active"), Signal(name=f"{name}_done")
        self.index = Signal(SIZE_BITS, name=f"{name}_index")
        self.k_base = Signal(SIZE_BITS + 1, name=f"{name}_k_base")
        self.n_base = Signal(SIZE_BITS + 1, name=f"{name}_n_base")
        self.bank = Signal(name=f"{name}_bank")
        self.begin, self.fire, self.finish = Signal(name=f"{name}_begin"), Signal(name=f"{name}_fire"), Signal()
        self.m, self.cfg, self.length, self.sizes = m, cfg, length, sizes

    def reset(self) -> list[Any]:
        return [self.active.eq(0), self.done.eq(0), self.index.eq(0), self.k_base.eq(0), self.n_base.eq(0),
                self.bank.eq(0)]  # fmt: skip

    def drive(self, stream: Any, can_begin: Value, running: Value, advance: Value) -> None:
        m, cfg = self.m, self.cfg
        k_size, n_size = self.sizes
        m.d.comb += self.begin.eq(running & ~self.active & ~self.done & can_begin)
        run = self.active | self.begin
        m.d.comb += [stream.ready.eq(run & advance), self.fire.eq(run & advance & stream.valid)]
        m.d.comb += self.finish.eq(self.fire & (self.index == self.length - 1))
        with m.If(self.finish):
            m.d.sync += [self.index.eq(0), self.active.eq(0), self.bank.eq(~self.bank if cfg.double_buffer else 0)]
            with m.If(self.k_base + cfg.rows < k_size):
                m.d.sync += self.k_base.eq(self.k_base + cfg.rows)
            with m.Else():
                m.d.sync += [self.k_base.eq(0), self.n_base.eq(self.n_base + cfg.cols)]
                with m.If(self.n_base + cfg.cols >= n_size):
                    m.d.sync += self.done.eq(1)
        with m.Elif(self.fire):
            m.d.sync += [self.index.eq(self.index + 1), self.active.eq(1)]
        with m.Elif(self.begin):
            m.d.sync += self.active.eq(1)


class WeightStationaryCore(Elaboratable):
    freezes = True  # `advance` (a stalled `out`, a paused weight stream) is the clock enable of every register

    def __init__(self, config: ArrayConfig, top: Any, advance: Signal) -> None:
        self.cfg, self.top, self.advance = config, top, advance

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg, top = self.cfg, self.top
        r, c = cfg.rows, cfg.cols
        m_size, k_size, n_size = (Signal(SIZE_BITS, name=n) for n in ("m_latched", "k_latched", "n_latched"))
        running = Signal()
        loader = _Sequencer(m, "load", cfg, r, (k_size, n_size))
        feeder = _Sequencer(m, "feed", cfg, m_size, (k_size, n_size))
        with m.If(top.start & ~top.busy):
            m.d.sync += [m_size.eq(top.m_size), k_size.eq(top.k_size), n_size.eq(top.n_size), running.eq(1),
                         *loader.reset(), *feeder.reset()]  # fmt: skip
        with m.If(running & loader.done & feeder.done):
            m.d.sync += running.eq(0)
        # A fold's activations may enter while its weights still load (double buffering): the
        # skew keeps each weight row one step ahead of the first activation only if the load never
        # pauses, so a pause in `b` then freezes the whole array (as a stalled `out` does).
        starved = Signal()
        if cfg.double_buffer:
            ahead = Signal(range(3))  # folds whose load began minus folds whose feed began
            loader.drive(top.b, ahead == 0, running, self.advance)
            feeder.drive(top.a, (ahead != 0) | loader.begin, running, self.advance)
            m.d.sync += ahead.eq(ahead + loader.begin - feeder.begin)
            racing = feeder.begin | ((ahead == 0) & loader.active)  # the feed is in the fold being loaded
            m.d.comb += starved.eq((loader.active | loader.begin) & racing & ~top.b.valid)
        else:
            array_clear, loaded = Signal(), Signal()  # the last fold's wave has left / weights are in
            wave = Signal(range(r + c))
            loader.drive(top.b, array_clear, running, self.advance)
            feeder.drive(top.a, loaded, running, self.advance)
            with m.If(top.start & ~top.busy):
                m.d.sync += [array_clear.eq(1), loaded.eq(0)]
            with m.If(loader.begin):
                m.d.sync += array_clear.eq(0)
            with m.If(loader.finish):
                m.d.sync += loaded.eq(1)
            with m.If(feeder.begin):
                m.d.sync += loaded.eq(0)
            with m.If(feeder.finish):
                m.d.sync += wave.eq(r + c - 2)
            with m.Elif(wave == 1):
                m.d.sync += [wave.eq(0), array_clear.eq(1)]
            with m.Elif(wave != 0):
                m.d.sync += wave.eq(wave - 1)

        # Weight loading: beat `index` of a load goes to PE row `index`, column j written j cycles later.
        load = data.StructLayout({"valid": 1, "bank": 1, "row": range(r)})
        load_now = Signal(load)
        m.d.comb += [load_now.valid.eq(loader.fire), load_now.bank.eq(loader.bank), load_now.row.eq(loader.index)]
        mx = cfg.block is not None
        b_codes = top.b.payload.codes if mx else top.b.payload
        b_edge = [parts.edge_code(cfg.b_stream, cfg.b_zero_point, cfg.b_format, b_codes[j]) for j in range(c)]
        weights = edge_lanes(m, "w", cfg.b_kind, [Mux(loader.fire, b_edge[j], 0) for j in range(c)])
        loads, b_scales = [], []
        for j in range(c):
            loads.append(skew_line(m, f"load_line{j}", load_now, j + 1))
            b_scales.append(skew_line(m, f"w_scale_line{j}", top.b.payload.scales[j], j + 1) if mx else None)

        control = Signal(_CONTROL)
        m.d.comb += [control.valid.eq(feeder.fire), control.bank.eq(feeder.bank)]
        if mx:
            m.d.comb += control.scale.eq(top.a.payload.scale)
        a_codes = top.a.payload.codes if mx else top.a.payload
        m.d.comb += [control.first_k.eq(feeder.k_base == 0), control.last_k.eq(feeder.k_base + r >= k_size)]
        banks = 2 if cfg.double_buffer else 1
        psums: list[list[Any]] = [[None] * c for _ in range(r)]
        b_scale_banks: list[Any] = [None] * c
        a_edge = [parts.edge_code(cfg.a_stream, cfg.a_zero_point, cfg.a_format, a_codes[i]) for i in range(r)]
        a_lanes = edge_lanes(m, "a", cfg.a_kind, [Mux(feeder.fire, a_edge[i], 0) for i in range(r)])
        for i in range(r):
            a_reg = register(m, f"a_{i}_0", a_lanes[i])
            ctl = register(m, f"ctl_{i}_0", skew_line(m, f"ctl_line{i}", control, i + 1))
            for j in range(c):
                if j:
                    a_reg, ctl = register(m, f"a_{i}_{j}", a_reg), register(m, f"ctl_{i}_{j}", ctl)
                stored = [Signal(decoded_struct(cfg.b_layout), name=f"w_{i}_{j}_{b}") for b in range(banks)]
                for b, register_bank in enumerate(stored):
                    with m.If(loads[j].valid & (loads[j].row == i) & (loads[j].bank == b)):
                        m.d.sync += register_bank.eq(weights[j])
                weight = stored[0] if banks == 1 else data.View(stored[0].shape(), Mux(ctl.bank, stored[1], stored[0]))
                riders = [ctl.as_value()]
                if mx and i == r - 1:  # the column's block scale is read with the weight and leaves with the sum
                    riders.append(self._b_scale(m, j, b_scales[j], loads[j], banks, ctl.bank))
                term = product_term(m, a_reg, weight, cfg.a_layout, cfg.b_layout, cfg.product_lsb, cfg.pipeline,
                                    tuple(riders), cfg.uses_dsp(i, j))  # fmt: skip
                at_adder = data.View(_CONTROL, term.passengers[0])
                psums[i][j] = Signal(sum_layout(cfg.partial_width(i + 1)), name=f"psum_{i}_{j}")
                above = psums[i - 1][j] if i else _ZERO
                m.d.sync += assign_sum(psums[i][j], add_term(above, term, at_adder.valid))
                if mx and i == r - 1:
                    b_scale_banks[j] = register(m, f"b_scale_out_{j}", term.passengers[1])
        bottom_ctl = data.View(_CONTROL, register(m, "bottom_ctl", at_adder.as_value()))
        bottom = [skew_line(m, f"deskew{j}", psums[r - 1][j], c - 1 - j) for j in range(c)]
        if mx:
            scales = [skew_line(m, f"deskew_scale{j}", b_scale_banks[j], c - 1 - j) for j in range(c)]
            bottom = [self._block_scaled(m, j, bottom[j], bottom_ctl.scale, scales[j]) for j in range(c)]
        elif cfg.float_format is not None:
            bottom = [parts.sum_term(m, f"fold{j}", bottom[j], Value.cast(0), cfg.lsb_exponent) for j in range(c)]
        self._accumulate(m, bottom, bottom_ctl, m_size, starved)
        outstanding = Signal(SIZE_BITS + 2)  # activation beats of final k-folds whose result has not left
        leaving = top.out.valid & top.out.ready
        m.d.sync += outstanding.eq(outstanding + (feeder.fire & control.last_k) - leaving)
        m.d.comb += top.busy.eq(running | (outstanding != 0))
        return m

    def _b_scale(self, m: Module, j: int, scale: Any, load: Any, banks: int, bank: Any) -> Any:
        """Column j's block scale per weight bank, stored beside the bottom row's weights (so it is
        written and read exactly when they are) and selected for the fold in that PE."""
        stored = [Signal(8, name=f"b_scale_{j}_{b}") for b in range(banks)]
        for b, register_bank in enumerate(stored):
            with m.If(load.valid & (load.row == self.cfg.rows - 1) & (load.bank == b)):
                m.d.sync += register_bank.eq(scale)
        return stored[0] if banks == 1 else Mux(bank, stored[1], stored[0])

    def _block_scaled(self, m: Module, j: int, partial: Any, a_scale: Any, b_scale: Any) -> Any:
        """The column's exact block partial sum shifted by both E8M0 scales (a NaN scale is NaN and
        adds 0); for a float accumulator, that value as a float addend (the scales move its exponent)."""
        shift = Signal(9, name=f"scale_shift_{j}")
        nan_scale = (a_scale == 0xFF) | (b_scale == 0xFF)  # its block adds nothing: acc sums finite products
        if self.cfg.float_format is not None:
            m.d.comb += shift.eq(a_scale + b_scale)
            return parts.sum_term(m, f"fold{j}", partial, shift, self.cfg.lsb_exponent, nan_scale)
        scaled = Signal(sum_layout(self.cfg.acc_width), name=f"scaled_{j}")
        m.d.comb += [
            shift.eq(a_scale + b_scale),
            scaled.acc.eq(Mux(nan_scale, 0, partial.acc) << shift),
            scaled.nan.eq(partial.nan | nan_scale),
            scaled.pos_inf.eq(partial.pos_inf),
            scaled.neg_inf.eq(partial.neg_inf),
        ]
        return scaled

    def _accumulate(self, m: Module, bottom: list[Any], ctl: Any, m_size: Value, starved: Value) -> None:
        """Add the k-folds of each output row; emit on the n-tile's last k-fold. A result beat is
        not offered while the array is frozen for weights (it would be taken twice)."""
        cfg, top = self.cfg, self.top
        fmt = cfg.float_format  # a float lane stores its code; the flags are read off it at the output
        word = cfg.lane_layout if fmt is None else unsigned(fmt.bits)
        memory = Memory(shape=data.ArrayLayout(word, cfg.cols), depth=cfg.m_max, init=[])
        m.submodules.accumulators = memory
        read, write = memory.read_port(domain="comb"), memory.write_port()
        row = Signal(range(cfg.m_max))
        total = Signal(data.ArrayLayout(word, cfg.cols))
        for j in range(cfg.cols):
            if fmt is None:
                m.d.comb += assign_sum(total[j], merge_sums(cleared(read.data[j], ctl.first_k), bottom[j]))
                continue
            stored = Mux(ctl.first_k, 0, read.data[j])  # a new sum starts at +0
            m.d.comb += total[j].eq(parts.add_rounded(m, f"acc{j}", stored, bottom[j], cfg.accumulator))  # type: ignore[arg-type]
        m.d.comb += [read.addr.eq(row), write.addr.eq(row), write.data.eq(total)]
        m.d.comb += write.en.eq(Mux(ctl.valid & ~ctl.last_k & self.advance, -1, 0))
        lanes = total
        if fmt is not None:
            lanes = Signal(data.ArrayLayout(cfg.lane_layout, cfg.cols))
            m.d.comb += [parts.code_lane(m, f"out{j}", lanes[j], total[j], fmt) for j in range(cfg.cols)]
        out_valid = Signal()
        m.d.sync += out_valid.eq(ctl.valid & ctl.last_k)
        m.d.comb += top.out.valid.eq(out_valid & ~starved)
        with m.If(ctl.valid):
            m.d.sync += row.eq(Mux(row == m_size - 1, 0, row + 1))
            with m.If(ctl.last_k):
                m.d.sync += top.out.payload.eq(lanes)
        m.d.comb += self.advance.eq(~(out_valid & ~top.out.ready) & ~starved)

    def drain(self) -> Elaboratable:
        return Module()
