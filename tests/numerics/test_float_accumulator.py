"""Float accumulators as hardware builds them (window, rounding, order) against exact Fractions
rounded per step by an independent reference, and numpy float32/float16 loops where they coincide."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest

import numerics
from numerics import FloatAccumulator, Minifloat

from .reference import as_fraction, lead_exponent, round_fraction


def cut(x: Fraction, quantum: Fraction, nearest_even: bool) -> Fraction:
    steps = math.floor(abs(x) / quantum)
    rest = abs(x) / quantum - steps
    if nearest_even and (rest > Fraction(1, 2) or (rest == Fraction(1, 2) and steps % 2 == 1)):
        steps += 1
    return steps * quantum if x >= 0 else -steps * quantum


def add(acc: Fraction | float, term: Fraction | float, spec: FloatAccumulator) -> Fraction | float:
    toward_zero = spec.rounding == "toward_zero"
    if isinstance(acc, float) or isinstance(term, float):  # +-Inf or NaN
        return float(acc) + float(term)
    if spec.window is not None and (acc != 0 or term != 0):
        top = max(lead_exponent(v) for v in (acc, term) if v != 0)
        quantum = Fraction(2) ** (top - spec.window + 1)
        acc, term = (cut(v, quantum, spec.align == "nearest_even") for v in (acc, term))
    return round_fraction(acc + term, spec.format, toward_zero)


def reference(products: list[Fraction], spec: FloatAccumulator) -> Fraction | float:
    """The accumulator after the products (k order), per the FloatAccumulator docstring."""
    if spec.order == "sequential":
        addends: list[Fraction | float] = list(products)
    else:
        block = spec.block or 1
        chunks = [sum(products[s : s + block], Fraction(0)) for s in range(0, len(products), block)]
        addends = [round_fraction(c, spec.format, spec.rounding == "toward_zero") for c in chunks]
    if spec.order == "pairwise":
        level = addends
        while len(level) > 1:
            pairs = [add(level[i], level[i + 1], spec) for i in range(0, len(level) - 1, 2)]
            level = pairs + ([level[-1]] if len(level) % 2 else [])
        return level[0] if level else Fraction(0)
    acc: Fraction | float = Fraction(0)
    for term in addends:
        acc = add(acc, term, spec)
    return acc


def same(x: Fraction | float, y: Fraction | float) -> bool:
    return (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y)) or x == y


def adversarial_codes(name: str, rows: int, k_terms: int, seed: int) -> np.ndarray:
    """Random codes with runs of equal magnitudes and opposite signs (ties, exact cancellation)
    and extremes (the largest and smallest magnitudes)."""
    fmt = numerics.get(name)
    rng = np.random.default_rng(seed)
    values = rng.standard_normal((rows, k_terms)) * np.exp2(rng.integers(-6, 7, (rows, k_terms)))
    values[:, 1::4] = -values[:, 0::4][:, : values[:, 1::4].shape[1]]  # cancels its neighbour
    values[0, 2::7] = fmt.max * rng.choice([-1, 1], values[0, 2::7].shape)  # row 0 overflows small formats
    values[:, 3::9] = 2.0**fmt.lsb_exponent
    return fmt.encode(values)


SPECS = [
    FloatAccumulator(numerics.get("fp32")),
    FloatAccumulator(numerics.get("fp16")),
    FloatAccumulator(numerics.get("bf16"), rounding="toward_zero"),
    FloatAccumulator(numerics.get("fp8_e5m2")),
    FloatAccumulator(numerics.get("fp32"), window=14),
    FloatAccumulator(numerics.get("fp16"), window=5, align="nearest_even"),
    FloatAccumulator(numerics.get("bf16"), window=3, rounding="toward_zero"),
    FloatAccumulator(numerics.get("fp16"), "blocked", block=4),
    FloatAccumulator(numerics.get("fp32"), "blocked", block=3, window=14, rounding="toward_zero"),
    FloatAccumulator(numerics.get("fp16"), "pairwise"),
    FloatAccumulator(numerics.get("bf16"), "pairwise", block=2, window=6, align="nearest_even"),
]


@pytest.mark.parametrize("spec", SPECS, ids=numerics.accumulator_name)
@pytest.mark.parametrize(("a_name", "b_name"), [("fp8_e4m3", "fp8_e4m3"), ("int8", "fp8_e5m2"), ("fp4_e2m1", "int4")])
def test_float_accumulation_equals_fractions_rounded_per_step(spec: FloatAccumulator, a_name: str, b_name: str) -> None:
    k_terms = 23
    a = adversarial_codes(a_name, 4, k_terms, 1)
    b = adversarial_codes(b_name, 3, k_terms, 2)
    got = numerics.matmul(a, b.T, a_name, b_name, spec)
    values = got.to_fractions()
    av = np.array(as_fraction(numerics.get(a_name).decode(a)), dtype=object).reshape(a.shape)
    bv = np.array(as_fraction(numerics.get(b_name).decode(b)), dtype=object).reshape(b.shape)
    for i in range(4):
        for j in range(3):
            want = reference([av[i, k] * bv[j, k] for k in range(k_terms)], spec)
            assert same(values[i, j], want), (i, j, values[i, j], want)


def tie_products(fmt: Minifloat) -> tuple[np.ndarray, np.ndarray]:
    """fp32 operand pairs whose products sit on, and one step either side of, the rounding
    boundaries of a running sum in fmt: 1 + half an ulp, 1 + an ulp and a half, and so on."""
    ulp = 2.0**-fmt.man_bits
    steps = [ulp / 2, ulp / 2 + ulp / 8, ulp / 2 - ulp / 8, 3 * ulp / 2, ulp / 4, -ulp / 2, -ulp / 4]
    a = np.array([[1.0, s] for s in steps] + [[fmt.max, fmt.max], [fmt.max, -fmt.max]])
    return a, np.ones_like(a)


@pytest.mark.parametrize("acc_name", ["fp16", "bf16", "fp8_e5m2"])
@pytest.mark.parametrize("toward_zero", [False, True])
@pytest.mark.parametrize("narrow_window", [False, True])
def test_ties_and_overflow_at_the_accumulator_boundaries(acc_name: str, toward_zero: bool, narrow_window: bool) -> None:
    fmt = numerics.get(acc_name)
    assert isinstance(fmt, Minifloat)
    window = min(4, fmt.man_bits) if narrow_window else None
    spec = FloatAccumulator(fmt, window=window, rounding="toward_zero" if toward_zero else "nearest_even")
    a, b = tie_products(fmt)
    codes_a, codes_b = numerics.get("fp32").encode(a), numerics.get("fp32").encode(b)
    got = numerics.dot(codes_a, codes_b, "fp32", "fp32", spec)
    special = got.special
    values = got.to_fractions()
    av, bv = as_fraction(a.reshape(-1)), as_fraction(b.reshape(-1))
    for row in range(a.shape[0]):
        want = reference([av[2 * row + k] * bv[2 * row + k] for k in range(2)], spec)
        got_value = float(special[row]) if special[row] != 0 else values[row]
        assert same(got_value, want), (row, got_value, want)


def test_full_alignment_in_fp32_and_fp16_equals_numpy_loops() -> None:
    """Where a numpy loop is the same arithmetic: fp32 adds of products exact in fp32, and fp16
    adds done exactly in float64 and rounded once to float16."""
    rng = np.random.default_rng(3)
    e4m3 = numerics.get("fp8_e4m3")
    a = e4m3.encode(rng.standard_normal((6, 200)) * np.exp2(rng.integers(-8, 8, (6, 200))))
    b = e4m3.encode(rng.standard_normal((5, 200)))
    products = e4m3.decode(a)[:, None, :] * e4m3.decode(b)[None, :, :]
    acc32, acc16 = np.zeros((6, 5), np.float32), np.zeros((6, 5), np.float16)
    for k in range(200):
        acc32 = acc32 + products[:, :, k].astype(np.float32)
        acc16 = (acc16.astype(np.float64) + products[:, :, k]).astype(np.float16)
    fp32, fp16 = numerics.get("fp32"), numerics.get("fp16")
    got32 = numerics.matmul(a, b.T, e4m3, e4m3, FloatAccumulator(fp32)).to_float64()  # type: ignore[arg-type]
    got16 = numerics.matmul(a, b.T, e4m3, e4m3, FloatAccumulator(fp16)).to_float64()  # type: ignore[arg-type]
    np.testing.assert_array_equal(got32, acc32.astype(np.float64))
    np.testing.assert_array_equal(got16, acc16.astype(np.float64))


def test_a_window_loses_what_it_cuts_and_full_alignment_keeps() -> None:
    """2**20 + 1 + 1 + ...: a 14-bit window drops every 1 (they sit 20 bits below the lead),
    full alignment keeps them; rounded alignment keeps them from ties away... to even."""
    fp32 = numerics.get("fp32")
    a = fp32.encode(np.array([2.0**20] + [1.0] * 16))
    b = fp32.encode(np.ones(17))
    full = numerics.dot(a, b, fp32, fp32, FloatAccumulator(fp32)).to_float64()  # type: ignore[arg-type]
    windowed = numerics.dot(a, b, fp32, fp32, FloatAccumulator(fp32, window=14)).to_float64()  # type: ignore[arg-type]
    assert full == 2.0**20 + 16 and windowed == 2.0**20


def test_specials_follow_ieee() -> None:
    fp16 = numerics.get("fp16")
    assert isinstance(fp16, Minifloat)
    inf, nan = np.inf, np.nan
    rows = np.array([[inf, 1.0], [inf, -inf], [nan, 1.0], [65504.0, 65504.0], [-65504.0, -65504.0]])
    codes = fp16.encode(rows)
    ones = fp16.encode(np.ones_like(rows))
    for rounding, top in (("nearest_even", inf), ("toward_zero", 65504.0)):
        got = numerics.dot(codes, ones, fp16, fp16, FloatAccumulator(fp16, rounding=rounding))  # type: ignore[arg-type]
        special = got.special
        assert special[0] == inf and np.isnan(special[1]) and np.isnan(special[2])
        overflow = [float(special[r]) if special[r] else float(got.to_float64()[r]) for r in (3, 4)]
        assert overflow == [top, -top]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"window": 25}, "window must be between 2 and the accumulator's 24 significand bits (fp32), got 25"),
        ({"window": 1}, "window must be between 2 and the accumulator's 24 significand bits (fp32), got 1"),
        ({"block": 4}, "block applies to order='blocked' or 'pairwise'; 'sequential' adds every product"),
        ({"order": "tree"}, "order must be one of sequential, blocked, pairwise, got 'tree'"),
        ({"rounding": "up"}, "rounding must be one of nearest_even, toward_zero, got 'up'"),
        ({"align": "floor"}, "align must be one of truncate, nearest_even, got 'floor'"),
        ({"order": "blocked", "block": 0}, "block must be a positive number of products, got 0"),
    ],
)
def test_impossible_accumulators_are_clear_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        FloatAccumulator(numerics.get("fp32"), **kwargs)  # type: ignore[arg-type]


def test_blocked_order_needs_a_block_for_element_formats() -> None:
    codes = np.zeros((2, 4), np.uint8)
    message = ("order='blocked' needs a block size for element formats (fp8_e4m3 x fp8_e4m3): "
               "give FloatAccumulator(..., block=...)")  # fmt: skip
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        numerics.dot(codes, codes, "fp8_e4m3", "fp8_e4m3", FloatAccumulator(numerics.get("fp16"), "blocked"))  # type: ignore[arg-type]


@pytest.mark.parametrize("text", ["fp32", "bf16_rz", "fp16_w8", "fp32_w14r", "fp8_e5m2_w3_rz"])
def test_text_spelling_round_trips(text: str) -> None:
    assert numerics.accumulator_name(numerics.parse_accumulator(text)) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("fp16_w12", "accumulator 'fp16_w12': window must be between 2 and the accumulator's 11 significand bits"),
        ("uint8", "accumulator must be exact, int{W}"),
        ("fp33", "accumulator must be exact, int{W}"),
    ],
)
def test_text_spelling_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        numerics.parse_accumulator(text)


@pytest.mark.parametrize("rounding", ["nearest_even", "toward_zero"])
def test_full_alignment_rounds_by_bits_below_float64(rounding: str) -> None:
    """Sums that float64 itself rounds onto an fp32 tie: 1 + 2**-23 plus a product 2**-24 -+ 2**-70
    must round by the 2**-70 (down, then up), not as the tie float64 shows."""
    fp32 = numerics.get("fp32")
    assert isinstance(fp32, Minifloat)
    spec = FloatAccumulator(fp32, rounding=rounding)  # type: ignore[arg-type]
    small = 2.0**-24 * (1 + 2.0**-23)
    a = np.array([[1 + 2.0**-23, small], [1 + 2.0**-23, small], [1.0, small]])
    b = np.array([[1.0, 1 - 2.0**-23], [1.0, 1 + 2.0**-23], [1.0, 1 + 2.0**-23]])
    got = numerics.dot(fp32.encode(a), fp32.encode(b), fp32, fp32, spec).to_fractions()
    for row in range(3):
        products = [Fraction(float(a[row, k])) * Fraction(float(b[row, k])) for k in range(2)]
        assert got[row] == reference(products, spec), row


@pytest.mark.parametrize("block", [None, 4, 32])
@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4"])
def test_mx_blocks_add_their_scaled_exact_dots(name: str, block: int | None) -> None:
    """OCP-style MX accumulation: each chunk of `block` scaled products (default: the MX block)
    exactly, rounded to fp16 (small enough to round often), then added in k order."""
    fmt = numerics.get(name)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((3, 70)) * np.exp2(rng.integers(-4, 5, (3, 70)))
    a, b = fmt.encode(x), fmt.encode(rng.standard_normal((70, 2)), axis=0)
    fp16 = numerics.get("fp16")
    spec = FloatAccumulator(fp16, "blocked", block=block)  # type: ignore[arg-type]
    got = numerics.matmul(a, b, fmt, fmt, spec).to_fractions()
    av = np.array(as_fraction(a.decode().reshape(-1)), dtype=object).reshape(3, 70)
    bv = np.array(as_fraction(b.decode().reshape(-1)), dtype=object).reshape(70, 2)
    chunked = FloatAccumulator(fp16, "blocked", block=block or 32)  # type: ignore[arg-type]
    for i in range(3):
        for j in range(2):
            assert same(got[i, j], reference([av[i, k] * bv[k, j] for k in range(70)], chunked)), (i, j)
