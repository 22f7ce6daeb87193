"""Output-stationary dataflow: PE(i, j) owns C[m-tile row i, n-tile col j] for one fold.

A-codes enter row i skewed by i and flow right; B-codes enter column j skewed by j and flow
down; control (valid, first, last) rides with A. A fold's K beats enter on K consecutive cycles,
then the controller waits R + C - 2 cycles for the wave to reach PE(R-1, C-1) (SCALE-Sim's fold
period). When that PE has added its last product, every accumulator is copied in one cycle into
shadow registers that drain R rows through `out` while the next fold computes.

Nothing freezes the array: a stalled stream only keeps beats from entering, and the gaps travel
through it as invalid beats. A fold's first beat enters only when the previous fold's copy is
certain to find the shadows free (no finished fold waits for them, or only that fold waits and they
are empty), so a stalled `out` holds the next fold at the edge instead of a PE's finished sum being
overwritten. That one condition lives in the controller, so no signal reaches every register (an
array-wide clock enable was the long net of the frozen design). Because nothing freezes, a PE's
product can come from an instantiated ECP5 MULT18X18D (`dsp_primitive="ecp5"`, `_dsp_ecp5`) that
latches the operands its PE's registers load, in step with them, with no enable to follow.

With a float accumulator a PE's register holds a format code: each exact product is float-added
into it (numerics' order "sequential"); MX: each block's exact sum, scaled by both block scales
(an exponent offset) and rounded to the format, is float-added at the block's last element
("blocked" by the block size).
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from amaranth import Elaboratable, Module, Mux, Signal, signed
from amaranth.hdl import Value
from amaranth.lib import data

from . import _array_parts as parts
from ._array_config import SIZE_BITS, ArrayConfig
from ._array_parts import add_term, assign_sum, cleared, edge_lanes, merge_sums, register, skew_line, sum_layout
from ._float_acc import float_add
from ._pe import Term, exact_product, packed_product_terms, product_term


@dataclass(frozen=True)
class _BlockRequest:
    """A PE's block end for its row's shared block adder: `select` this cycle, the block's exact
    sum (with its last product), both scales, the running sum it adds to, the register to write."""

    select: Value
    block: Any
    a_scale: Value
    b_scale: Value
    base: Value
    acc: Any


def _block_scale(m: Module, name: str, a_scale: Value, b_scale: Value) -> tuple[Value, Value]:
    """(exponent shift, NaN) of an MX block's two E8M0 scales."""
    shift = Signal(9, name=f"scale_shift_{name}")
    m.d.comb += shift.eq(a_scale + b_scale)
    nan_scale = (a_scale == 0xFF) | (b_scale == 0xFF)  # its block adds nothing: acc sums finite products
    return shift, nan_scale


# block_first/block_last: an MX block of K starts/ends with this element (zero for element formats)
_CONTROL = data.StructLayout({"valid": 1, "first": 1, "last": 1, "block_first": 1, "block_last": 1})


def _delayed(m: Module, name: str, term: Term) -> Term:
    """`term` one register later: value, flags and passengers."""
    value, nan, inf, neg = (
        register(m, f"{name}_{field}", getattr(term, field)) for field in ("value", "nan", "inf", "neg")
    )
    riders = tuple(register(m, f"{name}_rider{k}", p) for k, p in enumerate(term.passengers))
    return Term(value, nan, inf, neg, riders)


