# amaranth: UnusedElaboratable=no
"""GEMMs on the bit-serial unit in Verilator: bit-exact against numerics.matmul (BitMoD scales
included), cycles equal to hw.bitserial_cycles.

The integer cases include the outer product of every activation code with every weight code.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim


@pytest.fixture(scope="module")
def unit() -> hw.BitSerialArray:
    return hw.BitSerialArray("int8", lanes=4, cols=4, group=128)


def _check(report: sim.GemmReport) -> None:
    assert report.passed, report.failure()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["int2", "int4", "int8", "fp4_e2m1"])
def test_every_activation_times_every_weight_code(fmt: str, build_root: Path, tmp_path: Path) -> None:
    unit = hw.BitSerialArray("int8", lanes=4, cols=4, group=4)  # K = 1: one short group per output
    weights = np.arange(1 << numerics.get(fmt).bits)[None, :]
    _check(sim.cosim_bitserial(unit, np.arange(256)[:, None], weights, fmt, build_root, tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["int2", "int3", "int4", "int8", "bitmod4", "bitmod3"])
def test_random_gemms(unit: hw.BitSerialArray, fmt: str, build_root: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    m, k, n = 7, 256, 9  # two groups along K, ragged N
    a = rng.integers(0, 256, (m, k))
    if fmt.startswith("bitmod"):
        w = rng.normal(size=(k, n)) * np.where(rng.random((1, n)) < 0.3, 20.0, 1.0)
        weights = numerics.get(fmt).encode(w, axis=0)
    else:
        weights = rng.integers(0, 1 << numerics.get(fmt).bits, (k, n))
    _check(sim.cosim_bitserial(unit, a, weights, fmt, build_root, tmp_path))


@pytest.mark.slow
def test_every_bitmod_grid_code(unit: hw.BitSerialArray, build_root: Path, tmp_path: Path) -> None:
    """One group per column, one column per grid selector, every code along K; varied fp16 scales."""
    fmt = numerics.get("bitmod4")
    rng = np.random.default_rng(5)
    codes = np.tile(np.arange(16), 8)[None, None, :].repeat(4, axis=0)  # (N=4, groups=1, 128)
    scales = np.array([[0x3C00], [0x0001], [0x7BFF], [0x2E66]], dtype=np.uint16)  # 1, min subnormal, max, 0.1
    weights = numerics.BitMoDEncoded(fmt, codes, np.arange(4)[:, None], scales, (128, 4), 0, 128)
    _check(sim.cosim_bitserial(unit, rng.integers(0, 256, (6, 128)), weights, "bitmod4", build_root, tmp_path))
