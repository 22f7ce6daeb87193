"""Exact dot products and accumulators against exact Python integer / Fraction arithmetic."""

from __future__ import annotations

import re
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numerics
from numerics import ExactAccumulator, FixedAccumulator, FloatAccumulator, QuireAccumulator, Rounding

from .reference import as_fraction, round_to_grid

PAIRS = [
    ("int8", "int8"),
    ("int4", "uint4"),
    ("fp8_e4m3", "fp8_e4m3"),
    ("fp8_e5m2", "fp8_e5m2"),
    ("fp16", "fp16"),
    ("bf16", "bf16"),
    ("posit16_2", "posit16_2"),
    ("int8", "fp8_e4m3"),
    ("fp4_e2m1", "fp6_e2m3"),
    ("posit8_2", "posit8_2"),
    ("fp32", "fp32"),
    ("posit32_2", "posit32_2"),
]


def random_codes(name: str, shape: tuple[int, ...], rng: np.random.Generator, finite: bool = True) -> np.ndarray:
    fmt = numerics.get(name)
    codes = rng.integers(0, 1 << fmt.bits, size=shape, dtype=np.uint64).astype(fmt.code_dtype)
    if finite:
        bad = ~np.isfinite(fmt.decode(codes))
        codes[bad] = 0
    return codes


def fraction_matmul(a: np.ndarray, b: np.ndarray, a_name: str, b_name: str) -> list[list[Fraction]]:
    av = np.array(as_fraction(numerics.get(a_name).decode(a)), dtype=object).reshape(a.shape)
    bv = np.array(as_fraction(numerics.get(b_name).decode(b)), dtype=object).reshape(b.shape)
    return [
        [sum((av[i, k] * bv[k, j] for k in range(a.shape[1])), Fraction(0)) for j in range(b.shape[1])]
        for i in range(a.shape[0])
    ]


@pytest.mark.parametrize(("a_name", "b_name"), PAIRS)
def test_exact_matmul_equals_fraction_arithmetic(a_name: str, b_name: str) -> None:
    rng = np.random.default_rng(len(a_name) * 7 + len(b_name))
    a = random_codes(a_name, (5, 33), rng)
    b = random_codes(b_name, (33, 4), rng)
    result = numerics.matmul(a, b, a_name, b_name)
    expected = fraction_matmul(a, b, a_name, b_name)
    assert result.to_fractions().tolist() == expected
    np.testing.assert_array_equal(result.to_float64(), [[float(v) for v in row] for row in expected])


def test_exact_sums_beyond_64_bits_do_not_cancel_wrongly() -> None:
    fp32 = numerics.get("fp32")
    a = fp32.encode(np.array([[3.0e38, 1.0e-45, -3.0e38, 2.0**-149]], dtype=np.float32))
    b = fp32.encode(np.array([[3.0e38], [1.0], [3.0e38], [1.0]], dtype=np.float32))
    result = numerics.matmul(a, b, fp32, fp32)
    assert result.to_fractions()[0, 0] == 2 * Fraction(2) ** -149


@pytest.mark.parametrize("out", ["fp16", "bf16", "fp8_e4m3", "posit16_2", "int16"])
def test_output_rounding_is_one_correct_rounding_of_the_exact_sum(out: str) -> None:
    rng = np.random.default_rng(5)
    a = random_codes("fp8_e4m3", (6, 40), rng)
    b = random_codes("fp8_e4m3", (40, 5), rng)
    exact = fraction_matmul(a, b, "fp8_e4m3", "fp8_e4m3")
    fmt = numerics.get(out)
    values = fmt.values()
    grid = as_fraction(values)
    codes_of = {
        float(v): int(c) for c, v in zip(np.arange(1 << fmt.bits), fmt.decode(np.arange(1 << fmt.bits)), strict=True)
    }
    even = [codes_of[float(v)] % 2 == 0 for v in values]
    got = fmt.decode(numerics.matmul(a, b, "fp8_e4m3", "fp8_e4m3", out_format=out, saturate=True))
    for i, row in enumerate(exact):
        for j, value in enumerate(row):
            clamped = min(max(value, grid[0]), grid[-1])
            assert got[i, j] == grid[round_to_grid(clamped, grid, even, Rounding.NEAREST_EVEN)]


def test_dot_broadcasts_leading_axes_and_handles_specials() -> None:
    f = numerics.get("fp8_e5m2")
    rows = [[1.0, 2.0, 3.0], [np.inf, 1.0, 5.0], [1.0, 0.0, np.inf], [np.inf, np.inf, 0.0], [np.nan, 1.0, 1.0]]
    a = f.encode(np.array(rows))
    b = f.encode(np.array([[2.0, -1.0, 0.0]]))
    out = numerics.dot(a, b, f, f).to_float64()
    assert out.shape == (5,)
    assert out[0] == 0.0 and out[1] == np.inf  # finite sum; Inf * 2
    assert np.isnan(out[2]) and np.isnan(out[3]) and np.isnan(out[4])  # Inf * 0; Inf - Inf; NaN


