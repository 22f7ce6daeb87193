# amaranth: UnusedElaboratable=no
"""The MX quantizer's parameter checks, clean Verilog, and the spec's worked cases in amaranth.sim
(the bit-exact sweep against numerics is tests/sim/test_mx_quantizer_cosim.py)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from amaranth.sim import Simulator

import hw
import numerics
import sim

MX_NAMES = "bfp8_16, mxfp4, mxfp6_e2m3, mxfp6_e3m2, mxfp8_e4m3, mxfp8_e5m2, mxint8, mxint8_full"
NOT_MX = ("fmt must be an MX block format (E8M0 scale, OCP floor rule, signed int or minifloat elements): "
          f"{MX_NAMES} or a BlockFormat like them, got ")  # fmt: skip
CEIL = replace(numerics.get("mxfp4"), scale_rule=numerics.ScaleRule.CEIL)  # type: ignore[type-var]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("mxfp9", 16, 0), NOT_MX + "'mxfp9'"),
        ((3, 16, 0), NOT_MX + "3"),
        (("fp8_e4m3", 16, 0), NOT_MX + "'fp8_e4m3'"),
        (("nvfp4", 16, 0), NOT_MX + "'nvfp4' (element fp4_e2m1, scale fp8_e4m3, scale_rule floor, tensor_scale True)"),
        ((CEIL, 16, 0), NOT_MX + "'mxfp4' (element fp4_e2m1, scale e8m0, scale_rule ceil, tensor_scale False)"),
        (("mxfp8_e4m3", 1, 0), "in_width must be an integer >= 2, got 1"),
        (("mxfp8_e4m3", 16, 0.5), "lsb_exponent must be an integer, got 0.5"),
        (("mxfp8_e4m3", 16, 0, 5), "block must divide mxfp8_e4m3's block size 32 (one of 1, 2, 4, 8, 16, 32), got 5"),
        (("bfp8_16", 16, 0, 32), "block must divide bfp8_16's block size 16 (one of 1, 2, 4, 8, 16), got 32"),
    ],
)
def test_bad_parameters_name_the_value_and_what_is_allowed(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        hw.MXQuantizer(*arguments)


def test_verilog_lints_clean(tmp_path: Path) -> None:
    for name, block in (("mxfp8_e4m3", None), ("mxint8", 4)):
        path = hw.emit(hw.MXQuantizer(name, 16, -8, block=block), tmp_path / f"{name}.v")
        result = sim.lint(path, "top", hw.LINT_WAIVERS)
        assert result.returncode == 0, result.stderr


def quantize_in_sim(unit: hw.MXQuantizer, rows: list[list[int]]) -> list[list[int]]:
    """(scale code, element codes...) per block."""
    out = []

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for row in rows:
            for i, value in enumerate(row):
                ctx.set(unit.values[i], value)
            out.append([ctx.get(unit.scale), *(ctx.get(unit.elements[i]) for i in range(unit.block))])

    simulator = Simulator(unit)
    simulator.add_testbench(bench)
    simulator.run()
    return out


def test_the_spec_cases_match_numerics() -> None:
    """MXFP4 at lsb 2**-2: a block of amax 7 takes scale 2**0 and 7 saturates to 6 (the floor
    rule); 0.25 ties to 0 and 0.75 to 1.0 (the even codes); a zero block takes code 0x00; beside
    the negative extreme -32 (scale 2**3), 3/8 rounds to 0.5, 1/32 to +0 and -1/8 to -0."""
    unit = hw.MXQuantizer("mxfp4", 8, -2, block=4)
    rows = [[28, -4, 1, 3], [0, 0, 0, 0], [-128, 12, 1, -4], [127, -127, 64, -65]]
    got = quantize_in_sim(unit, rows)
    assert got[0] == [127, 0b0111, 0b1010, 0b0000, 0b0010]  # 7 -> 6, -1, 0.25 -> 0, 0.75 -> 1
    assert got[1] == [0, 0, 0, 0, 0]
    assert got[2] == [130, 0b1110, 0b0001, 0b0000, 0b1000]
    want = unit.format.encode(np.ldexp(np.array(rows, float), -2))
    assert got == [[int(s), *map(int, e)] for s, e in zip(want.scales.ravel(), want.elements[:, 0], strict=True)]
