"""Posits against SoftPosit and against a bit-by-bit Fraction reference for any (n, es)."""

from __future__ import annotations

import itertools
from fractions import Fraction

import numpy as np
import pytest
import softposit

import numerics
from numerics import Posit, Rounding

from .reference import posit_value, round_to_grid

DIRECTED_AND_NEAREST = [
    Rounding.NEAREST_EVEN,
    Rounding.NEAREST_AWAY,
    Rounding.TOWARD_ZERO,
    Rounding.TOWARD_POSITIVE,
    Rounding.TOWARD_NEGATIVE,
]


def softposit_code(x: float, n: int, es: int) -> int:
    if (n, es) == (8, 0):
        return softposit.posit8(float(x)).v.v
    if (n, es) == (16, 1):
        return softposit.posit16(float(x)).v.v
    if (n, es) == (32, 2):
        return softposit.posit32(float(x)).v.v
    return softposit.posit_2(float(x), x=n).v.v >> (32 - n)


def softposit_value(code: int, n: int, es: int) -> float:
    if (n, es) == (8, 0):
        return float(softposit.posit8(bits=code))
    if (n, es) == (16, 1):
        return float(softposit.posit16(bits=code))
    if (n, es) == (32, 2):
        return float(softposit.posit32(bits=code))
    return float(softposit.posit_2(x=n, bits=code))


def bit_string_grid(n: int, es: int) -> tuple[list[Fraction], list[bool], list[Fraction]]:
    """Sorted values, whether each code is even, and the bit-string midpoints between them.

    The midpoint between neighbours is the value of the odd (n+1)-bit code between their codes,
    which is what rounding the bit string to nearest means.
    """
    entries = []
    for code in range(1 << n):
        value = posit_value(code, n, es)
        if value is not None:
            entries.append((value, code))
    entries.sort()
    grid = [v for v, _ in entries]
    even = [c % 2 == 0 for _, c in entries]
    mids = []
    for (_, c_lo), (_, c_hi) in itertools.pairwise(entries):
        wide_lo = (2 * c_lo) % (1 << (n + 1))
        wide_hi = (2 * c_hi) % (1 << (n + 1))
        between = (wide_lo + 1) % (1 << (n + 1)) if (wide_lo + 2) % (1 << (n + 1)) == wide_hi else None
        assert between is not None
        mid = posit_value(between, n + 1, es)
        assert mid is not None
        mids.append(mid)
    return grid, even, mids


def adversarial(fmt: Posit, grid: list[Fraction], mids: list[Fraction], rng: np.random.Generator) -> np.ndarray:
    points = np.array([float(v) for v in grid] + [float(m) for m in mids])
    near = np.concatenate([np.nextafter(points, np.inf), np.nextafter(points, -np.inf)])
    scale = np.exp2(rng.uniform(-fmt.max_scale - 4, fmt.max_scale + 4, 3000))
    extremes = [fmt.max * 4, fmt.min_normal / 4, -fmt.max * 4, -fmt.min_normal / 4, 0.0, -0.0]
    return np.concatenate([points, near, rng.standard_normal(3000) * scale, extremes])


@pytest.mark.parametrize(("n", "es"), [(8, 0), (16, 1), (8, 2), (16, 2)])
def test_decode_equals_softposit_for_every_code(n: int, es: int) -> None:
    fmt = numerics.get(f"posit{n}_{es}")
    codes = np.arange(1 << n)
    expected = np.array([softposit_value(int(c), n, es) for c in codes])
    got = fmt.decode(codes)
    nar = codes == 1 << (n - 1)
    assert np.isnan(got[nar]).all()
    np.testing.assert_array_equal(got[~nar], expected[~nar])


@pytest.mark.parametrize(("n", "es"), [(8, 0), (16, 1), (8, 2), (16, 2), (32, 2)])
def test_encode_equals_softposit(n: int, es: int) -> None:
    fmt = numerics.get(f"posit{n}_{es}")
    rng = np.random.default_rng(n + es)
    if n <= 16:
        grid, _, mids = bit_string_grid(n, es)
        x = adversarial(fmt, grid, mids, rng)
    else:  # posit32: ties built from random codes, plus random values across the range
        codes = rng.integers(1, 1 << 31, 3000) * 2
        wide = [posit_value(int(c) + 1, 33, es) for c in codes]
        ties = np.array([float(w) for w in wide if w is not None and abs(w) < 2**100])
        scale = np.exp2(rng.uniform(-125, 125, 5000))
        x = np.concatenate([ties, np.nextafter(ties, np.inf), rng.standard_normal(5000) * scale, [0.0, 1e300, 1e-300]])
    expected = np.array([softposit_code(v, n, es) for v in x])
    got = fmt.encode(x)
    bad = got != expected
    assert not bad.any(), f"{x[bad][:4]} -> {got[bad][:4]}, softposit {expected[bad][:4]}"