def test_fixed_width_wrap_and_saturate_against_python_integers() -> None:
    rng = np.random.default_rng(6)
    a = random_codes("int8", (7, 50), rng)
    b = random_codes("int8", (50, 3), rng)
    ai, bi = numerics.get("int8").lower(a)[0], numerics.get("int8").lower(b)[0]
    wrapped = numerics.matmul(a, b, "int8", "int8", FixedAccumulator(12)).integers()
    saturated = numerics.matmul(a, b, "int8", "int8", FixedAccumulator(16, overflow="saturate")).integers()
    for i in range(7):
        for j in range(3):
            total = sum(int(ai[i, k]) * int(bi[k, j]) for k in range(50))
            assert wrapped[i, j] == ((total + 2048) % 4096) - 2048
            acc = 0
            for k in range(50):
                acc = min(max(acc + int(ai[i, k]) * int(bi[k, j]), -(2**15)), 2**15 - 1)
            assert saturated[i, j] == acc


def test_fixed_accumulator_with_a_coarser_lsb_truncates_each_product() -> None:
    f = numerics.get("fp8_e4m3")
    a = f.encode(np.array([[1.125, -1.125, 0.0078125]]))
    b = f.encode(np.array([[1.125], [1.0], [1.0]]))
    # products 1.265625, -1.125, 2**-7 at lsb 2**-2: floor to 1.25, -1.25, 0 -> 0.0
    result = numerics.matmul(a, b, f, f, FixedAccumulator(16, lsb_exponent=-2))
    assert result.to_float64()[0, 0] == 0.0


def test_fixed_accumulator_equals_exact_when_wide_enough() -> None:
    rng = np.random.default_rng(7)
    a = random_codes("fp8_e4m3", (4, 64), rng)
    b = random_codes("fp8_e4m3", (64, 4), rng)
    width = numerics.exact_width(numerics.get("fp8_e4m3"), numerics.get("fp8_e4m3"), 64)
    exact = numerics.matmul(a, b, "fp8_e4m3", "fp8_e4m3")
    fixed = numerics.matmul(a, b, "fp8_e4m3", "fp8_e4m3", FixedAccumulator(width, overflow="saturate"))
    np.testing.assert_array_equal(exact.to_float64(), fixed.to_float64())


@pytest.mark.parametrize(
    ("a_name", "b_name", "k_terms"),
    [
        ("int8", "int8", 1),
        ("int8", "int8", 1000),
        ("fp4_e2m1", "fp4_e2m1", 3),
        ("uint4", "int4", 5),
        ("fp8_e4m3", "fp8_e4m3", 16),
        ("posit8_2", "posit8_2", 2),
    ],
)
def test_exact_width_is_the_tightest_register(a_name: str, b_name: str, k_terms: int) -> None:
    a_fmt, b_fmt = numerics.get(a_name), numerics.get(b_name)
    width = numerics.exact_width(a_fmt, b_fmt, k_terms)
    a_vals, b_vals = a_fmt.values(), b_fmt.values()
    extremes = [x * y for x in (a_vals[0], a_vals[-1]) for y in (b_vals[0], b_vals[-1])]
    unit = Fraction(2) ** (a_fmt.lsb_exponent + b_fmt.lsb_exponent)
    sums = [int(Fraction(float(e)) * k_terms / unit) for e in extremes]
    assert all(-(2 ** (width - 1)) <= s < 2 ** (width - 1) for s in sums)
    assert not all(-(2 ** (width - 2)) <= s < 2 ** (width - 2) for s in sums)
    assert numerics.exact_width(numerics.get("int8"), numerics.get("int8"), 1) == 16


def test_quire_is_exact_and_overflows_to_nar() -> None:
    p8 = numerics.get("posit8_2")
    rng = np.random.default_rng(8)
    a, b = random_codes("posit8_2", (3, 20), rng), random_codes("posit8_2", (20, 2), rng)
    quire = numerics.matmul(a, b, p8, p8, QuireAccumulator(p8))
    assert quire.to_fractions().tolist() == fraction_matmul(a, b, "posit8_2", "posit8_2")
    p = numerics.Posit(8, 0)
    assert QuireAccumulator(p).width == 44
    big = p.encode(np.full(2**19, 64.0))
    assert np.isnan(numerics.dot(big, big, p, p, QuireAccumulator(p)).to_float64())
    assert numerics.dot(big[: 2**18], big[: 2**18], p, p, QuireAccumulator(p)).to_float64() == 2.0**30


