# amaranth: UnusedElaboratable=no
"""Float accumulators in both systolic dataflows, in Verilator, bit for bit against numerics.

Each dataflow realises one order of `numerics.FloatAccumulator` (`ArrayConfig.numerics_accumulator`):
output-stationary PEs add every product ("sequential"; MX: every rounded block, "blocked" by the
block size), weight-stationary columns round each fold's exact sum of R rows ("blocked", block =
R). Every design runs ragged random GEMMs, the all-maximal GEMM, exact cancellation to 0,
overflow to +-Inf, subnormal results and NaN (a NaN operand code; MX: a 0xFF block scale), and
the results must span those cases. A golden model with another order or rounding must fail.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim

from .test_systolic_cosim import extreme_operands

OS, WS, WS_DB = {"dataflow": "os"}, {"dataflow": "ws"}, {"dataflow": "ws", "double_buffer": True}
E4M3 = "fp8_e4m3"

# (operand format, accumulator, rows, cols, options, result kinds the GEMMs must reach)
EVERY_KIND = {"zero", "subnormal", "normal", "inf", "nan"}
NO_SUBNORMAL = EVERY_KIND - {"subnormal", "inf"}  # e4m3 / int8 products cannot reach fp32/bf16 extremes
CASES = [
    (E4M3, "fp32", 3, 4, {**OS, "pipeline": 1}, NO_SUBNORMAL),
    (E4M3, "fp16", 2, 2, {**WS_DB, "pipeline": 1}, EVERY_KIND),
    (E4M3, "fp16", 2, 2, {**OS}, EVERY_KIND),
    (E4M3, "bf16", 2, 2, {**OS, "pipeline": 2}, NO_SUBNORMAL),
    (E4M3, "bf16_rz", 3, 4, {**WS}, NO_SUBNORMAL),
    (E4M3, "fp32_w14", 2, 2, {**OS}, NO_SUBNORMAL),
    (E4M3, "fp32_w14", 2, 2, {**WS}, NO_SUBNORMAL),
    ("int8", "fp32", 2, 2, {**OS}, NO_SUBNORMAL - {"nan"}),
    ("mxfp8_e4m3", "fp32", 2, 2, {**OS, "pipeline": 1}, EVERY_KIND),
    ("mxfp8_e4m3", "fp32", 4, 4, {**WS_DB}, EVERY_KIND),
    ("mxfp4", "fp32", 3, 4, {**OS}, EVERY_KIND),
    ("mxfp4", "fp32", 2, 2, {**WS, "pipeline": 2}, EVERY_KIND),
]
# blocks of 4 (E4M3 elements, E8M0 scales): a 2x4 OS row shares one block adder with block ends
# only 4 beats apart; 2x8 rows are wider than a block, so every PE has its own
MX4 = numerics.BlockFormat(numerics.get(E4M3), 4, numerics.get("e8m0"))
CASES += [
    (MX4, "fp32", 2, 4, {**OS}, EVERY_KIND),
    (MX4, "bf16", 2, 8, {**OS, "pipeline": 1}, EVERY_KIND),
]
FAST = {0, 9}  # the quick loop's designs: one per dataflow


def _id(case: tuple) -> str:
    fmt, acc, rows, cols, options, _ = case
    extras = "-db" if options.get("double_buffer") else ""
    fmt = getattr(fmt, "name", fmt)
    return f"{fmt}-{acc}-{rows}x{cols}-{options['dataflow']}{extras}-p{options.get('pipeline', 0)}"


def _array(case: tuple) -> hw.SystolicArray:
    fmt, acc, rows, cols, options, _ = case
    return hw.SystolicArray(fmt, fmt, numerics.parse_accumulator(acc), rows=rows, cols=cols, k_max=128, m_max=64,
                            **options)  # fmt: skip


def _finite_codes(fmt: numerics.ElementFormat) -> np.ndarray:
    """The codes of finite values whose negation is a code too (not int8's -128)."""
    codes = np.arange(1 << fmt.bits)
    values = fmt.decode(codes)
    finite = np.isfinite(values)
    return codes[finite & (fmt.decode(fmt.encode(-np.where(finite, values, 0))) == -values)]


def _negate(fmt: numerics.ElementFormat, codes: np.ndarray) -> np.ndarray:
    return fmt.encode(-fmt.decode(codes))


def element_gemms(cfg: hw.ArrayConfig, rng: np.random.Generator) -> list[tuple[str, object, object]]:
    """(name, A codes, B codes) for element formats."""
    fmt = cfg.a_format
    finite = _finite_codes(fmt)
    values = fmt.decode(finite)
    top = finite[np.argsort(np.abs(values))[-4:]]
    tiny = finite[(values != 0) & (np.abs(values) <= 2 * np.min(np.abs(values[values != 0])))]
    gemms: list[tuple[str, object, object]] = []
    for m, k, n in [(5, 7, 6), (3, 30, 5)]:
        gemms.append((f"random{m}x{k}x{n}", rng.choice(finite, (m, k)), rng.choice(finite, (k, n))))
    if getattr(fmt, "has_nan", False):  # a NaN code in one row of A and one column of B
        gemms[0][1][1, 3] = gemms[0][2][2, 2] = fmt.encode(np.array(np.nan))
    # x, -x, y, -y, ... against all ones: every order cancels to exactly 0; then a big term
    # beside small ones (the small ones vanish or not, depending on order and rounding)
    half = rng.choice(finite, (4, 6))
    pairs = np.stack([half, _negate(fmt, half)], axis=-1).reshape(4, 12)
    ones = np.full((12, 3), fmt.encode(np.array(1.0)))
    gemms.append(("cancellation", pairs, ones))
    big = np.concatenate([rng.choice(top, (4, 1)), rng.choice(finite, (4, 10)), _negate(fmt, rng.choice(top, (4, 1)))],
                         axis=1)  # fmt: skip
    gemms.append(("big-small-big", big, rng.choice(finite, (12, 3))))
    # the largest products, of both signs (fp16 overflows to +-Inf), and the smallest (subnormal in fp16)
    signs = np.where(rng.random((4, 9)) < 0.5, top[-1], _negate(fmt, top[-1:])[0])
    gemms.append(("overflow", signs, np.full((9, 5), top[-1])))
    gemms.append(("tiny", rng.choice(tiny, (3, 2)), rng.choice(tiny, (2, 4))))
    gemms.append(("extremes", *extreme_operands(cfg)))
    return gemms


def mx_gemms(cfg: hw.ArrayConfig, rng: np.random.Generator) -> list[tuple[str, object, object]]:
    """(name, A, B) MX encodings: random, cancelling blocks, 2**127 and 2**-127 scales, NaN scales."""
    block = cfg.block
    assert block is not None

    def encode(a: np.ndarray, b: np.ndarray) -> tuple[object, object]:
        return block.encode(a, axis=-1), block.encode(b, axis=0)

    gemms: list[tuple[str, object, object]] = []
    for m, k, n in [(5, 70, 3), (4, 33, 6)]:
        a = rng.normal(size=(m, k)) * np.exp2(rng.integers(-20, 20, (m, 1)))
        b = rng.normal(size=(k, n)) * np.exp2(rng.integers(-20, 20, (1, n)))
        gemms.append((f"random{m}x{k}x{n}", *encode(a, b)))
    x = rng.normal(size=(4, 32))
    enc_a, enc_b = encode(np.concatenate([x, -x], axis=1), rng.normal(size=(64, 3)))
    enc_b.elements[...] = block.element.encode(np.array(1.0))  # both blocks of a column equal: each row cancels
    enc_b.scales[...] = 127
    gemms.append(("cancellation", enc_a, enc_b))
    # scales (A rows x B columns; B's scales are (columns, blocks)): 2**127 x 2**127 and x 2**0 are
    # beyond fp32 (+-Inf); 2**-127 x 2**-23 puts block sums of <= 2**18 among fp32's subnormals
    a, b = rng.normal(size=(5, 64)), rng.normal(size=(64, 4))
    a[0], b[:, 0] = np.abs(a[0]), -np.abs(b[:, 0])  # every fold of C[0, 0] negative: -Inf, not Inf - Inf
    enc_a, enc_b = encode(a, b)
    enc_a.scales[...], enc_b.scales[...] = 127, 127
    enc_a.scales[0], enc_b.scales[0] = 254, 254
    enc_a.scales[1], enc_b.scales[1] = 0, 104
    enc_a.scales[2, 1] = 0xFF  # a NaN block in A, and one in B
    enc_b.scales[3, 0] = 0xFF
    gemms.append(("scales", enc_a, enc_b))
    a_codes, b_codes = extreme_operands(cfg)  # every block sum at an end of its register's range
    enc_a, enc_b = encode(np.ones(a_codes.shape), np.ones(b_codes.shape))
    enc_a.elements[...] = a_codes.reshape(enc_a.elements.shape)
    enc_b.elements[...] = b_codes.T.reshape(enc_b.elements.shape)
    enc_a.scales[...], enc_b.scales[...] = 254, 127 - 64
    gemms.append(("extremes", enc_a, enc_b))
    return gemms


def kinds(fmt: numerics.Minifloat, codes: np.ndarray) -> set[str]:
    values = fmt.decode(np.asarray(codes, dtype=np.uint64))
    found = {"nan": np.isnan(values).any(), "inf": np.isinf(values).any(), "zero": (values == 0).any(),
             "subnormal": ((values != 0) & (np.abs(values) < fmt.min_normal)).any(),
             "normal": (np.abs(values) >= fmt.min_normal).any()}  # fmt: skip
    return {kind for kind, present in found.items() if present}


def _run(case: tuple, build_root: Path, work: Path) -> set[str]:
    array = _array(case)
    cfg = array.config
    rng = np.random.default_rng(cfg.rows * 10 + cfg.cols)
    gemms = mx_gemms(cfg, rng) if cfg.block is not None else element_gemms(cfg, rng)
    reached: set[str] = set()
    for name, a, b in gemms:
        report = sim.cosim_gemm(array, a, b, build_root, work / name)
        assert report.passed, f"{name}: {report.failure()}"
        reached |= kinds(cfg.float_format, report.result)  # type: ignore[arg-type]
    return reached


@pytest.mark.parametrize(
    "case",
    [c if i in FAST else pytest.param(c, marks=pytest.mark.slow) for i, c in enumerate(CASES)],
    ids=[_id(c) for c in CASES],
)  # fmt: skip
def test_float_gemms_are_bit_exact_and_cycle_exact(case: tuple, build_root: Path, tmp_path: Path) -> None:
    reached = _run(case, build_root, tmp_path)
    assert reached >= case[5], f"the GEMMs reached only {sorted(reached)}"


def test_plain_float_accumulators_map_to_the_dataflows_order() -> None:
    fp32 = numerics.parse_accumulator("fp32")
    assert _array(CASES[0]).config.numerics_accumulator == fp32
    assert _array(CASES[9]).config.numerics_accumulator == fp32.with_order("blocked", 4)
    assert _array(CASES[8]).config.numerics_accumulator == fp32.with_order("blocked", 32)


@pytest.mark.slow
def test_a_golden_model_with_another_order_or_rounding_fails(build_root: Path, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """The check can fail: the fp16 weight-stationary design against numerics adding every product
    in k order, and against rounding toward zero, must mismatch, reported with float values."""
    array = _array(CASES[1])
    cfg = array.config
    rng = np.random.default_rng(5)
    finite = _finite_codes(cfg.a_format)
    a, b = rng.choice(finite, (6, 24)), rng.choice(finite, (24, 4))
    assert sim.cosim_gemm(array, a, b, build_root, tmp_path / "right").passed
    expected = sim.expected_gemm
    right = cfg.accumulator
    assert isinstance(right, numerics.FloatAccumulator)
    for wrong in (right.with_order("sequential"), replace(right, rounding="toward_zero")):
        monkeypatch.setattr("sim._gemm.expected_gemm",
                            lambda c, x, y, w=wrong: expected(replace(c, accumulator=w), x, y))  # fmt: skip
        report = sim.cosim_gemm(array, a, b, build_root, tmp_path / f"wrong-{wrong.order}-{wrong.rounding}")
        assert report.mismatches > 0, wrong
        assert report.first_mismatch is not None and "(fp16 code 0x" in report.first_mismatch


def test_float_array_stalls_change_no_result(build_root: Path, tmp_path: Path) -> None:
    """Backpressure and producer gaps on a float design (the fast weight-stationary one)."""
    array = _array(CASES[9])
    rng = np.random.default_rng(9)
    a, b = mx_gemms(array.config, rng)[0][1:]
    report = sim.cosim_gemm(array, a, b, build_root, tmp_path, stall_every=3, gaps=(4, 5))
    assert report.mismatches == 0, report.first_mismatch
