# amaranth: UnusedElaboratable=no
"""Systolic array generator: configuration errors, clean Verilog, beat layout, and the cycle model
against SCALE-Sim's closed forms (the co-simulation that checks the model is in tests/sim)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim
from numerics import FixedAccumulator


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rows": 1}, "rows must be between 2 and 64, got 1"),
        ({"cols": 65}, "cols must be between 2 and 64, got 65"),
        ({"dataflow": "is"}, "dataflow must be 'ws' (weight-stationary) or 'os' (output-stationary), got 'is'"),
        ({"dataflow": "os", "double_buffer": True},
         "double_buffer applies to weight-stationary arrays (dataflow='ws'), not 'os'"),
        ({"pipeline": 3}, "pipeline must be 0, 1 or 2, got 3"),
        ({"dsp_budget": -1}, "dsp_budget must be >= 0 (or None for no limit), got -1"),
        ({"k_max": 0}, "k_max must be between 1 and 65535, got 0"),
        ({"m_max": 20000}, "m_max must be between 1 and 16384, got 20000"),
    ],
)  # fmt: skip
def test_configuration_errors_name_the_value(options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        hw.SystolicArray("int8", "int8", **options)


def test_saturating_accumulator_is_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match=r"saturating accumulator would not match numerics' k-order clamping"):
        hw.SystolicArray("int8", "int8", FixedAccumulator(24, overflow="saturate"))


def test_unknown_and_composite_formats_are_refused() -> None:
    with pytest.raises(ValueError, match=re.escape("integer bits must be in [1, 32], got 99")):
        hw.SystolicArray("int99", "int8")
    with pytest.raises(ValueError, match="no decoder for bitmod4"):
        hw.SystolicArray("bitmod4", "int8")


def test_gemm_limits_are_checked_before_simulation() -> None:
    ws = hw.ArrayConfig.build("int8", "int8", rows=4, cols=4, m_max=16, k_max=64)
    with pytest.raises(ValueError, match=r"M=17 exceeds this weight-stationary array's m_max=16"):
        hw.cycles(ws, 17, 8, 8)
    with pytest.raises(ValueError, match=r"K=65 exceeds this array's k_max=64"):
        hw.cycles(ws, 8, 65, 8)
    with pytest.raises(ValueError, match=r"GEMM N must be between 1 and 65535, got 0"):
        hw.cycles(ws, 8, 8, 0)
    with pytest.raises(ValueError, match=r"gemm operands must be \(M, K\) and \(K, N\) codes, got shapes"):
        hw.gemm_beats(ws, np.zeros((2, 3)), np.zeros((4, 2)))


@pytest.mark.parametrize("dataflow", ["ws", "os"])
@pytest.mark.parametrize("shape", [(1, 1, 1), (5, 7, 3), (8, 8, 8), (13, 4, 9)])
def test_beats_follow_the_documented_order(dataflow: str, shape: tuple[int, int, int]) -> None:
    """Replaying the beats through a plain fold-by-fold model reproduces A @ B."""
    cfg = hw.ArrayConfig.build("int8", "int8", rows=4, cols=3, dataflow=dataflow)
    m, k, n = shape
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 9, (m, k)), rng.integers(0, 9, (k, n))
    beats = hw.gemm_beats(cfg, a, b)
    r, c = cfg.rows, cfg.cols
    if dataflow == "os":
        folds = beats.a.reshape(-1, k, r), beats.b.reshape(-1, k, c)
        tiles = np.stack([fa.T.astype(np.int64) @ fb.astype(np.int64) for fa, fb in zip(*folds, strict=True)])
        out = tiles.reshape(-1, c)  # R result beats per fold
    else:
        n_tiles, k_tiles = -(-n // c), -(-k // r)
        weights = beats.b.reshape(n_tiles, k_tiles, r, c).astype(np.int64)
        acts = beats.a.reshape(n_tiles, k_tiles, m, r).astype(np.int64)
        out = np.einsum("nkmr,nkrc->nmc", acts, weights).reshape(-1, c)
    assert out.shape[0] == beats.results
    np.testing.assert_array_equal(hw.result_matrix(cfg, out, m, n), a @ b)


SHAPES = [(1, 1, 1), (3, 5, 4), (8, 8, 8), (17, 9, 23), (64, 100, 30), (512, 64, 512)]


@pytest.mark.parametrize("rows_cols", [(2, 2), (4, 4), (8, 8), (4, 16), (16, 4)])
@pytest.mark.parametrize("pipeline", [0, 2])
def test_serialized_folds_are_scalesim_plus_a_constant(rows_cols: tuple[int, int], pipeline: int) -> None:
    r, c = rows_cols
    os_ = hw.ArrayConfig.build("int8", "int8", rows=r, cols=c, dataflow="os", pipeline=pipeline, m_max=512)
    ws = hw.ArrayConfig.build("int8", "int8", rows=r, cols=c, dataflow="ws", pipeline=pipeline, m_max=512)
    for m, k, n in SHAPES:
        # ours counts the first and the last cycle (SCALE-Sim's -1 is issue #125), plus the PE pipeline,
        # the edge registers and decode (3 cycles) and, output-stationary, the R-row drain of the last fold.
        assert hw.cycles(os_, m, k, n) == hw.scalesim_cycles("os", m, k, n, r, c) + r + pipeline + 4
        assert hw.cycles(ws, m, k, n) == hw.scalesim_cycles("ws", m, k, n, r, c) + pipeline + 5


def test_double_buffering_is_faster_by_the_overlapped_loads() -> None:
    for r, c in [(4, 4), (8, 8)]:
        serial = hw.ArrayConfig.build("int8", "int8", rows=r, cols=c, m_max=512)
        double = hw.ArrayConfig.build("int8", "int8", rows=r, cols=c, double_buffer=True, m_max=512)
        for m, k, n in SHAPES:
            folds = hw.folds(serial, m, k, n)
            saved = hw.cycles(serial, m, k, n) - hw.cycles(double, m, k, n)
            # every later fold starts max(M, R) after the previous one instead of M + 2R + C - 2, and the
            # first fold streams while its own weights load (R cycles)
            assert saved == (folds - 1) * (m + 2 * r + c - 2 - max(m, r)) + r
            assert saved >= 0


def test_scalesim_reference_values() -> None:
    """Two values from SCALE-Sim's closed forms, by hand: 8x8 array, 64x64x64 GEMM."""
    assert hw.scalesim_cycles("os", 64, 64, 64, 8, 8) == 64 * (64 + 14) - 1
    assert hw.scalesim_cycles("ws", 64, 64, 64, 8, 8) == 64 * (64 + 16 + 6) - 1
    assert hw.scalesim_cycles("is", 64, 64, 64, 8, 8) == 64 * (64 + 16 + 6) - 1