class OutputStationaryCore(Elaboratable):
    freezes = False  # see the module docstring: a fold waits at the edge instead

    def __init__(self, config: ArrayConfig, top: Any, advance: Signal) -> None:
        """`advance` is the weight-stationary core's freeze; this core takes it unused (one constructor)."""
        self.cfg, self.top = config, top
        r, c = config.rows, config.cols
        self.accs = [[Signal(sum_layout(config.acc_width), name=f"acc_{i}_{j}") for j in range(c)] for i in range(r)]
        self.may_start = Signal()  # (from the drain) a fold's first beat may enter this cycle
        self.last_fire = Signal()  # PE(R-1, C-1) adds a fold's last product this cycle
        self.fold_done = Signal()  # a fold's last beat entered the array this cycle
        self.controller_busy = Signal()

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg, top = self.cfg, self.top
        r, c = cfg.rows, cfg.cols
        m_size, k_size, n_size = (Signal(SIZE_BITS, name=n) for n in ("m_latched", "k_latched", "n_latched"))
        k = Signal(SIZE_BITS)
        m_base, n_base = Signal(SIZE_BITS + 1), Signal(SIZE_BITS + 1)
        gap = Signal(range(r + c))
        fire = Signal()
        # Registered so that no carry chain sits in front of the controller's next state: k_size - 1
        # latched at start, and whether another fold follows, from bases that changed at least a
        # fold's K + R + C - 2 cycles before the gap's end reads it.
        k_last = Signal(signed(SIZE_BITS + 1))
        n_more, m_more = Signal(), Signal()
        m.d.sync += [n_more.eq(n_base + c < n_size), m_more.eq(m_base + r < m_size)]
        if cfg.shares_block_adder:  # cfg.final_block_wait in logic: k_size is known only at start
            size = cfg.block.block_size  # type: ignore[union-attr]
            final_start = Signal(SIZE_BITS, name="final_start")  # the first beat of the fold's last block
            m.d.comb += final_start.eq((k_size - 1) & ~(size - 1))
            last_length = Signal(range(size + 1), name="last_length")
            m.d.comb += last_length.eq((k_size - 1)[: (size - 1).bit_length()] + 1)
            final_wait = Signal(range(c + 1), name="final_wait")
            m.d.comb += final_wait.eq(Mux((final_start != 0) & (last_length < c), c - last_length, 0))
            wait = Signal(range(c + 1), name="wait")
        with m.FSM():
            with m.State("IDLE"), m.If(top.start):
                m.d.sync += [m_size.eq(top.m_size), k_size.eq(top.k_size), n_size.eq(top.n_size),
                             k_last.eq(top.k_size - 1), m_base.eq(0), n_base.eq(0), k.eq(0)]  # fmt: skip
                m.next = "FEED"
            with m.State("FEED"):
                may_enter = (k != 0) | self.may_start
                m.d.comb += [
                    self.controller_busy.eq(1),
                    top.a.ready.eq(may_enter & top.b.valid),
                    top.b.ready.eq(may_enter & top.a.valid),
                    fire.eq(may_enter & top.a.valid & top.b.valid),
                ]
                with m.If(fire):
                    m.d.sync += k.eq(k + 1)
                    with m.If(k == k_last):
                        m.d.comb += self.fold_done.eq(1)
                        m.d.sync += [k.eq(0), gap.eq(r + c - 3)]
                        m.next = "GAP"
                    if cfg.shares_block_adder:
                        with m.Elif((k + 1 == final_start) & (final_wait != 0)):
                            m.d.sync += wait.eq(final_wait - 1)
                            m.next = "WAIT"
            if cfg.shares_block_adder:
                with m.State("WAIT"):  # a short last block: its ends must not meet the full block's in a row
                    m.d.comb += self.controller_busy.eq(1)
                    m.d.sync += wait.eq(wait - 1)
                    with m.If(wait == 0):
                        m.next = "FEED"
            with m.State("GAP"):  # R + C - 2 cycles: the fold's wave crosses the array
                m.d.comb += self.controller_busy.eq(1)
                m.d.sync += gap.eq(gap - 1)
                with m.If(gap == 0):
                    with m.If(n_more):
                        m.d.sync += n_base.eq(n_base + c)
                        m.next = "FEED"
                    with m.Elif(m_more):
                        m.d.sync += [n_base.eq(0), m_base.eq(m_base + r)]
                        m.next = "FEED"
                    with m.Else():
                        m.next = "IDLE"

        mx = cfg.block is not None
        control = Signal(_CONTROL)
        m.d.comb += [control.valid.eq(fire), control.first.eq(k == 0), control.last.eq(k == k_last)]
        if mx:
            offset = k[: (cfg.block.block_size - 1).bit_length()]
            m.d.comb += [control.block_first.eq(offset == 0),
                         control.block_last.eq((offset == cfg.block.block_size - 1) | (k == k_last))]  # fmt: skip
        a_regs: list[list[Any]] = [[None] * c for _ in range(r)]
        b_regs: list[list[Any]] = [[None] * c for _ in range(r)]
        controls: list[list[Any]] = [[None] * c for _ in range(r)]
        scales: dict[str, list[list[Any]]] = {"a": [[None] * c for _ in range(r)], "b": [[None] * c for _ in range(r)]}
        a_codes, b_codes = (top.a.payload.codes, top.b.payload.codes) if mx else (top.a.payload, top.b.payload)
        a_edge = [parts.edge_code(cfg.a_stream, cfg.a_zero_point, cfg.a_format, a_codes[i]) for i in range(r)]
        b_edge = [parts.edge_code(cfg.b_stream, cfg.b_zero_point, cfg.b_format, b_codes[j]) for j in range(c)]
        # A lane's code needs no gating: a PE adds only products whose control says valid, and fire
        # (a long path from the controller) then reaches only the control lines.
        a_lanes = edge_lanes(m, "a", cfg.a_kind, a_edge)
        b_lanes = edge_lanes(m, "b", cfg.b_kind, b_edge, cfg.dsp_pack)
        for i in range(r):
            a_regs[i][0] = register(m, f"a_{i}_0", a_lanes[i])
            controls[i][0] = register(m, f"ctl_{i}_0", skew_line(m, f"ctl_line{i}", control, i + 1))
            if mx:
                line = skew_line(m, f"sa_line{i}", top.a.payload.scales[i], i + 1)
                scales["a"][i][0] = register(m, f"sa_{i}_0", line)
        for j in range(c):
            b_regs[0][j] = register(m, f"b_0_{j}", b_lanes[j])
            if mx:
                line = skew_line(m, f"sb_line{j}", top.b.payload.scales[j], j + 1)
                scales["b"][0][j] = register(m, f"sb_0_{j}", line)
        for i in range(r):
            row_requests: list[_BlockRequest] = []  # the row's block ends, for its shared block adder
            for j in range(c):  # the operand registers first: a DSP-packed PE reads its right neighbour's b
                if j:
                    a_regs[i][j] = register(m, f"a_{i}_{j}", a_regs[i][j - 1])
                    controls[i][j] = register(m, f"ctl_{i}_{j}", controls[i][j - 1])
                    if mx:
                        scales["a"][i][j] = register(m, f"sa_{i}_{j}", scales["a"][i][j - 1])
                if i:
                    b_regs[i][j] = register(m, f"b_{i}_{j}", b_regs[i - 1][j])
                    if mx:
                        scales["b"][i][j] = register(m, f"sb_{i}_{j}", scales["b"][i - 1][j])
            partner: Term | None = None
            for j in range(c):
                # what this PE's operand registers load: a MULT18X18D registers it itself
                a_next = a_lanes[i] if j == 0 else a_regs[i][j - 1]
                b_next = b_lanes[j] if i == 0 else b_regs[i - 1][j]
                ecp5_next = (a_next.sig, b_next.sig) if cfg.dsp_primitive == "ecp5" else None
                riders = (controls[i][j].as_value(), *((scales["a"][i][j], scales["b"][i][j]) if mx else ()))
                acc = self.accs[i][j]
                operands = (m, a_regs[i][j], b_regs[i][j], cfg.a_layout, cfg.b_layout)
                if cfg.float_format is not None and not mx:  # a fused multiply-add chain
                    product, passengers = exact_product(*operands, cfg.pipeline, riders, cfg.uses_dsp(i, j), ecp5_next)
                    at_adder = data.View(_CONTROL, passengers[0])
                    total = float_add(m, f"pe_{i}_{j}", Mux(at_adder.first, 0, acc.acc), product, cfg.accumulator)
                    with m.If(at_adder.valid):
                        m.d.sync += acc.acc.eq(total)
                else:
                    if not cfg.dsp_pack:
                        term = product_term(*operands, cfg.product_lsb, cfg.pipeline, riders, cfg.uses_dsp(i, j),
                                            ecp5_next)  # fmt: skip
                    elif j % 2 == 0:  # PE(i, j + 1)'s b arrives a cycle early (edge_lanes) to meet this a
                        term, partner = packed_product_terms(m, f"pe_{i}_{j}", a_regs[i][j], b_regs[i][j],
                                                             b_regs[i][j + 1], cfg.a_layout, cfg.b_layout,
                                                             cfg.product_lsb, cfg.pipeline, cfg.pack_shift,
                                                             riders)  # fmt: skip
                    else:  # this PE's a and control arrive a cycle after its partner's: so does its product
                        term = _delayed(m, f"pe_{i}_{j}", partner)  # type: ignore[arg-type]
                    at_adder = data.View(_CONTROL, term.passengers[0])
                    if mx:
                        self._mx_accumulate(m, f"{i}_{j}", acc, term, at_adder, row_requests)
                    else:
                        with m.If(at_adder.valid):
                            m.d.sync += assign_sum(acc, add_term(cleared(acc, at_adder.first), term, at_adder.valid))
                if i == r - 1 and j == c - 1:
                    m.d.comb += self.last_fire.eq(at_adder.valid & at_adder.last)
            if row_requests:
                self._block_adder(m, f"row{i}", row_requests)
        return m

    def _mx_accumulate(self, m: Module, name: str, acc: Any, term: Term, at_adder: Any,
                       row_requests: list[_BlockRequest]) -> None:  # fmt: skip
        """Sum a block's products exactly in a narrow register; at the block's last element shift
        that sum once by both E8M0 scales into the wide accumulator (a 0xFF scale is NaN and adds 0).
        A float accumulator takes the scaled sum rounded to its format (the scales move the exponent),
        from the PE's own block adder or, where the row shares one, from the row's."""
        cfg = self.cfg
        block_size = cfg.block.block_size  # type: ignore[union-attr]
        block = Signal(sum_layout(cfg.partial_width(block_size)), name=f"block_{name}")
        total = add_term(cleared(block, at_adder.block_first), term, at_adder.valid)
        a_scale, b_scale = term.passengers[1], term.passengers[2]
        fresh = Signal(name=f"fresh_{name}")  # the fold's first block is still open: acc starts from 0
        finished: list[Any] = []
        if cfg.float_format is None:
            shift, nan_scale = _block_scale(m, name, a_scale, b_scale)
            scaled = SimpleNamespace(acc=Mux(nan_scale, 0, total[0]) << shift, nan=total[1] | nan_scale,
                                     pos_inf=total[2], neg_inf=total[3])  # fmt: skip
            finished = assign_sum(acc, merge_sums(cleared(acc, at_adder.first | fresh), scaled))
        else:
            exact = Signal.like(block, name=f"block_sum_{name}")
            m.d.comb += assign_sum(exact, total)
            base = Mux(at_adder.first | fresh, 0, acc.acc)  # a new sum starts at +0
            request = _BlockRequest(Signal(name=f"block_end_{name}"), exact, a_scale, b_scale, base, acc)
            m.d.comb += request.select.eq(at_adder.valid & at_adder.block_last)
            if cfg.shares_block_adder:
                row_requests.append(request)
            else:
                self._block_adder(m, f"pe_{name}", [request])
        with m.If(at_adder.valid):
            with m.If(at_adder.block_last):
                m.d.sync += finished
                m.d.sync += fresh.eq(0)
            with m.Else():
                m.d.sync += assign_sum(block, total)
                with m.If(at_adder.first):
                    m.d.sync += fresh.eq(1)

    def _block_adder(self, m: Module, name: str, requests: list[_BlockRequest]) -> None:
        """A block adder for one PE or a PE row: the block's exact sum, scaled by both block scales,
        rounded to the accumulator's format and added to the running sum of the PE that asks. A row
        shares one because at most one of its PEs ends a block in a cycle (`ArrayConfig.shares_block_adder`):
        its operands are an AND-OR of the PEs', its result written into the one that asked."""

        def chosen(values: list[Any], field: str) -> Value:
            if len(values) == 1:
                return Value.cast(values[0])
            picked = Signal(len(Value.cast(values[0])), name=f"{name}_{field}")
            masked = (Mux(q.select, Value.cast(v), 0) for q, v in zip(requests, values, strict=True))
            m.d.comb += picked.eq(functools.reduce(operator.or_, masked))
            return picked

        cfg = self.cfg
        block = Signal(requests[0].block.shape(), name=f"{name}_block_sum")
        m.d.comb += block.eq(chosen([q.block for q in requests], "block_bits"))
        shift, nan_scale = _block_scale(m, name, chosen([q.a_scale for q in requests], "a_scale"),
                                        chosen([q.b_scale for q in requests], "b_scale"))  # fmt: skip
        scaled_sum = parts.sum_term(m, f"{name}_block", block, shift, cfg.lsb_exponent, nan_scale)
        base = chosen([q.base for q in requests], "base")
        total = parts.add_rounded(m, name, base, scaled_sum, cfg.accumulator)  # type: ignore[arg-type]
        for request in requests:
            with m.If(request.select):
                m.d.sync += request.acc.acc.eq(total)

    def drain(self) -> Elaboratable:
        return _ShadowDrain(self)


