"""Systolic arrays that run whole GEMMs: R x C PEs, weight- or output-stationary, with the
controller that tiles an M x K @ K x N problem into folds.

Operands stream in as element codes (`a`: R lanes, `b`: C lanes) in the beat order of
`hw.gemm_beats`; results stream out as C lanes of (acc, nan, pos_inf, neg_inf), acc in units of
2**lsb_exponent (a float accumulator: its format's code), exactly `numerics.matmul(A, B, a, b,
config.numerics_accumulator)`. Decoders sit at the array
edge (R + C of them, not one per PE); operand skew and result de-skew are inside. `busy` is high
from `start` until the last result beat has left. A stalled `out` stream freezes a
weight-stationary array and holds an output-stationary array's next fold at its edge.
"""

from __future__ import annotations

from typing import Any

from amaranth import Module, Signal
from amaranth.hdl import EnableInserter
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

import numerics
from numerics import ExactAccumulator, FixedAccumulator, FloatAccumulator

from ._array_config import SIZE_BITS, ArrayConfig
from ._array_os import OutputStationaryCore
from ._array_ws import WeightStationaryCore


class SystolicArray(wiring.Component):
    """Ports: a : In(stream of R codes); b : In(stream of C codes); out : Out(stream of C lanes);
    m_size, k_size, n_size : In(16) (sampled on `start`); start : In(1); busy : Out(1)."""

    def __init__(
        self,
        a_format: numerics.ElementFormat | str,
        b_format: numerics.ElementFormat | str,
        accumulator: ExactAccumulator | FixedAccumulator | FloatAccumulator | None = None,
        **options: Any,
    ) -> None:
        """`accumulator` None: fp32 for MX operands (OCP's datapath), exact otherwise (see
        `ArrayConfig`). `options` are those of `ArrayConfig.build`: rows, cols, dataflow, double_buffer,
        pipeline, dsp_budget, k_max, m_max, a_zero_point, b_zero_point (integer codes whose zero
        point the array edge subtracts: the datapath multiplies code - zero point, one bit wider)."""
        try:
            self.config = ArrayConfig.build(a_format, b_format, accumulator, **options)
        except (ValueError, TypeError):
            self._MustUse__silence = True  # a rejected configuration is not an unused design
            raise
        cfg = self.config
        a_codes = data.ArrayLayout(cfg.a_code_format.bits, cfg.rows)
        b_codes = data.ArrayLayout(cfg.b_code_format.bits, cfg.cols)
        if cfg.block is not None:  # MX: the block scale of the a-row (WS) or of each a-lane (OS), and of each b-column
            a_scale = {"scale": 8} if cfg.dataflow == "ws" else {"scales": data.ArrayLayout(8, cfg.rows)}
            a_payload: data.Layout = data.StructLayout({"codes": a_codes, **a_scale})
            b_payload: data.Layout = data.StructLayout({"codes": b_codes, "scales": data.ArrayLayout(8, cfg.cols)})
        else:
            a_payload, b_payload = a_codes, b_codes
        super().__init__({
            "a": In(stream.Signature(a_payload)),
            "b": In(stream.Signature(b_payload)),
            "out": Out(stream.Signature(data.ArrayLayout(cfg.lane_layout, cfg.cols))),
            "m_size": In(SIZE_BITS),
            "k_size": In(SIZE_BITS),
            "n_size": In(SIZE_BITS),
            "start": In(1),
            "busy": Out(1),
        })  # fmt: skip

    def elaborate(self, platform: object) -> Module:
        m = Module()
        advance = Signal()  # low freezes every register of a freezing core while a result cannot leave
        core_class = OutputStationaryCore if self.config.dataflow == "os" else WeightStationaryCore
        core = core_class(self.config, self, advance)
        m.submodules.core = EnableInserter(advance)(core) if core_class.freezes else core
        m.submodules.drain = core.drain()
        return m
