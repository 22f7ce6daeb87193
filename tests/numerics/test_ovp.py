"""OliVe outlier-victim pairs: worked examples, grids and invariants (the reference code's rounding and
scale search: test_ovp_reference.py)."""

from __future__ import annotations

import re

import numpy as np
import pytest

import numerics
from numerics import OVPFormat


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
    float_acc = numerics.FloatAccumulator(numerics.get("fp32"), "blocked")
    with pytest.raises(ValueError, match="blocks must run along the reduction axis"):
        numerics.matmul(fmt.encode(a, axis=0), fmt.encode(b, axis=0), fmt, fmt, float_acc)


@pytest.mark.parametrize("name", ["ovp4", "ovp8"])
def test_scales_beyond_fp32_are_refused_and_tiny_ones_stay_positive(name: str) -> None:
    """An absmax whose fp32 scale would be Inf is a clear error (it used to overflow with a numpy
    warning); values below fp32's range keep a positive scale (the smallest subnormal) and round to 0."""
    fmt = numerics.get(name)
    with pytest.raises(ValueError, match=rf"^{name}: absmax 1e\+300 is beyond what an fp32 scale maps to the top"):
        fmt.encode(np.full((2, 8), 1e300))
    assert fmt.decode(fmt.encode(np.full((2, 8), 3e38, np.float32))).max() > 2e38  # float32 in: no cast warning
    tiny = fmt.encode(np.full((2, 8), 1e-60))
    assert int(np.asarray(tiny.scale).max()) >= 1 and not fmt.decode(tiny).any()