def float_reference(products: list[Fraction], fmt: numerics.Minifloat, pairwise: bool) -> Fraction:
    values = fmt.values()
    grid = as_fraction(values)
    codes = fmt.encode(values)
    even = [int(c) % 2 == 0 for c in codes]

    def rnd(x: Fraction) -> Fraction:
        return grid[round_to_grid(x, grid, even, Rounding.NEAREST_EVEN)]

    if not pairwise:
        acc = Fraction(0)
        for p in products:
            acc = rnd(acc + p)
        return acc
    level = [rnd(p) for p in products]
    while len(level) > 1:
        pairs = [rnd(level[i] + level[i + 1]) for i in range(0, len(level) - 1, 2)]
        level = pairs + ([level[-1]] if len(level) % 2 else [])
    return level[0]


@pytest.mark.parametrize("order", ["sequential", "pairwise"])
@pytest.mark.parametrize("acc_name", ["fp16", "bf16", "fp8_e5m2"])
def test_float_accumulator_rounds_once_per_addition(acc_name: str, order: str) -> None:
    rng = np.random.default_rng(9)
    e4m3 = numerics.get("fp8_e4m3")
    a = e4m3.encode(rng.standard_normal((3, 37)) * 4)  # sums stay inside every accumulator's range
    b = e4m3.encode(rng.standard_normal((37, 2)) * np.exp2(rng.integers(-12, 3, (37, 2))))
    acc_fmt = numerics.get(acc_name)
    assert isinstance(acc_fmt, numerics.Minifloat)
    got = numerics.matmul(a, b, "fp8_e4m3", "fp8_e4m3", FloatAccumulator(acc_fmt, order)).to_float64()
    av = as_fraction(numerics.get("fp8_e4m3").decode(a))
    bv = as_fraction(numerics.get("fp8_e4m3").decode(b))
    for i in range(3):
        for j in range(2):
            products = [av[i * 37 + k] * bv[k * 2 + j] for k in range(37)]
            assert got[i, j] == float_reference(products, acc_fmt, order == "pairwise")


def test_float_accumulator_overflows_to_infinity() -> None:
    f = numerics.get("fp8_e5m2")
    a = f.encode(np.full((1, 4), 57344.0))
    out = numerics.matmul(a, a.T, f, f, FloatAccumulator(numerics.get("fp16"))).to_float64()  # type: ignore[arg-type]
    assert out[0, 0] == np.inf


@settings(max_examples=60, deadline=None)
@given(
    pair=st.sampled_from(PAIRS),
    k_terms=st.integers(1, 40),
    seed=st.integers(0, 2**32 - 1),
)
def test_dot_with_the_exact_accumulator_equals_fractions(pair: tuple[str, str], k_terms: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = random_codes(pair[0], (k_terms,), rng)
    b = random_codes(pair[1], (k_terms,), rng)
    got = numerics.dot(a, b, *pair).to_fractions()
    av, bv = as_fraction(numerics.get(pair[0]).decode(a)), as_fraction(numerics.get(pair[1]).decode(b))
    assert got == sum((x * y for x, y in zip(av, bv, strict=True)), Fraction(0))


def test_shape_and_format_errors() -> None:
    with pytest.raises(
        ValueError, match=r"^matmul: a has shape \(2, 3\) and b has shape \(4, 2\): inner dimensions 3 and 4 differ$"
    ):
        numerics.matmul(np.zeros((2, 3), np.uint8), np.zeros((4, 2), np.uint8), "int8", "int8")
    with pytest.raises(ValueError, match=r"^dot: a has shape \(3,\) and b has shape \(4,\); the last axes must match$"):
        numerics.dot(np.zeros(3, np.uint8), np.zeros(4, np.uint8), "int8", "int8")
    with pytest.raises(
        ValueError,
        match=re.escape(
            "FloatAccumulator needs products exact in float64: posit32_2 x posit32_2 has 56 significand bits (> 53)"
        ),
    ):
        numerics.matmul(
            np.zeros((1, 1), np.uint32),
            np.zeros((1, 1), np.uint32),
            "posit32_2",
            "posit32_2",
            FloatAccumulator(numerics.get("fp16")),
        )  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^the quire of posit8_2 accumulates posit8_2 products, got posit16_2$"):
        numerics.dot(
            np.zeros(1, np.uint8),
            np.zeros(1, np.uint16),
            "posit8_2",
            "posit16_2",
            QuireAccumulator(numerics.get("posit8_2")),
        )  # type: ignore[arg-type]
    with pytest.raises(
        ValueError, match=r"^a fixed-point accumulator cannot take Inf/NaN operands \(fp8_e5m2 codes hold some\)$"
    ):
        numerics.dot(
            np.array([0x7C], np.uint8), np.array([0x3C], np.uint8), "fp8_e5m2", "fp8_e5m2", FixedAccumulator(32)
        )
    with pytest.raises(ValueError, match=r"^width must be in \[2, 63\] \(use ExactAccumulator for wider\), got 64$"):
        FixedAccumulator(64)
    assert ExactAccumulator().required_width(numerics.get("int8"), numerics.get("int8"), 256) == 24
