# amaranth: UnusedElaboratable=no
"""MAC PEs with float accumulators co-simulated in Verilator against numerics, bit for bit.

Every operand code pair of <= 8-bit formats runs through one stream per design (shuffled, with
clears every few cycles so the running sums stay small and keep meeting rounding ties,
cancellation, the accumulator's subnormals, overflow and NaN/Inf); `corners` reads off numerics'
own running sums what each stream made the accumulator do, so a stream that stops reaching a
corner fails here rather than passing quietly. Expected codes come from numerics.dot only.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim
from numerics import FloatAccumulator

SEGMENT = 16  # k_terms: at most this many products between clears (sim/_mac_stream.py)


def float_pe(a: str, b: str, acc: str, pipeline: int) -> hw.MacPE:
    return hw.MacPE(a, b, numerics.parse_accumulator(acc), k_terms=SEGMENT, pipeline=pipeline)


def corners(pe: hw.MacPE, stream: sim.MacStream) -> dict[str, int]:
    """How many enabled cycles of `stream` add into the accumulator (numerics' running sums):
    a rounding tie, an exact cancellation of a nonzero product, a subnormal result, a finite sum
    overflowing (to Inf, or NaN in a format without Inf), +Inf, -Inf, Inf + -Inf, a NaN product
    (NaN operand or 0 * Inf); `window` counts sums the alignment window changed."""
    accumulator = pe.accumulator
    assert isinstance(accumulator, FloatAccumulator)
    fmt = accumulator.format
    codes, _ = sim.expected_mac(stream, pe.a_format, pe.b_format, accumulator, pe.acc_width)
    after = fmt.decode(np.array(codes, np.uint64))
    before = np.where(stream.clear == 1, 0.0, np.r_[0.0, after[:-1]])  # a clear adds to +0
    on = stream.en == 1
    with np.errstate(invalid="ignore", over="ignore"):
        product = pe.a_format.decode(stream.a) * pe.b_format.decode(stream.b)  # exact: <= 8-bit operands
        total = before + product
        twice = total - before  # TwoSum: total + error is the exact sum
        error = (before - (total - twice)) + (product - twice)
    exact = on & np.isfinite(before) & np.isfinite(product) & np.isfinite(total) & (error == 0)
    nearest, away = (fmt.decode(fmt.encode(total, rounding=r)) for r in ("nearest_even", "nearest_away"))
    full_alignment = accumulator.window is None
    return {
        "tie": int(np.count_nonzero(exact & (nearest != away) & np.isfinite(away))) if full_alignment else 0,
        "cancellation": int(np.count_nonzero(on & (product != 0) & np.isfinite(product) & (total == 0))),
        "subnormal": int(np.count_nonzero(on & (after != 0) & (np.abs(after) < fmt.min_normal))),
        "overflow": int(np.count_nonzero(on & np.isfinite(before) & np.isfinite(product) & ~np.isfinite(after))),
        "+inf": int(np.count_nonzero(on & (after == np.inf))),
        "-inf": int(np.count_nonzero(on & (after == -np.inf))),
        "inf - inf": int(np.count_nonzero(on & np.isinf(before) & np.isinf(product) & (before != product))),
        "nan product": int(np.count_nonzero(on & np.isnan(product))),
        "window": 0 if full_alignment else int(np.count_nonzero(exact & (np.array(codes) != fmt.encode(total)))),
    }


def cosim(pe: hw.MacPE, stream: sim.MacStream, build_root: Path, work: Path) -> None:
    report = sim.check_mac(pe, stream, build_root, work)
    assert report.passed, f"{report.format_pair}: {report.mismatches} mismatches; first at {report.first_mismatch}"
    assert report.checked == len(stream)


def test_fp16_accumulator_over_every_e5m2_pair(build_root: Path, tmp_path: Path) -> None:
    """The representative fast case: e5m2 products reach below fp16's subnormals (2**-32 <
    2**-24) and beyond its range (57344**2 > 65504), and e5m2 has +-Inf and NaN codes."""
    pe = float_pe("fp8_e5m2", "fp8_e5m2", "fp16", pipeline=1)
    stream = sim.operand_stream(pe, exhaustive=True, random_pairs=0)
    assert stream.macs >= 1 << 16
    met = corners(pe, stream)
    assert all(met[c] > 0 for c in ("tie", "cancellation", "subnormal", "overflow", "+inf", "-inf", "inf - inf",
                                    "nan product")), met  # fmt: skip
    cosim(pe, stream, build_root, tmp_path)


def test_targeted_specials_and_zeros(build_root: Path, tmp_path: Path) -> None:
    """Hand-placed: overflow to +Inf, then + -Inf = NaN that stays; -Inf plus a finite product;
    a NaN operand on a disabled cycle (ignored) and on an enabled one; an exact cancellation and
    a negative product below fp16's subnormals, both +0; a clear on a disabled cycle; subnormal
    sums. The expected codes (from numerics) are spelled out as a cross-check of the stream."""
    pe = float_pe("fp8_e5m2", "fp8_e5m2", "fp16", pipeline=1)
    e5m2 = pe.a_format
    values = (256.0, -256.0, 1.0, -1.0, 3.0, 2.0**-16, -(2.0**-16), 2.0**-12, -np.inf, np.nan, 0.0)
    code = dict(zip(values[:-2], e5m2.encode(np.array(values[:-2])).tolist(), strict=True))
    nan, zero = 0x7E, 0x00
    rows = [  # (a, b, en, clear)
        (code[256.0], code[256.0], 1, 1), (code[-np.inf], code[1.0], 1, 0), (code[1.0], code[1.0], 1, 0),
        (code[-256.0], code[256.0], 1, 1), (code[256.0], code[-1.0], 1, 0),
        (code[3.0], code[1.0], 1, 1), (nan, code[1.0], 0, 0), (code[-1.0], code[3.0], 1, 0),
        (code[1.0], code[1.0], 0, 1), (code[1.0], nan, 1, 0), (code[1.0], code[1.0], 1, 0),
        (code[2.0**-16], code[-(2.0**-16)], 1, 1), (code[2.0**-12], code[2.0**-12], 1, 0),
        (code[2.0**-12], code[2.0**-12], 1, 0), (zero, code[-1.0], 1, 0),
    ]  # fmt: skip
    stream = sim.MacStream(*(np.array(column) for column in zip(*rows, strict=True)))
    codes, flags = sim.expected_mac(stream, e5m2, e5m2, pe.accumulator, pe.acc_width)
    assert [f"{c:#06x}" for c in codes] == ["0x7c00", "0x7e00", "0x7e00", "0xfc00", "0xfc00", "0x4200", "0x4200",
                                            "0x0000", "0x0000", "0x7e00", "0x7e00", "0x0000", "0x0001", "0x0002",
                                            "0x0002"]  # fmt: skip
    assert flags[0] == (False, True, False) and flags[1] == (True, False, False) and flags[3] == (False, False, True)
    cosim(pe, stream, build_root, tmp_path)


def test_the_check_tells_roundings_apart(build_root: Path, tmp_path: Path) -> None:
    """The same nearest-even hardware against a toward-zero golden model must fail: the check
    compares codes, not values within a tolerance."""
    pe = float_pe("fp8_e5m2", "fp8_e5m2", "fp16", pipeline=1)
    stream = sim.operand_stream(pe, exhaustive=False, random_pairs=2000, seed=3)
    toward_zero = FloatAccumulator(numerics.get("fp16"), rounding="toward_zero")
    report = sim.check_mac(pe, stream, build_root, tmp_path, golden=toward_zero)
    assert not report.passed and report.mismatches > 0
    assert report.first_mismatch is not None and report.first_mismatch.endswith("(fp16_rz codes)")


# (a, b, accumulator, pipeline, the corners its exhaustive stream must reach)
EXHAUSTIVE = [
    pytest.param("fp8_e4m3", "fp8_e4m3", "fp32", 2, ("tie", "cancellation", "nan product"), id="e4m3-fp32-p2"),
    pytest.param("fp8_e5m2", "fp8_e5m2", "fp32_w14", 0,
                 ("window", "cancellation", "+inf", "-inf", "inf - inf", "nan product"), id="e5m2-fp32_w14-p0"),
    pytest.param("int8", "int8", "fp16_w8r", 1, ("window", "cancellation", "overflow", "+inf", "-inf"),
                 id="int8-fp16_w8r-p1"),
    pytest.param("fp8_e5m2", "fp8_e4m3", "bf16_rz", 2, ("cancellation", "+inf", "-inf", "inf - inf", "nan product"),
                 id="e5m2xe4m3-bf16_rz-p2"),
    pytest.param("fp8_e4m3", "fp4_e2m1", "fp8_e4m3", 0, ("tie", "cancellation", "subnormal", "overflow",
                                                         "nan product"), id="e4m3xe2m1-e4m3-p0"),
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("a", "b", "acc", "pipeline", "reached"), EXHAUSTIVE)
def test_float_accumulators_over_every_operand_pair(a: str, b: str, acc: str, pipeline: int, reached: tuple[str, ...],
                                                    build_root: Path, tmp_path: Path) -> None:  # fmt: skip
    """fp32 (pipeline 2), a truncating 14-bit window (DeepSeek-V3's FP8 alignment, pipeline 0),
    a rounded 8-bit window with int8 overflowing fp16, bf16 toward zero, and an 8-bit
    accumulator without Inf (overflow is NaN) that its products' subnormals reach."""
    pe = float_pe(a, b, acc, pipeline)
    stream = sim.operand_stream(pe, exhaustive=True, random_pairs=0)
    met = corners(pe, stream)
    assert all(met[c] > 0 for c in reached), met
    cosim(pe, stream, build_root, tmp_path)
