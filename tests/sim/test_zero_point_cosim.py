# amaranth: UnusedElaboratable=no
"""Zero points subtracted at the array edge: the streams carry a model's own integer codes, the
edge turns each into code - zero point (one bit wider), exactly, on both dataflows. Every A code
and every B code occurs (all 256 of each), the GEMM is ragged in M, K and N (padding must enter
as the zero point's code), and the result equals an int64 matmul computed here without numerics."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hw
import sim

# both dataflows, both operands with a zero point, unsigned and signed streams (the WS case with an
# unsigned A zero point also runs in tests/bitfab/test_byom.py on a real model's codes)
CASES = [("uint8", 131, "int8", -7, "os"), ("int8", -128, "uint8", 255, "ws")]


def _all_codes(rng: np.random.Generator, rows: int, cols: int) -> np.ndarray:
    codes = np.concatenate([np.arange(256), rng.integers(0, 256, rows * cols - 256)])
    return rng.permutation(codes).reshape(rows, cols).astype(np.uint8)


def _signed(codes: np.ndarray, fmt: str) -> np.ndarray:
    return codes.astype(np.int8).astype(np.int64) if fmt == "int8" else codes.astype(np.int64)


@pytest.mark.slow
@pytest.mark.parametrize(("a_fmt", "a_zp", "b_fmt", "b_zp", "dataflow"), CASES,
                         ids=[f"{c[0]}zp{c[1]}-{c[2]}zp{c[3]}-{c[4]}" for c in CASES])  # fmt: skip
def test_every_code_minus_its_zero_point_on_both_dataflows(a_fmt: str, a_zp: int, b_fmt: str, b_zp: int,
                                                           dataflow: str, build_root: Path,
                                                           tmp_path: Path) -> None:  # fmt: skip
    rng = np.random.default_rng(0)
    array = hw.SystolicArray(a_fmt, b_fmt, rows=4, cols=4, dataflow=dataflow, double_buffer=dataflow == "ws",
                             pipeline=1, k_max=64, m_max=64, a_zero_point=a_zp, b_zero_point=b_zp)  # fmt: skip
    a, b = _all_codes(rng, 18, 15), _all_codes(rng, 15, 19)
    report = sim.cosim_gemm(array, a, b, build_root, tmp_path)
    assert report.passed, report.failure()
    want = (_signed(a, a_fmt) - a_zp) @ (_signed(b, b_fmt) - b_zp)
    assert np.array_equal(np.asarray(report.result, dtype=np.int64), want)


def test_the_datapath_is_one_bit_wider_and_the_stream_keeps_the_codes() -> None:
    config = hw.SystolicArray("uint8", "int8", a_zero_point=200).config
    assert (config.a_format.name, config.a_code_format.name, config.b_format.name) == ("int9", "uint8", "int8")
    assert "uint8 zp 200" in config.describe()


@pytest.mark.parametrize(("fmt", "zero_point", "message"), [
    ("uint8", 256, r"a_zero_point must be a uint8 code \(0..255\), got 256"),
    ("int8", -129, r"a_zero_point must be a int8 code \(-128..127\), got -129"),
    ("fp8_e4m3", 3, "applies to integer formats"),
    ("uint8", 1.5, "takes an integer"),
])  # fmt: skip
def test_impossible_zero_points_are_refused(fmt: str, zero_point: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hw.SystolicArray(fmt, "int8", a_zero_point=zero_point)