class _ShadowDrain(Elaboratable):
    """Copies finished folds into the shadow registers and streams them out row by row."""

    def __init__(self, core: OutputStationaryCore) -> None:
        self.core = core

    def elaborate(self, platform: object) -> Module:
        m = Module()
        core, top, cfg = self.core, self.core.top, self.core.cfg
        r, c = cfg.rows, cfg.cols
        shadows = [[Signal(sum_layout(cfg.acc_width), name=f"shadow_{i}_{j}") for j in range(c)] for i in range(r)]
        remaining = Signal(range(r + 1))
        in_flight = Signal(range(4))  # folds whose last beat entered but which are not copied yet (at most 2)
        copy_due = Signal()  # PE(R-1, C-1) has added a fold's last product; the fold waits for the shadows
        copy = Signal()  # copy_due and the shadows are empty: accumulators -> shadows this cycle
        # copy selects every shadow register's input, out_valid enables their shift and may_start
        # gates the edge's beats, so all three are registers, loaded with next cycle's value.
        out_valid = Signal()  # remaining != 0, held in a register: with out.ready it shifts every shadow
        shift = out_valid & top.out.ready
        copy_due_next = core.last_fire | (copy_due & ~copy)
        remaining_next = Mux(copy, r, Mux(shift, remaining - 1, remaining))
        in_flight_next = in_flight + core.fold_done - copy
        # A fold may begin where no finished fold waits for the shadows, or where only the one
        # before it waits and the shadows are empty: then that fold is copied when due, before
        # the new fold's first products reach a PE.
        may_start = Signal(init=1)
        m.d.sync += [
            out_valid.eq(remaining_next != 0),
            copy_due.eq(copy_due_next),
            copy.eq(copy_due_next & (remaining_next == 0)),
            may_start.eq((in_flight_next == 0) | ((in_flight_next == 1) & (remaining_next == 0))),
        ]
        m.d.comb += core.may_start.eq(may_start)
        with m.If(copy):
            m.d.sync += remaining.eq(r)
            m.d.sync += [shadows[i][j].eq(core.accs[i][j]) for i in range(r) for j in range(c)]
        with m.Elif(shift):
            m.d.sync += remaining.eq(remaining - 1)
            m.d.sync += [shadows[i][j].eq(shadows[i + 1][j]) for i in range(r - 1) for j in range(c)]
        m.d.sync += in_flight.eq(in_flight_next)
        m.d.comb += top.out.valid.eq(out_valid)
        m.d.comb += top.busy.eq(core.controller_busy | (in_flight != 0) | out_valid)
        if cfg.float_format is None:
            m.d.comb += [top.out.payload[j].eq(shadows[0][j]) for j in range(c)]
        else:  # a float accumulator's register holds its code (the flag fields stay 0)
            for j in range(c):
                code = shadows[0][j].acc.as_unsigned()
                m.d.comb += parts.code_lane(m, f"out{j}", top.out.payload[j], code, cfg.float_format)
        return m
