# amaranth: UnusedElaboratable=no
"""Whole GEMMs on generated systolic arrays in Verilator, bit for bit against numerics.matmul, and
measured cycles equal to hw.cycles.

Every array also runs the outer product of all its codes (M = every a-code, K = 1, N = every
b-code): each result is one product, so every operand pair passes through the array's decoders
and multipliers once (exhaustive for <= 8-bit operands). Ragged random GEMMs (M, K, N not
multiples of R, C) exercise the fold controller, the skew and the k-fold accumulation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim
from numerics import ExactAccumulator, FixedAccumulator

RAGGED = [(5, 7, 6), (9, 3, 10), (1, 13, 1), (16, 16, 16)]

# Every element format runs on both dataflows; serialized and double-buffered weight-stationary
# arrays, pipelines 0-2, 4x4 and 8x8 are spread across the formats (each case is a Verilator build).
OS, WS, WS_DB = {"dataflow": "os"}, {"dataflow": "ws"}, {"dataflow": "ws", "double_buffer": True}
CASES = [
    ("int8", "int8", 4, {**WS}),
    ("int8", "int8", 8, {**OS, "pipeline": 1}),
    ("int8", "int8", 8, {**WS_DB, "pipeline": 1}),
    ("int4", "int4", 4, {**OS, "pipeline": 1}),
    ("int4", "int4", 4, {**WS_DB, "pipeline": 2}),
    ("fp8_e4m3", "fp8_e4m3", 4, {**OS, "pipeline": 1}),
    ("fp8_e4m3", "fp8_e4m3", 4, {**WS}),
    ("fp8_e4m3", "fp8_e4m3", 8, {**WS_DB, "pipeline": 1}),
    ("posit8_2", "posit8_2", 4, {**OS, "pipeline": 2}),
    ("posit8_2", "posit8_2", 4, {**WS_DB, "pipeline": 1}),
    ("fp8_e5m2", "int8", 4, {**OS, "dsp_budget": 8}),
]


def _id(case: tuple) -> str:
    a, b, size, opts = case
    extras = "-".join(f"{k}{v}" for k, v in opts.items() if k != "dataflow")
    return f"{a}x{b}-{size}x{size}-{opts['dataflow']}" + (f"-{extras}" if extras else "")


def extreme_operands(cfg: hw.ArrayConfig) -> tuple[np.ndarray, np.ndarray]:
    """Codes of a GEMM R x k_max x C whose dot products are k_max copies of one extreme product:
    rows of A alternate the a-codes of the largest and the most negative product, columns of B
    their b-codes, so the accumulators and every partial sum (a k-fold's column, a block's sum)
    reach both ends of their range."""
    (a_max, b_max), (a_min, b_min) = sim.extreme_pairs(cfg.a_format, cfg.b_format)
    a_codes = np.array([a_max, a_min])[np.arange(cfg.rows) % 2]
    b_codes = np.array([b_max, b_min])[np.arange(cfg.cols) % 2]
    return np.repeat(a_codes[:, None], cfg.k_max, axis=1), np.repeat(b_codes[None, :], cfg.k_max, axis=0)


def _check(array: hw.SystolicArray, a: object, b: object, build_root: Path, work: Path) -> None:
    report = sim.cosim_gemm(array, a, b, build_root, work)
    assert report.passed, report.failure()


def check_extremes_and_folds(array: hw.SystolicArray, build_root: Path, work: Path, seed: int) -> None:
    """The all-extreme GEMM, then the RAGGED GEMMs (folds, K > 1) on random codes."""
    cfg = array.config
    _check(array, *extreme_operands(cfg), build_root, work / "extremes")
    rng = np.random.default_rng(seed)
    for i, (m, k, n) in enumerate(RAGGED):
        a, b = rng.integers(0, 1 << cfg.a_format.bits, (m, k)), rng.integers(0, 1 << cfg.b_format.bits, (k, n))
        _check(array, a, b, build_root, work / f"gemm{i}")


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=[_id(c) for c in CASES])
def test_gemms_are_bit_exact_and_cycle_exact(case: tuple, build_root: Path, tmp_path: Path) -> None:
    a_name, b_name, size, options = case
    array = hw.SystolicArray(a_name, b_name, rows=size, cols=size, k_max=256, m_max=256, **options)
    cfg = array.config
    a_codes, b_codes = np.arange(1 << cfg.a_format.bits), np.arange(1 << cfg.b_format.bits)
    _check(array, a_codes[:, None], b_codes[None, :], build_root, tmp_path / "outer")
    _check(array, *extreme_operands(cfg), build_root, tmp_path / "extremes")
    rng = np.random.default_rng(size)
    for i, (m, k, n) in enumerate(RAGGED):
        a = rng.integers(0, 1 << cfg.a_format.bits, (m, k))
        b = rng.integers(0, 1 << cfg.b_format.bits, (k, n))
        _check(array, a, b, build_root, tmp_path / f"gemm{i}")


@pytest.mark.slow
def test_fixed_wrapping_accumulator_matches_numerics(build_root: Path, tmp_path: Path) -> None:
    """A 12-bit register with its lsb at 2**2: products are floored, sums wrap, as numerics specifies."""
    acc = FixedAccumulator(12, lsb_exponent=2)
    array = hw.SystolicArray("int8", "int8", acc, rows=4, cols=4, dataflow="ws", k_max=256, m_max=64)
    rng = np.random.default_rng(7)
    _check(array, rng.integers(0, 256, (20, 37)), rng.integers(0, 256, (37, 11)), build_root, tmp_path)


MX_CASES = [
    ("mxfp4", 4, {"double_buffer": True, "pipeline": 1}),
    ("mxfp8_e4m3", 8, {"pipeline": 2}),
    ("mxint8", 4, {"double_buffer": True}),
    ("mxfp4", 4, {"dataflow": "os", "pipeline": 1}),
    ("mxfp8_e4m3", 4, {"dataflow": "os"}),
]


@pytest.mark.slow
@pytest.mark.parametrize(("fmt", "size", "options"), MX_CASES,
                         ids=[f"{c[0]}-{c[1]}x{c[1]}-{c[2].get('dataflow', 'ws')}" for c in MX_CASES])  # fmt: skip
def test_mx_gemms_apply_each_block_scale_once(fmt: str, size: int, options: dict, build_root: Path,
                                              tmp_path: Path) -> None:  # fmt: skip
    """Element codes plus E8M0 block scales stream in; results equal numerics' exact MX matmul,
    including the extreme scales 2**-127 and 2**127. Weight-stationary: a column sums a fold of
    one block, scaled once at the bottom; output-stationary: a PE sums a block, then scales it."""
    array = hw.SystolicArray(fmt, fmt, ExactAccumulator(), rows=size, cols=size, k_max=256, m_max=64, **options)
    block = numerics.get(fmt)
    rng = np.random.default_rng(11)
    for i, (m, k, n) in enumerate([(5, 70, 6), (9, 100, 3), (16, 64, 16)]):
        a = rng.normal(size=(m, k)) * np.exp2(rng.integers(-30, 30, (m, 1)))
        b = rng.normal(size=(k, n)) * np.exp2(rng.integers(-30, 30, (1, n)))
        enc_a, enc_b = block.encode(a, axis=-1), block.encode(b, axis=0)
        if i == 0:
            enc_a.scales[0, 0], enc_a.scales[1, 1], enc_b.scales[0, 1] = 0, 254, 0
            enc_b.scales[2, 0] = 254
        _check(array, enc_a, enc_b, build_root, tmp_path / f"gemm{i}")
    a_codes, b_codes = extreme_operands(array.config)  # every block at the largest scale 2**127
    enc_a = block.encode(np.ones(a_codes.shape), axis=-1)
    enc_b = block.encode(np.ones(b_codes.shape), axis=0)
    enc_a.elements[...] = a_codes.reshape(enc_a.elements.shape)
    enc_b.elements[...] = b_codes.T.reshape(enc_b.elements.shape)
    enc_a.scales[...], enc_b.scales[...] = 254, 254
    _check(array, enc_a, enc_b, build_root, tmp_path / "extremes")


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_mx_nan_scales_make_their_outputs_nan(dataflow: str, build_root: Path, tmp_path: Path) -> None:
    """E8M0 code 0xFF is NaN, and so is every element of its block (OCP MX): every output that a
    NaN-scale block of A or of B touches is NaN, even where the block's elements are all zero;
    the others stay exact. (The two mxfp4 designs of MX_CASES: no extra build.)"""
    options = {"dataflow": "os", "pipeline": 1} if dataflow == "os" else {"double_buffer": True, "pipeline": 1}
    array = hw.SystolicArray("mxfp4", "mxfp4", ExactAccumulator(), rows=4, cols=4, k_max=256, m_max=64, **options)
    block = numerics.get("mxfp4")
    rng = np.random.default_rng(13)
    enc_a = block.encode(rng.normal(size=(6, 96)), axis=-1)  # 3 blocks along K
    enc_b = block.encode(rng.normal(size=(96, 5)), axis=0)
    enc_a.scales[1, 0] = enc_a.scales[3, 2] = 0xFF  # first and last block of two rows
    enc_a.elements[4, 1], enc_a.scales[4, 1] = 0, 0xFF  # a NaN block of zeros
    enc_b.scales[2, 1] = 0xFF  # the middle block of one column
    nan = np.isnan(enc_a.decode() @ enc_b.decode())
    assert nan[[1, 3, 4]].all() and nan[:, 2].all() and nan.sum() == 3 * 5 + 6 - 3  # the oracle: decoded floats
    _, flags = sim.expected_gemm(array.config, enc_a, enc_b)
    np.testing.assert_array_equal(flags[..., 0], nan)
    _check(array, enc_a, enc_b, build_root, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_ovp_pairs_decode_in_front_of_the_array(dataflow: str, build_root: Path, tmp_path: Path) -> None:
    """Packed OliVe codes stream in unchanged (pairs on neighbouring lanes); results equal numerics'
    exact matmul on the integer grid (the fp32 scales are applied outside, once per result)."""
    fmt = numerics.get("ovp4")
    array = hw.SystolicArray(fmt, fmt, rows=4, cols=4, dataflow=dataflow, pipeline=1, k_max=256, m_max=512)
    a_axis = 1 if dataflow == "ws" else 0
    rng = np.random.default_rng(12)
    for i, (m, k, n) in enumerate([(6, 10, 6), (10, 14, 2), (16, 16, 16)]):
        a = rng.standard_t(2, size=(m, k)) * 3
        b = rng.standard_t(2, size=(k, n))
        _check(array, fmt.encode(a, axis=a_axis), fmt.encode(b, axis=1), build_root, tmp_path / f"gemm{i}")
    if dataflow == "os":  # every pair code of A against every pair code of B (K = 1)
        pairs = np.arange(256)
        codes = np.stack([pairs & 15, pairs >> 4], axis=-1)[None]  # (1, 256 pairs, 2)
        enc_a = replace(fmt.encode(np.ones((512, 1)), axis=0), codes=codes)
        enc_b = replace(fmt.encode(np.ones((1, 512)), axis=1), codes=codes)
        _check(array, enc_a, enc_b, build_root, tmp_path / "every_pair")


@pytest.mark.slow
@pytest.mark.parametrize("options", [{**OS, "pipeline": 1}, {**WS_DB, "pipeline": 2}, {**OS, "dsp_pack": True}],
                         ids=["os", "ws-db", "os-dsp-packed"])  # fmt: skip
def test_stalls_and_gaps_cost_cycles_but_change_no_result(options: dict, build_root: Path, tmp_path: Path) -> None:
    """Backpressure on `out` and producers that pause (`valid` low now and then on a or b) cost
    cycles but change no result: a double-buffered array whose weight load pauses while the
    fold's activations already stream freezes until the weights come; an output-stationary array
    holds the next fold at its edge while the shadows are full (K = 1 and 2: folds finish faster
    than a stalled drain empties, so a fold that started anyway would overwrite finished sums)."""
    array = hw.SystolicArray("int4", "int4", rows=4, cols=4, k_max=256, m_max=256, **options)
    rng = np.random.default_rng(21)
    cases = [(2, (0, 0), 6), (3, (0, 0), 6), (0, (0, 3), 6), (0, (4, 0), 6), (5, (3, 2), 6), (2, (0, 0), 1),
             (3, (0, 0), 2), (2, (3, 2), 1)]  # fmt: skip
    for stall_every, gaps, k in cases:
        a, b = rng.integers(0, 16, (9, k)), rng.integers(0, 16, (k, 10))
        work = tmp_path / f"stall{stall_every}-gaps{gaps[0]}{gaps[1]}-k{k}"
        report = sim.cosim_gemm(array, a, b, build_root, work, stall_every=stall_every, gaps=gaps)
        context = f"stall every {stall_every}, gaps {gaps}, K = {k}"
        assert report.mismatches == 0, f"{context}: {report.first_mismatch}"
        assert report.cycles > report.model_cycles, context  # the stalls cost cycles; the model is stall-free


@pytest.mark.slow
@pytest.mark.parametrize("pipeline", [0, 2])
def test_output_stationary_folds_shorter_than_a_drain(pipeline: int, build_root: Path, tmp_path: Path) -> None:
    """On a 2x2 output-stationary array, folds of K = 1..3 end faster than the shadows drain: a fold
    starts only once the fold two before it has left (cycle-exact against `hw.cycles`), and with
    backpressure on `out` no finished fold is overwritten while it waits for the shadows."""
    array = hw.SystolicArray("int4", "int4", rows=2, cols=2, dataflow="os", pipeline=pipeline, k_max=16)
    rng = np.random.default_rng(5)
    for k in (1, 2, 3):
        a, b = rng.integers(0, 16, (7, k)), rng.integers(0, 16, (k, 6))
        _check(array, a, b, build_root, tmp_path / f"k{k}")
        for stall_every in (2, 3):
            report = sim.cosim_gemm(array, a, b, build_root, tmp_path / f"k{k}-stall{stall_every}",
                                    stall_every=stall_every)  # fmt: skip
            assert report.mismatches == 0, f"K = {k}, stall every {stall_every}: {report.first_mismatch}"


def test_relative_paths_are_resolved_where_they_enter(
    build_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The simulator runs in its own directory: a relative build root and work directory (as a
    user's relative -o gives) must still reach it as the files the caller meant."""
    # the CLI's default 2x2 int4 array (tests/bitfab build it too: one build serves both)
    array = hw.SystolicArray("int4", "int4", rows=2, cols=2, dataflow="ws", double_buffer=True, pipeline=1,
                             k_max=1024, m_max=64)  # fmt: skip
    monkeypatch.chdir(tmp_path)
    relative_root = Path("builds")
    build_root.mkdir(exist_ok=True)
    (tmp_path / "builds").symlink_to(build_root, target_is_directory=True)
    rng = np.random.default_rng(3)
    report = sim.cosim_gemm(array, rng.integers(0, 16, (5, 7)), rng.integers(0, 16, (7, 3)), relative_root,
                            Path("work") / "gemm")  # fmt: skip
    assert report.passed, report.failure()
    assert (tmp_path / "work" / "gemm" / "sim.log").exists() and (tmp_path / "work" / "gemm" / "out.hex").exists()
