# amaranth: UnusedElaboratable=no
"""The output rounder (hw.OutputRounder) in Verilator over every rounding boundary of every <= 8-bit
format it rounds to: each value, each tie and one accumulator lsb either side of it, the overflow
ties and beyond, the smallest subnormals and zero, the accumulator's extremes, negative mirrors and
the NaN/Inf flags. The expected codes are numerics' encode of each exact accumulator value.

One Verilator build per test: a bank of rounders (each format at the accumulator widths the MACs
generate, a fine one, the other overflow policy) plays every value at Verilator speed.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import numerics
import sim
from sim._round_check import accumulator_values, exact_float

# One of each path through hw/_round.py: Inf (e5m2), NaN-only overflow (e4m3), no negative zero
# (fnuz), saturating without specials (fp4), integers (saturating, wrapping, shifted left), posits
# with and without exponent bits. None: the MACs of the format and of int8; posit8_2's own MAC
# register (108 bits) takes long to convert, so it is in the slow set.
REPRESENTATIVE = {"fp8_e4m3": None, "fp8_e5m2": None, "fp8_e4m3fnuz": None, "fp4_e2m1": None, "int8": None,
                  "posit8_0": None, "posit8_2": ("int8",)}  # fmt: skip
# Posits beyond the registered ones, n <= 8: every es <= 2 (the 2022 standard and SoftPosit's
# conventions), and es 3-4 where the rounder converts in seconds (the wider ones take minutes).
SMALL_POSITS = [numerics.Posit(n, es) for n in range(2, 9) for es in range(5) if es <= 2 or n <= 4 or (n, es) == (8, 3)]


def check(lanes: list[sim.RounderLane], build_root: Path, work: Path) -> None:
    report = sim.cosim_rounders(lanes, build_root, work)
    assert report.passed, f"{report.mismatches} mismatches; first: {report.first_mismatch}"
    assert min(report.counts) > 300, dict(zip(report.lanes, report.counts, strict=True))


def test_representative_formats(build_root: Path, tmp_path: Path) -> None:
    lanes = [lane for name, macs in REPRESENTATIVE.items() for lane in sim.rounder_lanes(numerics.get(name), macs)]
    check(lanes, build_root, tmp_path)


@pytest.mark.slow
def test_every_registered_format(build_root: Path, tmp_path: Path) -> None:
    formats = [f for f in sim.rounder_formats() if REPRESENTATIVE.get(f.name, ()) is not None]
    names = {f.name for f in formats}
    assert {"int2", "uint8", "ternary", "int8_narrow", "fp6_e2m3", "fp8_e4m3_ieee", "posit8_1", "posit8_2"} <= names
    done = sim.rounder_lanes(numerics.get("posit8_2"), REPRESENTATIVE["posit8_2"])
    lanes = [lane for fmt in formats for lane in sim.rounder_lanes(fmt) if lane not in done]  # posit8_2: its own MAC
    check(lanes, build_root, tmp_path)


@pytest.mark.slow
def test_other_small_posits(build_root: Path, tmp_path: Path) -> None:
    posits = [p for p in SMALL_POSITS if p not in sim.rounder_formats()]
    check([lane for p in posits for lane in sim.rounder_lanes(p, macs=())], build_root, tmp_path)


@pytest.mark.parametrize(
    ("name", "ties"),
    [
        ("fp8_e4m3", [464, Fraction(1, 2**10), Fraction(-3, 2**10)]),  # the overflow tie; subnormal ties
        ("fp8_e5m2", [61440, Fraction(1, 2**17)]),
        ("fp4_e2m1", [5, Fraction(1, 4), -7]),
        ("int8", [Fraction(255, 2), Fraction(-257, 2), Fraction(1, 2)]),
        ("posit8_2", [2**22, Fraction(1, 2**22), -(2**18)]),  # geometric ties in the regime and exponent
    ],
)
def test_values_cover_every_tie_and_extreme(name: str, ties: list[Fraction | int]) -> None:
    """The stimulus itself: zero, the register's extremes, each tie with one lsb either side (in
    every lane fine enough for it; the finest lane is)."""
    covered = set()
    for lane in sim.rounder_lanes(numerics.get(name)):
        values = set(accumulator_values(lane, np.random.default_rng(0), random_count=0))
        low = -(1 << (lane.acc_width - 1))
        assert {0, 1, -1, low, -low - 1} <= values, lane.describe()
        for tie in map(Fraction, ties):
            u = tie / Fraction(2) ** lane.lsb_exponent
            if u.denominator == 1 and u.numerator % 2 == 0 and abs(u) < -low:
                assert {u - 1, u, u + 1} <= values, (lane.describe(), tie)
                covered.add(tie)
    assert covered == set(map(Fraction, ties))


def test_exact_float_rounds_to_odd() -> None:
    """Accumulators wider than 53 bits reach numerics as a float64 that rounds like them."""
    assert exact_float((1 << 60) + 1, -3) == 2.0**57 + 32  # the sticky bit lands in the last place
    assert exact_float(-((1 << 60) + (1 << 8)), 0) == -(2.0**60 + 2.0**8)  # exact: 53 bits suffice
    assert exact_float(12345, -10) == 12345 / 1024
