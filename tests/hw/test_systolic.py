# amaranth: UnusedElaboratable=no
"""Systolic array generator: configuration errors, clean Verilog, beat layout, and the cycle model
against SCALE-Sim's closed forms (the co-simulation that checks the model is in tests/sim)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from amaranth import Module, Signal, signed, unsigned
from amaranth.sim import Simulator

import hw
import numerics
import sim
from numerics import ExactAccumulator, FixedAccumulator


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
    cfg = hw.ArrayConfig.build("mxint8", "mxint8", ExactAccumulator(), rows=4, cols=4, k_max=64)
    assert cfg.a_format.name == "int8_narrow" and cfg.product_lsb == 0
    assert cfg.lsb_exponent == 2 * -6 - 254  # mxint8 elements weigh 2**-6
    assert cfg.acc_width == hw.ArrayConfig.build("int8_narrow", "int8_narrow", k_max=64).acc_width + 508


@pytest.mark.parametrize("dataflow", ["os", "ws"])
def test_mx_arrays_accumulate_in_fp32_unless_told_otherwise(dataflow: str) -> None:
    """OCP MX's dot product by default: exact block sums, scaled, added into fp32 (in the order the
    dataflow realises); ExactAccumulator() keeps the 2 * 254-bit wider exact path; other operands
    stay exact by default."""
    cfg = hw.ArrayConfig.build("mxfp8_e4m3", "mxfp8_e4m3", rows=4, cols=4, dataflow=dataflow)
    block = 32 if dataflow == "os" else 4
    assert cfg.accumulator == numerics.parse_accumulator("fp32").with_order("blocked", block)
    assert (cfg.acc_width, cfg.float_format) == (32, numerics.get("fp32"))
    exact = hw.ArrayConfig.build("mxfp8_e4m3", "mxfp8_e4m3", ExactAccumulator(), rows=4, cols=4, dataflow=dataflow)
    assert exact.accumulator == ExactAccumulator() and exact.acc_width > 508
    assert hw.SystolicArray("mxfp4", "mxfp4", dataflow=dataflow).config.float_format == numerics.get("fp32")
    for a in ("fp8_e4m3", "int8", "ovp4"):
        assert hw.ArrayConfig.build(a, a, dataflow=dataflow).accumulator == ExactAccumulator()


def test_ovp_lanes_must_pair_up() -> None:
    with pytest.raises(ValueError, match=re.escape("cols must be even to pair OliVe lanes (ovp4), got 3")):
        hw.SystolicArray("int8", "ovp4", rows=4, cols=3)
    cfg = hw.ArrayConfig.build("ovp4", "ovp8", rows=2, cols=2, dataflow="os")
    assert cfg.a_layout.exp_width == 3 and cfg.lsb_exponent == 0
    fmt = numerics.get("ovp4")
    enc = fmt.encode(np.ones((4, 6)), axis=1)
    with pytest.raises(ValueError, match=re.escape("A must pair its elements along M (axis 0) with an even length")):
        hw.gemm_beats(hw.ArrayConfig.build("ovp4", "int8", rows=2, cols=2, dataflow="os"), enc, np.zeros((6, 2), int))


FP32 = numerics.parse_accumulator("fp32")


@pytest.mark.parametrize(
    ("a", "accumulator", "options", "message"),
    [
        ("fp8_e4m3", FP32.with_order("pairwise"), {"dataflow": "os"},
         "an output-stationary array adds every exact product in k order (order='sequential'): give "
         "numerics.parse_accumulator('fp32'); got order='pairwise'"),
        ("fp8_e4m3", FP32.with_order("blocked", 2), {"dataflow": "os"},
         "an output-stationary array adds every exact product in k order (order='sequential'): give "
         "numerics.parse_accumulator('fp32'); got order='blocked', block=2"),
        ("fp8_e4m3", numerics.parse_accumulator("bf16_w6").with_order("blocked", 8), {"rows": 4},
         "a weight-stationary array rounds each column's exact sum of its 4 rows, then adds it (order='blocked', "
         "block=4): give numerics.parse_accumulator('bf16_w6'), which it maps to that, or "
         "numerics.parse_accumulator('bf16_w6').with_order('blocked', 4); got order='blocked', block=8"),
        ("mxfp4", FP32.with_order("blocked", 16), {"dataflow": "os"},
         "an output-stationary array rounds each mxfp4 block's exact scaled sum (32 products), then adds it "
         "(order='blocked', block=32): give numerics.parse_accumulator('fp32'), which it maps to that, or "
         "numerics.parse_accumulator('fp32').with_order('blocked', 32); got order='blocked', block=16"),
        ("mxfp4", FixedAccumulator(32), {},
         "MX arrays accumulate exactly (ExactAccumulator, 'exact') or in a float format (FloatAccumulator, e.g. "
         "'fp32', the default): block scales shift sums by up to 2**508; got int32"),
        ("mxfp4", FixedAccumulator(32, lsb_exponent=0), {},
         "MX arrays accumulate exactly (ExactAccumulator, 'exact') or in a float format (FloatAccumulator, e.g. "
         "'fp32', the default): block scales shift sums by up to 2**508; got FixedAccumulator(width=32, "
         "lsb_exponent=0, overflow='wrap')"),
        ("ovp4", FP32, {},
         "OliVe arrays compute on the integer grid and apply the fp32 scale outside, once per result: a float "
         "accumulator would round before it; use ExactAccumulator ('exact') or a wrapping FixedAccumulator "
         "('int{W}'); got fp32"),
        ("int8", FixedAccumulator(24, overflow="saturate"), {},
         "a systolic array sums partial sums in dataflow order, so a saturating accumulator would not match "
         "numerics' k-order clamping: use ExactAccumulator, FixedAccumulator(overflow='wrap') or FloatAccumulator; "
         "got int24_sat"),
        ("int8", numerics.FloatAccumulator(numerics.Minifloat(2, 1, bias=30)), {},
         "accumulator fp4_e2m1_b30 holds no nonzero int8 x int8 product: their magnitudes lie in [1, 1.638e+04], "
         "fp4_e2m1_b30's nonzero finite values in [9.313e-10, 5.588e-09]"),
        ("fp8_e4m3", numerics.FloatAccumulator(numerics.Minifloat(2, 1, bias=-30)), {"dataflow": "os"},
         "accumulator fp4_e2m1_b-30 holds no nonzero fp8_e4m3 x fp8_e4m3 product: their magnitudes lie in "
         "[3.815e-06, 2.007e+05], fp4_e2m1_b-30's nonzero finite values in [1.074e+09, 6.442e+09]"),
        ("fp8_e4m3", numerics.Minifloat(4, 3, signed=False), {},
         "accumulator must be ExactAccumulator, FixedAccumulator or FloatAccumulator, got Minifloat"),
    ],
)  # fmt: skip
def test_accumulator_errors_name_the_value_and_what_is_allowed(
    a: str, accumulator: object, options: dict, message: str
) -> None:
    """Orders a dataflow cannot realise, accumulators an operand kind cannot take, and a float
    format that holds no element product at all (every result 0, Inf or NaN)."""
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        hw.SystolicArray(a, a, accumulator, **options)


def test_narrow_float_accumulators_are_built_as_numerics_defines_them() -> None:
    """fp16 or fp8 accumulation of fp8_e4m3 products (some overflow or vanish) is a design choice
    numerics defines, not an error; a window wider than the accumulator never reaches the array:
    numerics refuses it, with the accumulator's spelling."""
    for text in ("fp16", "fp8_e5m2", "fp8_e4m3_w3"):
        assert hw.ArrayConfig.build("fp8_e4m3", "fp8_e4m3", numerics.parse_accumulator(text)).float_format
    message = "accumulator 'fp16_w14': window must be between 2 and the accumulator's 11 significand bits (fp16), "
    with pytest.raises(ValueError, match=f"^{re.escape(message)}got 14$"):
        hw.SystolicArray("fp8_e4m3", "fp8_e4m3", numerics.parse_accumulator("fp16_w14"))
    message = "window must be between 2 and the accumulator's 8 significand bits (bf16), got 9"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        hw.SystolicArray("mxfp4", "mxfp4", numerics.FloatAccumulator(numerics.get("bf16"), window=9))


