"""BitMoD grids and BitNet ternary quantization against plain-Python references."""

from __future__ import annotations

import numpy as np
import pytest

import numerics
from numerics import BitMoDFormat
from numerics._bitmod import grid_by_code


def reference_group(group: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantize one group to grid * scale with ties toward -inf; (values, squared error)."""
    fp16 = numerics.get("fp16")
    absmax = float(np.abs(group).max()) or 1.0
    scale = float(fp16.quantize(np.array(absmax / np.abs(grid).max()), saturate=True)[()])
    ordered = sorted(set(grid.tolist()))
    out = []
    for v in group / scale:
        best = ordered[0]
        for g in ordered:
            if abs(v - g) < abs(v - best):  # strictly closer: a tie keeps the lower value
                best = g
        out.append(best * scale)
    values = np.array(out)
    return values, float(((values - group) ** 2).sum())


def test_grids_remap_the_negative_zero_code() -> None:
    assert grid_by_code(4, 0).tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6, 5, -0.5, -1, -1.5, -2, -3, -4, -6]
    assert [grid_by_code(4, s)[8] for s in range(4)] == [5, -5, 8, -8]
    assert grid_by_code(3, 3).tolist() == [0, 1, 2, 4, -6, -1, -2, -4]


@pytest.mark.parametrize("bits", [3, 4])
def test_each_group_takes_its_least_error_grid(bits: int) -> None:
    rng = np.random.default_rng(bits)
    x = rng.standard_t(4, (6, 96)) * np.exp2(rng.integers(-4, 4, (6, 1)))
    fmt = BitMoDFormat(bits, group_size=32)
    encoded = fmt.encode(x)
    got = encoded.decode()
    for row in range(6):
        for g in range(3):
            group = x[row, 32 * g : 32 * (g + 1)]
            candidates = [reference_group(group, grid_by_code(bits, s)) for s in range(4)]
            errors = [c[1] for c in candidates]
            chosen = int(encoded.selectors[row, g])
            assert errors[chosen] == min(errors)
            np.testing.assert_array_equal(got[row, 32 * g : 32 * (g + 1)], candidates[chosen][0])


def test_ties_round_toward_minus_infinity() -> None:
    fmt = BitMoDFormat(4, group_size=4)
    codes, scale, _ = fmt._quantize_grid(np.array([[6.0, 2.5, -2.5, 0.25]]), 0, numerics.get("fp16"))
    assert numerics.get("fp16").decode(scale).tolist() == [1.0]
    np.testing.assert_array_equal(grid_by_code(4, 0)[codes], [[6.0, 2.0, -3.0, 0.0]])


def test_lower_is_exact_and_dot_uses_it() -> None:
    from fractions import Fraction

    rng = np.random.default_rng(5)
    fmt = numerics.get("bitmod4")
    a = fmt.encode(rng.standard_normal((2, 300)))
    sig, exp = a.lower_full()
    np.testing.assert_array_equal(np.ldexp(sig.astype(float), exp.astype(np.int32)), a.decode())
    b = fmt.encode(rng.standard_normal((2, 300)))
    got = numerics.dot(a, b, fmt, fmt).to_fractions()
    av, bv = a.decode(), b.decode()
    expected = [
        sum(Fraction(float(p)) * Fraction(float(q)) for p, q in zip(av[r], bv[r], strict=True)) for r in range(2)
    ]
    assert got.tolist() == expected


def test_bitmod_beats_int4_on_gaussian_weights() -> None:
    x = np.random.default_rng(6).standard_normal((32, 512))
    bitmod = np.mean((numerics.get("bitmod4").quantize(x) - x) ** 2)
    int4 = np.mean((numerics.quantize_int(x, "int4", group_size=128).dequantize() - x) ** 2)
    assert bitmod < int4


def test_ternary_absmean_per_tensor_and_per_group() -> None:
    x = np.array([[0.2, -1.0, 3.0, 0.0], [0.1, 0.1, -0.1, 0.4]])
    q = numerics.quantize_ternary(x)
    assert q.scale.item() == np.abs(x).mean()
    np.testing.assert_array_equal(q.integers(), np.clip(np.round(x / np.abs(x).mean()), -1, 1))
    g = numerics.quantize_ternary(x, group_size=2)
    assert g.scale.shape == (2, 2, 1)
    np.testing.assert_array_equal(g.scale[..., 0], np.abs(x.reshape(2, 2, 2)).mean(axis=-1))
    assert set(np.unique(g.integers())) <= {-1, 0, 1}
    with pytest.raises(ValueError, match=r"^group_size must be a positive divisor of axis -1 \(length 4\), got 3$"):
        numerics.quantize_ternary(x, group_size=3)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^element_bits must be 3 or 4, got 5$"):
        BitMoDFormat(5)
    with pytest.raises(ValueError, match=r"^bitmod4: the input holds NaN or Inf; BitMoD grids have neither$"):
        numerics.get("bitmod4").encode(np.array([np.inf]))