@pytest.mark.parametrize(
    "options",
    [{"dataflow": "os", "pipeline": 1}, {"dataflow": "ws", "double_buffer": True, "pipeline": 2, "dsp_budget": 2}],
)
def test_verilog_lints_clean(options: dict, tmp_path: Path) -> None:
    array = hw.SystolicArray("fp8_e4m3", "int4", rows=2, cols=3, **options)
    path = hw.emit(array, tmp_path / "array.v")
    result = sim.lint(path, "top", hw.LINT_WAIVERS)
    assert result.returncode == 0, result.stderr


def test_dsp_budget_decides_which_pes_multiply_in_luts() -> None:
    cfg = hw.ArrayConfig.build("int8", "int8", rows=2, cols=3, dsp_budget=4)
    assert [cfg.uses_dsp(i, j) for i in range(2) for j in range(3)] == [True] * 4 + [False] * 2
    verilog = hw.to_verilog(hw.SystolicArray("int8", "int8", rows=2, cols=2, dsp_budget=1))
    assert verilog.count(" * ") == 1  # one `$mul`; the other PEs add shifted partial products


@pytest.mark.parametrize(
    ("a", "b", "options", "message"),
    [
        ("mxfp4", "int8", {}, "MX arrays take the same MX format for a and b, got mxfp4 and int8"),
        ("nvfp4", "nvfp4", {}, "arrays take OCP MX block formats (E8M0 scales, no tensor scale), got nvfp4"),
        ("mxfp4", "mxfp4", {"rows": 6}, "rows must divide the MX block size 32 (a k-fold stays in one block), got 6"),
    ],
)
def test_mx_configuration_errors(a: str, b: str, options: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        hw.SystolicArray(a, b, **options)


def test_mx_results_sit_below_the_element_lsb_by_both_scale_biases() -> None:
    cfg = hw.ArrayConfig.build("mxint8", "mxint8", rows=4, cols=4, k_max=64)
    assert cfg.a_format.name == "int8_narrow" and cfg.product_lsb == 0
    assert cfg.lsb_exponent == 2 * -6 - 254  # mxint8 elements weigh 2**-6
    assert cfg.acc_width == hw.ArrayConfig.build("int8_narrow", "int8_narrow", k_max=64).acc_width + 508


def test_ovp_lanes_must_pair_up() -> None:
    with pytest.raises(ValueError, match=re.escape("cols must be even to pair OliVe lanes (ovp4), got 3")):
        hw.SystolicArray("int8", "ovp4", rows=4, cols=3)
    cfg = hw.ArrayConfig.build("ovp4", "ovp8", rows=2, cols=2, dataflow="os")
    assert cfg.a_layout.exp_width == 3 and cfg.lsb_exponent == 0
    fmt = numerics.get("ovp4")
    enc = fmt.encode(np.ones((4, 6)), axis=1)
    with pytest.raises(ValueError, match=re.escape("A must pair its elements along M (axis 0) with an even length")):
        hw.gemm_beats(hw.ArrayConfig.build("ovp4", "int8", rows=2, cols=2, dataflow="os"), enc, np.zeros((6, 2), int))