@pytest.mark.parametrize("es", [0, 1, 2, 3, 4])
@pytest.mark.parametrize("n", [3, 5, 6, 7, 10, 12])
def test_decode_equals_fraction_reference(n: int, es: int) -> None:
    fmt = Posit(n, es)
    codes = np.arange(1 << n)
    reference = [posit_value(int(c), n, es) for c in codes]
    got = fmt.decode(codes)
    for code, value, ref in zip(codes, got, reference, strict=True):
        assert np.isnan(value) if ref is None else value == ref, (code, value, ref)


@pytest.mark.parametrize("mode", DIRECTED_AND_NEAREST)
@pytest.mark.parametrize(("n", "es"), [(5, 0), (6, 1), (7, 3), (8, 2), (10, 4), (12, 1)])
def test_encode_equals_bit_string_rounding_reference(n: int, es: int, mode: Rounding) -> None:
    fmt = Posit(n, es)
    grid, even, mids = bit_string_grid(n, es)
    x = adversarial(fmt, grid, mids, np.random.default_rng(n * 10 + es))
    got = fmt.decode(fmt.encode(x, rounding=mode))
    for value, result in zip(x, got, strict=True):
        exact = Fraction(float(value))
        if exact == 0:
            expected = Fraction(0)
        elif abs(exact) >= grid[-1]:
            expected = grid[-1] if exact > 0 else grid[0]  # no overflow to NaR
        elif abs(exact) <= Fraction(fmt.min_normal):
            expected = Fraction(fmt.min_normal) * (1 if exact > 0 else -1)  # no underflow to zero
        else:
            expected = grid[round_to_grid(exact, grid, even, mode, mids)]
        assert result == expected, (value, mode, result, expected)


def test_regime_ties_are_geometric() -> None:
    fmt = numerics.get("posit8_2")
    assert fmt.max == 2.0**24 and fmt.min_normal == 2.0**-24
    np.testing.assert_array_equal(
        fmt.quantize(np.array([2.0**22, 2.0**22 * 1.0001, 2.0**30, 1e-30])), [2.0**20, 2.0**24, 2.0**24, 2.0**-24]
    )


def test_nar_and_infinities() -> None:
    fmt = numerics.get("posit16_2")
    assert fmt.encode(np.array([np.nan, np.inf, -np.inf])).tolist() == [0x8000] * 3
    assert np.isnan(fmt.decode(np.array([0x8000]))[0])


def test_lower_is_exact() -> None:
    for name in ("posit8_2", "posit16_1", "posit8_0"):
        fmt = numerics.get(name)
        codes = np.arange(1 << fmt.bits)
        codes = codes[codes != 1 << (fmt.bits - 1)]
        sig, exp = fmt.lower(codes)
        np.testing.assert_array_equal(np.ldexp(sig.astype(float), exp.astype(np.int32)), fmt.decode(codes))
        assert exp.min() == fmt.lsb_exponent
        assert int(np.abs(sig).max()).bit_length() <= fmt.significand_bits


def test_stochastic_rounding_lands_on_neighbours() -> None:
    fmt = numerics.get("posit8_2")
    x = np.full(50_000, 1.0 + 0.25 * 0.125)  # posit8_2 has 3 fraction bits at 1.0
    got = fmt.quantize(x, rounding="stochastic", seed=3)
    assert set(np.unique(got)) == {1.0, 1.125}
    assert abs(np.mean(got == 1.125) - 0.25) < 5 * np.sqrt(0.25 * 0.75 / x.size)


def test_quire_widths() -> None:
    assert [numerics.get(f"posit{n}_2").quire_bits for n in (8, 16, 32)] == [128, 256, 512]


def test_parameters_and_overflow_policy_are_checked() -> None:
    with pytest.raises(ValueError, match=r"^posit n must be in \[2, 32\], got 33$"):
        Posit(33, 2)
    with pytest.raises(ValueError, match=r"^posit es must be in \[0, 4\], got 5$"):
        Posit(8, 5)
    with pytest.raises(ValueError, match=r"^posit8_2: posits never overflow to NaR; saturate must be True$"):
        numerics.get("posit8_2").encode(1.0, saturate=False)
