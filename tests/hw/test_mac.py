# amaranth: UnusedElaboratable=no
"""MAC PEs in amaranth.sim against numerics.dot: every accumulator kind and pipeline depth."""

from __future__ import annotations

import re

import pytest
from amaranth.sim import Simulator

import hw
import numerics
from numerics import FixedAccumulator
from sim import MacStream, expected_mac, hardware_flags, mac_stream


def run_mac(pe: hw.MacPE, stream: MacStream) -> list[tuple[int, tuple[bool, bool, bool]]]:
    rows: list[tuple[int, tuple[bool, bool, bool]]] = []
    a, b = stream.a, stream.b

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for i in range(len(a) + pe.latency):
            live = i < len(a)
            ctx.set(pe.a, int(a[i]) if live else 0)
            ctx.set(pe.b, int(b[i]) if live else 0)
            ctx.set(pe.en, int(stream.en[i]) if live else 0)
            ctx.set(pe.clear, int(stream.clear[i]) if live else 0)
            await ctx.tick()
            if i >= pe.latency - 1 and len(rows) < len(a):
                assert ctx.get(pe.valid) == stream.en[len(rows)]
                rows.append(
                    (ctx.get(pe.acc), hardware_flags(ctx.get(pe.nan), ctx.get(pe.pos_inf), ctx.get(pe.neg_inf)))
                )

    sim = Simulator(pe)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
    return rows


CASES = [
    ("int8", "int8", None, 1),
    ("int4", "int4", None, 0),
    ("fp8_e4m3", "fp8_e4m3", None, 2),
    ("fp8_e5m2", "fp8_e5m2", None, 1),
    ("fp6_e3m2", "fp6_e2m3", None, 1),
    ("fp4_e2m1", "fp4_e2m1", None, 0),
    ("int8", "fp8_e4m3", None, 1),
    ("posit8_2", "posit8_2", None, 1),
    ("bf16", "bf16", None, 1),
    ("int8", "int8", FixedAccumulator(12), 1),
    ("int8", "int8", FixedAccumulator(15, overflow="saturate"), 2),
    ("fp8_e4m3", "fp8_e4m3", FixedAccumulator(20, lsb_exponent=-6, overflow="saturate"), 1),
    ("fp8_e5m2", "fp8_e5m2", numerics.parse_accumulator("fp16"), 0),
    ("fp8_e4m3", "int8", numerics.parse_accumulator("bf16_w6r_rz"), 2),
    ("fp4_e2m1", "fp6_e3m2", numerics.parse_accumulator("fp8_e4m3"), 1),
]


@pytest.mark.parametrize(("a_name", "b_name", "accumulator", "pipeline"), CASES)
def test_mac_matches_numerics(a_name: str, b_name: str, accumulator: numerics.Accumulator | None,
                              pipeline: int) -> None:  # fmt: skip
    pe = hw.MacPE(a_name, b_name, accumulator, k_terms=64, pipeline=pipeline)
    a_fmt, b_fmt = pe.a_format, pe.b_format
    finite_only = isinstance(accumulator, FixedAccumulator)  # a fixed-point register has no NaN or Inf
    stream = mac_stream(a_fmt, b_fmt, pe.k_terms, finite_only, False, 240, seed=len(a_name) + pipeline)
    values, flags = expected_mac(stream, a_fmt, b_fmt, pe.accumulator, pe.acc_width)
    got = run_mac(pe, stream)
    mismatches = [i for i, (v, f) in enumerate(got) if (v, f) != (values[i], flags[i])]
    assert not mismatches, f"cycle {mismatches[0]}: got {got[mismatches[0]]}, expected {values[mismatches[0]]}"


def test_exact_width_is_numerics_width() -> None:
    pe = hw.MacPE("fp8_e4m3", "fp8_e4m3", k_terms=4096)
    assert pe.acc_width == numerics.exact_width(numerics.get("fp8_e4m3"), numerics.get("fp8_e4m3"), 4096)
    assert pe.lsb_exponent == -18


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pipeline": 3}, "pipeline must be 0, 1 or 2, got 3"),
        ({"k_terms": 0}, "k_terms must be >= 1, got 0"),
        ({"accumulator": numerics.QuireAccumulator(numerics.get("posit8_2"))},  # type: ignore[arg-type]
         "accumulator must be ExactAccumulator, FixedAccumulator or FloatAccumulator, got QuireAccumulator"),
        ({"accumulator": numerics.FloatAccumulator(numerics.get("fp16"), order="pairwise")},
         "a MAC PE adds every product to its float accumulator: order must be 'sequential', got 'pairwise'"),
        ({"accumulator": numerics.FloatAccumulator(numerics.Minifloat(5, 2, subnormals=False))},
         "a hardware float accumulator needs a signed minifloat with subnormals (it must hold +0), "
         "got fp8_e5m2_nosub"),
        ({"accumulator": FixedAccumulator(16, lsb_exponent=-20)},
         "lsb_exponent must be >= the exact product lsb -18, got -20"),
    ],
)  # fmt: skip
def test_parameters_are_validated(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        hw.MacPE("fp8_e4m3", "fp8_e4m3", **kwargs)
