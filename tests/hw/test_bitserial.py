# amaranth: UnusedElaboratable=no
"""Bit-serial unit: the unified term representation, weight plans, cycle model and clean Verilog."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim


@pytest.mark.parametrize("bits", [4, 3])
def test_grid_terms_sum_to_every_grid_value(bits: int) -> None:
    for selector in range(4):
        values, _ = numerics.grid_lowered(bits, selector)
        for code in range(1 << bits):
            terms = hw.grid_terms(bits, selector, code)
            total = sum(0 if z else (-1) ** neg * ((2 + man) << e) for z, neg, man, e in terms)
            assert total == 2 * values[code], (bits, selector, code)  # terms are in half-units


def booth_digits(value: int, terms: int) -> list[int]:
    bits = [(value >> i) & 1 for i in range(2 * terms)]
    return [-2 * bits[2 * j + 1] + bits[2 * j] + (bits[2 * j - 1] if j else 0) for j in range(terms)]


@pytest.mark.parametrize("fmt", ["int2", "int3", "int4", "int8"])
def test_int_plans_are_booth_radix4_bit_plane_pairs(fmt: str) -> None:
    cfg = hw.BitSerialArray("int8", lanes=4, cols=2, group=8).config
    width = numerics.get(fmt).bits
    codes = np.arange(1 << width)[:, None]
    plan = hw.plan_weights(cfg, codes, fmt)
    assert plan.terms == -(-width // 2)
    values = numerics.get(fmt).decode(codes[:, 0]).astype(int)
    for v, slices in zip(values, plan.slices[:, :, 0].T, strict=True):
        plane_value = sum(int(s) << (2 * j) for j, s in enumerate(slices))
        digits = booth_digits(plane_value, plan.terms)
        assert sum(d * 4**j for j, d in enumerate(digits)) == v


def test_cycles_scale_with_weight_precision() -> None:
    """Long groups: 8-bit weights take 4x the cycles of 2-bit ones, 4-bit 2x (plus the fixed tail)."""
    cfg = hw.BitSerialArray("int8", lanes=8, cols=4, group=256).config
    k = 256
    tail = 12
    cycles = {fmt: hw.bitserial_cycles(cfg, 16, k, 8, hw.plan_weights(cfg, np.zeros((k, 8), int), fmt)) - tail
              for fmt in ("int2", "int4", "int8")}  # fmt: skip
    assert cycles["int4"] == 2 * cycles["int2"] and cycles["int8"] == 4 * cycles["int2"]
    assert cycles["int2"] == 2 * 16 * (k // 8)  # N-tiles x M x k-chunks x 1 term


def test_bad_configurations_and_weights_name_the_value() -> None:
    message = "activations must be a signed integer format of <= 16 bits, got fp8_e4m3"
    with pytest.raises(ValueError, match=re.escape(message)):
        hw.BitSerialArray("fp8_e4m3")
    with pytest.raises(ValueError, match=re.escape("group must be a positive multiple of lanes=8, got 12")):
        hw.BitSerialArray("int8", lanes=8, group=12)
    cfg = hw.BitSerialArray("int8", lanes=4, cols=2, group=8).config
    message = "bit-serial weights are int2..int8, fp4_e2m1, bitmod4, bitmod3 (or _exact), got int16"
    with pytest.raises(ValueError, match=re.escape(message)):
        hw.plan_weights(cfg, np.zeros((4, 4), int), "int16")


def test_verilog_lints_clean(tmp_path: Path) -> None:
    path = hw.emit(hw.BitSerialArray("int8", lanes=4, cols=2, group=16), tmp_path / "bitserial.v")
    result = sim.lint(path, "top", hw.LINT_WAIVERS)
    assert result.returncode == 0, result.stderr