@pytest.mark.parametrize(
    ("a", "options", "order", "block"),
    [("fp8_e4m3", {"dataflow": "os"}, "sequential", None), ("int8", {"rows": 3}, "blocked", 3),
     ("mxfp8_e4m3", {"dataflow": "os"}, "blocked", 32), ("mxfp8_e4m3", {"rows": 8}, "blocked", 8)],
)  # fmt: skip
def test_float_accumulators_take_the_dataflows_order(a: str, options: dict, order: str, block: int | None) -> None:
    """A plain float accumulator (what `--acc fp32` gives) is mapped to the order the dataflow
    realises; that order spelled out is accepted too; results are codes of the format."""
    accumulator = numerics.parse_accumulator("fp16_w8r_rz")
    cfg = hw.ArrayConfig.build(a, a, accumulator, **options)
    assert cfg.numerics_accumulator == cfg.accumulator == accumulator.with_order(order, block)  # type: ignore[arg-type]
    assert hw.ArrayConfig.build(a, a, cfg.accumulator, **options) == cfg
    assert (cfg.acc_width, cfg.float_format, cfg.lane_layout.members["acc"]) == (16, numerics.get("fp16"), unsigned(16))
    if "mx" in a:  # the block register stays exact and narrow: no 508-bit accumulator
        exact = hw.ArrayConfig.build(a, a, ExactAccumulator(), **options)
        assert cfg.partial_width(32) == exact.partial_width(32) < exact.acc_width - 508


