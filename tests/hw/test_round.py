# amaranth: UnusedElaboratable=no
"""The output unit against numerics' one-time rounding of exact accumulator values."""

from __future__ import annotations

import itertools
import re

import numpy as np
import pytest
from amaranth.sim import Simulator

import hw
import numerics


def round_in_sim(unit: hw.OutputRounder, values: list[int]) -> np.ndarray:
    codes = []

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for v in values:
            ctx.set(unit.acc, v)
            codes.append(ctx.get(unit.code))

    sim = Simulator(unit)
    sim.add_testbench(bench)
    sim.run()
    return np.array(codes)


def accumulator_values(fmt: numerics.ElementFormat, width: int, lsb: int, rng: np.random.Generator) -> list[int]:
    """Random values at every magnitude, plus exact representable values and exact midpoints."""
    limit = 1 << (width - 1)
    magnitudes = [int(rng.integers(0, 1 << int(b))) for b in rng.integers(0, width - 1, 1500)]
    values = [m if rng.random() < 0.5 else -m for m in magnitudes] + [0, 1, -1, limit - 1, -limit]
    grid = [float(v) for v in fmt.values() if v != 0]
    midpoints = [(a + b) / 2 for a, b in itertools.pairwise(grid)]
    if isinstance(fmt, numerics.Posit):  # bit-string ties: the odd codes of posit<n + 1, es>
        wider = numerics.Posit(fmt.n + 1, fmt.es)
        midpoints = [float(v) for v in wider.decode(np.arange(1, 1 << (fmt.n + 1), 2)) if np.isfinite(v)]
    for a, mid in zip(grid, midpoints, strict=False):
        for target in (a, mid):
            units = target / 2.0**lsb
            if units == int(units) and -limit <= units < limit:
                values.append(int(units))
    return values


@pytest.mark.parametrize("out", ["bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz", "fp4_e2m1", "int8", "int16",
                                 "fp7_e4m2", "posit8_2", "posit16_1", "posit8_0", "posit10_3"])  # fmt: skip
@pytest.mark.parametrize(("width", "lsb"), [(47, -18), (24, 0), (40, -40)])
def test_output_unit_equals_numerics_rounding(out: str, width: int, lsb: int) -> None:
    fmt = numerics.get(out)
    unit = hw.OutputRounder(width, lsb, fmt)
    rng = np.random.default_rng(width + len(out))
    values = accumulator_values(fmt, width, lsb, rng)
    expected = numerics.ExactResult.from_int64(np.array(values, dtype=np.int64), lsb).round_to(fmt)
    got = round_in_sim(unit, values)
    bad = np.flatnonzero(got != expected)
    assert not bad.size, f"acc {values[bad[0]]} * 2**{lsb}: got {got[bad[0]]:#x}, numerics {int(expected[bad[0]]):#x}"


def test_flags_give_nan_and_signed_infinity() -> None:
    unit = hw.OutputRounder(20, -4, "fp16")
    rows = []

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for flags in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
            ctx.set(unit.nan, flags[0])
            ctx.set(unit.pos_inf, flags[1])
            ctx.set(unit.neg_inf, flags[2])
            rows.append(ctx.get(unit.code))

    sim = Simulator(unit)
    sim.add_testbench(bench)
    sim.run()
    assert rows == [0x7E00, 0x7C00, 0xFC00]


def test_unsupported_output_formats() -> None:
    with pytest.raises(ValueError, match=re.escape("the output unit rounds to integer formats, posits and signed")):
        hw.OutputRounder(32, 0, "e8m0")
    with pytest.raises(ValueError, match=r"^acc_width must be >= 2, got 1$"):
        hw.OutputRounder(1, 0, "int8")
