"""OliVe outlier-victim pairs: worked examples, grids, invariants and a plain-Python reference."""

from __future__ import annotations

import re

import numpy as np
import pytest

import numerics
from numerics import OVPFormat


def reference_pair(a: float, b: float, bits: int, keep_larger: bool) -> tuple[float, float]:
    """OliVe's pair rule re-derived with Python scalars (values in int units, scale 1)."""
    normal_max = 2 ** (bits - 1) - 1
    mant = bits - 3
    grid = sorted((2**mant + m) * 2 ** (e + 2) for e in range(4) for m in range(2**mant) if (e, m) != (0, 0))
    threshold = (normal_max + grid[0]) / 2

    def outlier_value(v: float) -> float:
        best = grid[0]
        for g in grid:  # nearest, ties toward +inf
            if abs(abs(v) - g) < abs(abs(v) - best) or (abs(abs(v) - g) == abs(abs(v) - best) and v >= 0):
                best = g
        return best if v >= 0 else -best

    out_a, out_b = abs(a) > threshold, abs(b) > threshold
    if out_a and out_b:
        out_a, out_b = (False, True) if keep_larger and abs(b) > abs(a) else (True, False)
    if out_a:
        return outlier_value(a), 0.0
    if out_b:
        return 0.0, outlier_value(b)
    clamp = lambda v: float(min(max(np.rint(v), -normal_max), normal_max))  # noqa: E731
    return clamp(a), clamp(b)


def test_worked_examples_from_the_spec() -> None:
    encoded = numerics.get("ovp4").encode(np.array([0.9, 21.0, 5.2, -3.4]), scale=1.0)
    assert encoded.codes.reshape(-1).tolist() == [0b1000, 0b0011, 0b0101, 0b1101]
    np.testing.assert_array_equal(encoded.decode(), [0, 24, 5, -3])
    sig, exp = encoded.lower()
    assert sig.reshape(-1).tolist() == [0, 3, 5, -3] and exp.reshape(-1).tolist() == [0, 3, 0, 0]


def test_abfloat_grids() -> None:
    assert numerics.get("ovp4").grid[0].tolist() == [12, 16, 24, 32, 48, 64, 96]  # type: ignore[attr-defined]
    grid8 = numerics.get("ovp8").grid[0]  # type: ignore[attr-defined]
    assert grid8[0] == 132 and grid8[-1] == 2016 and len(grid8) == 127


@pytest.mark.parametrize("keep_larger", [False, True])
@pytest.mark.parametrize("bits", [4, 8])
def test_pairs_equal_the_python_reference(bits: int, keep_larger: bool) -> None:
    rng = np.random.default_rng(bits)
    top = 96 if bits == 4 else 2016
    x = rng.standard_normal(4000) * (3 if bits == 4 else 60)
    x[rng.integers(0, 4000, 400)] = rng.uniform(-1.3 * top, 1.3 * top, 400)
    x[:40] = np.repeat([9.5, -9.5, 14.0, -14.0, 20.0, -20.0, 40.0, -40.0, 80.0, 3.5], 4)  # thresholds and ties
    fmt = OVPFormat(bits, "keep_larger" if keep_larger else "keep_first")
    got = fmt.encode(x, scale=1.0).decode()
    expected = [v for i in range(0, x.size, 2) for v in reference_pair(x[i], x[i + 1], bits, keep_larger)]
    np.testing.assert_array_equal(got, expected)


def test_every_outlier_has_a_victim_partner_and_codes_round_trip() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_t(2, (32, 128))
    fmt = numerics.get("ovp4")
    encoded = fmt.encode(x)
    codes = encoded.codes.reshape(-1, 2)
    victim = codes == 0b1000
    assert not (victim[:, 0] & victim[:, 1]).any()
    assert victim.any()
    _, exp = encoded.lower()
    outlier = exp.reshape(-1, 2) > 0
    np.testing.assert_array_equal(outlier, victim[:, ::-1])  # the outlier's partner is the victim
    scale = float(numerics.get("fp32").decode(encoded.scale))
    again = fmt.encode(encoded.decode(), scale=scale)
    np.testing.assert_array_equal(again.codes, encoded.codes)


def test_lower_full_and_per_channel_scales() -> None:
    rng = np.random.default_rng(2)
    w = rng.standard_normal((16, 64)) * np.arange(1, 17)[:, None]
    encoded = numerics.get("ovp4_channel").encode(w)
    assert encoded.scale.shape == (16,)
    sig, exp = encoded.lower_full()
    np.testing.assert_array_equal(np.ldexp(sig.astype(float), exp.astype(np.int32)), encoded.decode())
    per_tensor = numerics.get("ovp4").quantize(w)
    assert np.sum((encoded.decode() - w) ** 2) < np.sum((per_tensor - w) ** 2)


def test_mse_search_beats_absmax_scaling() -> None:
    x = np.random.default_rng(3).standard_normal(10_000)
    x[::500] *= 15
    mse = lambda fmt: np.mean((fmt.quantize(x) - x) ** 2)  # noqa: E731
    assert mse(OVPFormat(4, scale_mode="mse")) < mse(OVPFormat(4, scale_mode="absmax"))


def test_ovp_dot_is_exact() -> None:
    from fractions import Fraction

    rng = np.random.default_rng(4)
    fmt = numerics.get("ovp4")
    a, b = fmt.encode(rng.standard_t(3, (3, 30))), fmt.encode(rng.standard_t(3, (3, 30)))
    got = numerics.dot(a, b, fmt, fmt).to_fractions()
    av, bv = a.decode(), b.decode()
    assert got.tolist() == [sum(Fraction(float(p)) * Fraction(float(q)) for p, q in zip(av[r], bv[r], strict=True))
                            for r in range(3)]  # fmt: skip


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^element_bits must be 4 or 8, got 6$"):
        OVPFormat(6)
    with pytest.raises(ValueError, match=re.escape("ovp4: the input holds NaN or Inf; OliVe pairs have neither")):
        numerics.get("ovp4").encode(np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"^ovp4_channel: channel_axis must differ from the pair axis 0$"):
        numerics.get("ovp4_channel").encode(np.ones((4, 4)), axis=0)


@pytest.mark.parametrize(("axis_a", "axis_b"), [(0, 1), (1, 1), (0, 0)])
def test_pairs_may_run_along_any_axis_for_exact_matmul(axis_a: int, axis_b: int) -> None:
    """An array pairs its lanes (rows of A, columns of B); exact results equal the decoded values'."""
    from fractions import Fraction

    fmt = numerics.get("ovp4")
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(6, 10)) * 3, rng.normal(size=(10, 4))
    enc_a, enc_b = fmt.encode(a, axis=axis_a), fmt.encode(b, axis=axis_b)
    got = numerics.matmul(enc_a, enc_b, fmt, fmt).to_fractions()
    da, db = enc_a.decode(), enc_b.decode()
    want = [[sum(Fraction(float(da[i, k])) * Fraction(float(db[k, j])) for k in range(10)) for j in range(4)]
            for i in range(6)]  # fmt: skip
    assert got.tolist() == want
    float_acc = numerics.FloatAccumulator(numerics.get("fp32"))
    with pytest.raises(ValueError, match="blocks must run along the reduction axis"):
        numerics.matmul(fmt.encode(a, axis=0), fmt.encode(b, axis=0), fmt, fmt, float_acc)