def _rounded_in_sim(fmt: numerics.Minifloat, rounding: str, width: int, exp_base: int,
                    inputs: list[tuple[int, int, int, int, int]]) -> list[int]:  # fmt: skip
    """hw.float_round on (sig, exp, nan, inf, neg) inputs, in amaranth's simulator."""
    from hw._float_acc import FloatTerm
    from hw._float_convert import float_round

    m = Module()
    ports = Signal(signed(width)), Signal(9), Signal(), Signal(), Signal()
    code = float_round(m, "round", FloatTerm(ports[0], ports[1], exp_base, *ports[2:]), fmt, rounding)
    got: list[int] = []

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for values in inputs:
            for port, value in zip(ports, values, strict=True):
                ctx.set(port, value)
            got.append(ctx.get(code))

    simulator = Simulator(m)
    simulator.add_testbench(bench)
    simulator.run()
    return got


@pytest.mark.parametrize("rounding", ["nearest_even", "toward_zero"])
@pytest.mark.parametrize("out", ["fp32", "bf16", "fp16", "fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz"])
def test_block_sums_round_to_the_format_as_numerics_does(out: str, rounding: str) -> None:
    """The converter of an exact (MX-scaled) sum: exponents 2**-272 .. 2**239 reach zero, the
    subnormals and overflow of every format; NaN and Inf in give the format's codes."""
    fmt, width, exp_base = numerics.get(out), 40, -18 - 254
    rng = np.random.default_rng(len(out))
    sigs = [int(rng.integers(0, 1 << int(bits))) * int(rng.choice([-1, 1])) for bits in rng.integers(0, width, 300)]
    sigs += [0, 1, -1, (1 << (width - 1)) - 1, -(1 << (width - 1))]
    inputs = [(s, int(e), 0, 0, int(s < 0)) for s, e in zip(sigs, rng.integers(0, 512, len(sigs)), strict=True)]
    got = _rounded_in_sim(fmt, rounding, width, exp_base, [*inputs, (0, 0, 1, 0, 0), (0, 0, 0, 1, 0), (0, 0, 0, 1, 1)])
    saturate = not (fmt.has_inf or fmt.has_nan)
    expected = [int(exact_one.round_to(fmt, rounding=rounding, saturate=saturate)[0]) for exact_one in
                (numerics.ExactResult.from_int64(np.array([s]), e + exp_base) for s, e, *_ in inputs)]  # fmt: skip
    zeros = numerics.ExactResult.from_int64(np.zeros(3, dtype=np.int64), 0)
    specials = numerics.ExactResult(zeros.limbs, zeros.limb_bits, 0, np.array([np.nan, np.inf, -np.inf]))
    expected += [int(c) for c in specials.round_to(fmt, rounding=rounding, saturate=saturate)]
    bad = [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e]
    assert not bad, f"{(inputs + [None] * 3)[bad[0]]}: got {got[bad[0]]:#x}, numerics {expected[bad[0]]:#x}"


def test_float_arrays_lint_clean(tmp_path: Path) -> None:
    for a, options in (("mxfp4", {"dataflow": "os", "pipeline": 1}), ("fp8_e4m3", {"double_buffer": True})):
        array = hw.SystolicArray(a, a, numerics.parse_accumulator("bf16_w6"), rows=2, cols=2, **options)
        path = hw.emit(array, tmp_path / f"{a}.v")
        result = sim.lint(path, "top", hw.LINT_WAIVERS)
        assert result.returncode == 0, result.stderr


def test_a_short_last_mx_block_waits_where_a_row_shares_its_block_adder() -> None:
    """OS MX float arrays share one block adder per PE row; a fold's last block shorter than the
    row (after a full block) would meet the previous block's ends there, so the controller waits
    C - L cycles first, and the cycle model counts them."""
    fp32 = numerics.parse_accumulator("fp32")
    cfg = hw.ArrayConfig.build("mxfp8_e4m3", "mxfp8_e4m3", fp32, rows=3, cols=4, dataflow="os", k_max=256)
    assert cfg.shares_block_adder
    waits = {k: cfg.final_block_wait(k) for k in (1, 3, 32, 33, 34, 35, 36, 64, 65, 97, 100)}
    assert waits == {1: 0, 3: 0, 32: 0, 33: 3, 34: 2, 35: 1, 36: 0, 64: 0, 65: 3, 97: 3, 100: 0}
    plain = hw.ArrayConfig.build("mxfp8_e4m3", "mxfp8_e4m3", ExactAccumulator(), rows=3, cols=4, dataflow="os",
                                 k_max=256)  # fmt: skip
    assert hw.cycles(cfg, 5, 33, 9) == hw.cycles(plain, 5, 33, 9) + hw.folds(cfg, 5, 33, 9) * 3
    assert hw.cycles(cfg, 5, 36, 9) == hw.cycles(plain, 5, 36, 9)
    for other in (plain, hw.ArrayConfig.build("mxfp8_e4m3", "mxfp8_e4m3", fp32, rows=4, cols=4, dataflow="ws"),
                  hw.ArrayConfig.build("mxfp8_e4m3", "mxfp8_e4m3", fp32, rows=2, cols=33, dataflow="os")):  # fmt: skip
        assert not other.shares_block_adder and other.final_block_wait(33) == 0
