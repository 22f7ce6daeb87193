"""Minifloats against ml_dtypes, numpy and gfloat: exhaustive over codes, adversarial over inputs."""

from __future__ import annotations

import re

import gfloat
import ml_dtypes
import numpy as np
import pytest
from gfloat import Domain, FormatInfo, RoundMode

import numerics
from numerics import Minifloat, Rounding, Specials

ML_DTYPES = {
    "fp8_e4m3": ml_dtypes.float8_e4m3fn,
    "fp8_e5m2": ml_dtypes.float8_e5m2,
    "fp8_e4m3fnuz": ml_dtypes.float8_e4m3fnuz,
    "fp8_e5m2fnuz": ml_dtypes.float8_e5m2fnuz,
    "fp8_e4m3_ieee": ml_dtypes.float8_e4m3,
    "fp6_e3m2": ml_dtypes.float6_e3m2fn,
    "fp6_e2m3": ml_dtypes.float6_e2m3fn,
    "fp4_e2m1": ml_dtypes.float4_e2m1fn,
    "e8m0": ml_dtypes.float8_e8m0fnu,
    "bf16": ml_dtypes.bfloat16,
    "fp16": np.float16,
}
CUSTOM = [
    "fp7_e4m2",
    "fp5_e2m2",
    "fp6_e4m1",
    "fp9_e5m3",
    "fp12_e6m5",
    "fp8_e3m4",
    "fp8_e2m5fn",
    "fp7_e3m3fnuz",
    "fp5_e3m1_finite",
    "fp10_e4m5",
]
MODES = {
    Rounding.NEAREST_EVEN: RoundMode.TiesToEven,
    Rounding.NEAREST_AWAY: RoundMode.TiesToAway,
    Rounding.TOWARD_ZERO: RoundMode.TowardZero,
    Rounding.TOWARD_POSITIVE: RoundMode.TowardPositive,
    Rounding.TOWARD_NEGATIVE: RoundMode.TowardNegative,
}


def oracle_decode(name: str, codes: np.ndarray) -> np.ndarray:
    dtype = np.dtype(ML_DTYPES[name])
    raw = codes.astype(np.uint16 if dtype.itemsize == 2 else np.uint8)
    with np.errstate(invalid="ignore"):
        return raw.view(dtype).astype(np.float64)


def gfloat_info(fmt: Minifloat) -> FormatInfo:
    nans = {Specials.IEEE: (1 << fmt.man_bits) - 1, Specials.FN: 1, Specials.FNUZ: 0, Specials.FINITE: 0}
    return FormatInfo(
        fmt.name,
        k=fmt.bits,
        precision=fmt.man_bits + 1,
        bias=fmt.bias,
        is_signed=fmt.signed,
        domain=Domain.Extended if fmt.has_inf else Domain.Finite,
        has_nz=fmt.specials is not Specials.FNUZ,
        num_high_nans=nans[fmt.specials],
        has_subnormals=fmt.subnormals,
        is_twos_complement=False,
    )


def same(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Elementwise equality that also matches NaN with NaN and the sign of zero."""
    return ((a == b) & (np.signbit(a) == np.signbit(b))) | (np.isnan(a) & np.isnan(b))


def adversarial_inputs(fmt: Minifloat, rng: np.random.Generator, dtype: type) -> np.ndarray:
    """Every value, every midpoint (exact ties), their float neighbours, extremes and randoms."""
    values = fmt.values()
    mids = (values[1:] + values[:-1]) / 2
    base = np.concatenate([values, mids, [fmt.max * 2, fmt.max * 1.0625, fmt.min_subnormal / 2, fmt.min_subnormal / 3]])
    with np.errstate(over="ignore"):  # beyond-float32 extremes become Inf, which we want too
        base = np.concatenate([base, -base]).astype(dtype)
    near = np.concatenate([np.nextafter(base, dtype(np.inf)), np.nextafter(base, dtype(-np.inf))])
    scale = np.exp2(rng.uniform(np.log2(fmt.min_subnormal) - 3, np.log2(fmt.max) + 2, 4000))
    with np.errstate(over="ignore"):
        rand = (rng.standard_normal(4000) * scale).astype(dtype)
    special = np.array([0.0, -0.0, np.inf, -np.inf, np.nan], dtype=dtype)
    out = np.concatenate([base, near, rand, special])
    return out if fmt.has_nan else out[~np.isnan(out)]


@pytest.mark.parametrize("name", sorted(ML_DTYPES))
def test_decode_equals_ml_dtypes_for_every_code(name: str) -> None:
    fmt = numerics.get(name)
    codes = np.arange(1 << fmt.bits)
    assert same(fmt.decode(codes), oracle_decode(name, codes)).all()


@pytest.mark.parametrize("dtype", [np.uint16, np.int64, np.uint32])
def test_bf16_decodes_every_code_as_ml_dtypes_in_any_integer_dtype(dtype: type) -> None:
    """uint16 codes (what encode returns) skip the range check; wider ones are checked."""
    fmt = numerics.get("bf16")
    codes = np.arange(1 << 16).astype(dtype)
    got = fmt.decode(codes)
    assert got.dtype == np.float64 and same(got, oracle_decode("bf16", codes)).all()
    nan = np.isnan(got)
    assert nan.sum() == 2 * 127 and (got[nan].view(np.uint64) == np.float64(np.nan).view(np.uint64)).all()
    with pytest.raises(ValueError, match=r"^bf16 codes must be in \[0, 65535\], got 65536$"):
        fmt.decode(np.array([1, 1 << 16], dtype=dtype if np.dtype(dtype).itemsize > 2 else np.int32))


@pytest.mark.parametrize("saturate", [False, True])
def test_large_float32_arrays_encode_fp8_e5m2_as_ml_dtypes(saturate: bool) -> None:
    """The kernel compiled for arrays of >= 2**20 float32 values: ties, subnormals, overflow
    (to Inf, or to 57344 when saturating), NaN and Inf against ml_dtypes, in the same value."""
    from numerics._minifloat import _SPECIALIZE_FROM

    fmt = numerics.get("fp8_e5m2")
    x = np.resize(adversarial_inputs(fmt, np.random.default_rng(6), np.float32), _SPECIALIZE_FROM)
    with np.errstate(all="ignore"):
        expected = x.astype(ml_dtypes.float8_e5m2).astype(np.float64)
    if saturate:  # ml_dtypes has no saturating cast: clamp its finite results and its Inf
        expected = np.where(np.isnan(expected), expected, np.clip(expected, -fmt.max, fmt.max))
    got = fmt.decode(fmt.encode(x, saturate=saturate))
    bad = ~same(got, expected)
    assert not bad.any(), f"{x[bad][:5]} -> {got[bad][:5]}, ml_dtypes {expected[bad][:5]}"


def test_fp32_decode_equals_numpy_on_random_and_special_codes() -> None:
    fmt = numerics.get("fp32")
    rng = np.random.default_rng(1)
    codes = np.concatenate(
        [
            rng.integers(0, 1 << 32, 200_000),
            [0, 1, 0x7F7FFFFF, 0x7F800000, 0xFF800000, 0x7FC00000, 0x80000000, 0x00800000, 0x007FFFFF],
        ]
    ).astype(np.uint32)
    with np.errstate(invalid="ignore"):
        expected = codes.view(np.float32).astype(np.float64)
    assert same(fmt.decode(codes), expected).all()


@pytest.mark.parametrize("name", sorted(ML_DTYPES))
def test_encode_float32_equals_ml_dtypes(name: str) -> None:
    fmt = numerics.get(name)
    x = adversarial_inputs(fmt, np.random.default_rng(2), np.float32)
    if name == "e8m0":
        # ml_dtypes mis-rounds float32 subnormal inputs to e8m0 (5.877473e-39 -> 2**-126, while
        # it lies next to 2**-127): compare normal inputs only.
        x = x[~((np.abs(x) < np.finfo(np.float32).tiny) & (x != 0))]
    if not (fmt.has_nan or fmt.has_inf):
        # ml_dtypes saturates finite-only formats; NaN has no code there (ours raises, tested below).
        x = x[~np.isnan(x)]
    with np.errstate(all="ignore"):
        expected = x.astype(ML_DTYPES[name]).astype(np.float64)
    got = fmt.decode(fmt.encode(x))
    bad = ~same(got, expected)
    assert not bad.any(), f"{x[bad][:5]} -> {got[bad][:5]}, ml_dtypes {expected[bad][:5]}"


def test_encode_float32_equals_numpy_for_fp16_and_fp32_from_float64() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(200_000) * np.exp2(rng.integers(-160, 135, 200_000))
    with np.errstate(over="ignore"):
        assert same(
            numerics.get("fp32").decode(numerics.get("fp32").encode(x)), x.astype(np.float32).astype(np.float64)
        ).all()
        assert same(
            numerics.get("fp16").decode(numerics.get("fp16").encode(x)), x.astype(np.float16).astype(np.float64)
        ).all()


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize(
    "name", ["fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "bf16", "fp16", *CUSTOM]
)
def test_encode_float64_equals_gfloat_in_every_rounding_mode(name: str, mode: Rounding) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, Minifloat)
    x = adversarial_inputs(fmt, np.random.default_rng(4), np.float64)
    saturate = not (fmt.has_inf or fmt.has_nan)
    expected = gfloat.round_ndarray(gfloat_info(fmt), x, MODES[mode], sat=saturate)
    got = fmt.quantize(x, rounding=mode)
    bad = ~same(got, expected)
    assert not bad.any(), f"{x[bad][:5]} -> {got[bad][:5]}, gfloat {expected[bad][:5]}"


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp4_e2m1", "fp7_e4m2"])
def test_saturating_encode_equals_gfloat(name: str) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, Minifloat)
    x = adversarial_inputs(fmt, np.random.default_rng(5), np.float64)
    expected = gfloat.round_ndarray(gfloat_info(fmt), x, RoundMode.TiesToEven, sat=True)
    assert same(fmt.quantize(x, saturate=True), expected).all()


@pytest.mark.parametrize("name", sorted(ML_DTYPES) + CUSTOM)
def test_lower_is_exact_and_within_declared_widths(name: str) -> None:
    fmt = numerics.get(name)
    codes = np.arange(1 << fmt.bits)
    values = fmt.decode(codes)
    finite = np.isfinite(values)
    sig, exp = fmt.lower(codes[finite])
    np.testing.assert_array_equal(np.ldexp(sig.astype(np.float64), exp.astype(np.int32)), values[finite])
    assert exp.min() >= fmt.lsb_exponent
    assert int(np.abs(sig).max()).bit_length() <= fmt.significand_bits


def test_lower_refuses_nan_and_inf_codes() -> None:
    with pytest.raises(
        ValueError, match=r"^fp8_e5m2 code 0x7c at index \(1,\) is Inf or NaN and has no integer lowering$"
    ):
        numerics.get("fp8_e5m2").lower(np.array([0x3C, 0x7C]))


def test_fp4_values_are_the_ocp_grid() -> None:
    grid = [0, 0.5, 1, 1.5, 2, 3, 4, 6]
    np.testing.assert_array_equal(numerics.get("fp4_e2m1").values(), sorted({-v for v in grid} | set(grid)))


@pytest.mark.parametrize(
    ("name", "maximum", "min_normal", "min_subnormal"),
    [
        ("fp8_e4m3", 448, 2**-6, 2**-9),
        ("fp8_e5m2", 57344, 2**-14, 2**-16),
        ("fp8_e4m3fnuz", 240, 2**-7, 2**-10),
        ("fp8_e5m2fnuz", 57344, 2**-15, 2**-17),
        ("fp8_e4m3_ieee", 240, 2**-6, 2**-9),
        ("fp8_e4m3_finite", 480, 2**-6, 2**-9),
        ("fp6_e3m2", 28, 0.25, 0.0625),
        ("fp6_e2m3", 7.5, 1.0, 0.125),
        ("fp4_e2m1", 6.0, 1.0, 0.5),
        ("e8m0", 2.0**127, 2.0**-127, 2.0**-127),
    ],
)
def test_format_constants_match_the_spec_table(
    name: str, maximum: float, min_normal: float, min_subnormal: float
) -> None:
    fmt = numerics.get(name)
    assert (fmt.max, fmt.min_normal, fmt.min_subnormal) == (maximum, min_normal, min_subnormal)


def test_e4m3fn_overflow_follows_ml_dtypes_unless_saturating() -> None:
    fmt = numerics.get("fp8_e4m3")
    x = np.array([464.0, 465.0, np.inf, -1e9])
    assert same(fmt.quantize(x), np.array([448.0, np.nan, np.nan, np.nan])).all()
    np.testing.assert_array_equal(fmt.quantize(x, saturate=True), [448.0, 448.0, 448.0, -448.0])


def test_ieee_overflow_depends_on_the_rounding_direction() -> None:
    fmt = numerics.get("fp8_e5m2")
    x = np.array([1e6, -1e6])
    np.testing.assert_array_equal(fmt.quantize(x), [np.inf, -np.inf])
    np.testing.assert_array_equal(fmt.quantize(x, rounding="toward_zero"), [57344.0, -57344.0])
    np.testing.assert_array_equal(fmt.quantize(x, rounding="toward_negative"), [57344.0, -np.inf])
    np.testing.assert_array_equal(fmt.quantize(x, rounding="toward_positive"), [np.inf, -57344.0])


def test_fnuz_has_no_negative_zero() -> None:
    fmt = numerics.get("fp8_e4m3fnuz")
    assert fmt.encode(np.array([-0.0, -1e-9])).tolist() == [0, 0]
    assert np.isnan(fmt.decode(np.array([0x80]))[0])


def test_e8m0_has_no_zero_and_no_sign() -> None:
    fmt = numerics.get("e8m0")
    assert same(fmt.quantize(np.array([0.0, -1.0, 2.0**-140, 3.0])), np.array([np.nan, np.nan, 2.0**-127, 4.0])).all()
    np.testing.assert_array_equal(fmt.quantize(np.array([0.0, -1.0]), saturate=True), [2.0**-127, 2.0**-127])


def test_stochastic_rounding_is_seeded_unbiased_and_between_neighbours() -> None:
    fmt = numerics.get("fp8_e4m3")
    x = np.full(200_000, 1.0 + 0.3 * 0.125)  # 30% of the way from 1.0 to 1.125
    first = fmt.quantize(x, rounding="stochastic", seed=7)
    np.testing.assert_array_equal(first, fmt.quantize(x, rounding="stochastic", seed=7))
    assert not np.array_equal(first, fmt.quantize(x, rounding="stochastic", seed=8))
    assert set(np.unique(first)) == {1.0, 1.125}
    up = np.mean(first == 1.125)
    assert abs(up - 0.3) < 5 * np.sqrt(0.3 * 0.7 / x.size)
    np.testing.assert_array_equal(fmt.quantize(np.array([1.0, 1.125]), rounding="stochastic"), [1.0, 1.125])


def test_float32_and_float64_inputs_and_scalars_agree() -> None:
    fmt = numerics.get("fp6_e2m3")
    x32 = np.linspace(-9, 9, 1001, dtype=np.float32)
    np.testing.assert_array_equal(fmt.encode(x32), fmt.encode(x32.astype(np.float64)))
    assert fmt.encode(1.3).shape == () and fmt.encode(1.3) == fmt.encode(np.array([1.3]))[0]
    assert fmt.encode(np.array([[3, -2]], dtype=np.int16)).dtype == np.uint8


def test_no_double_rounding_from_float64() -> None:
    # 1 + 2**-4 + 2**-30 rounds up in E4M3 (just above the tie); via float32 it would first
    # become the exact tie 1 + 2**-4 and round down to 1.0.
    x = 1 + 2.0**-4 + 2.0**-30
    assert numerics.get("fp8_e4m3").quantize(x) == 1.125


def test_codes_use_the_smallest_unsigned_dtype() -> None:
    assert [numerics.get(n).encode(1.0).dtype for n in ("fp4_e2m1", "bf16", "fp32", "fp64")] == [
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"exp_bits": 12, "man_bits": 2}, "exp_bits must be in [0, 11], got 12"),
        ({"exp_bits": 4, "man_bits": 53}, "man_bits must be in [0, 52], got 53"),
        (
            {"exp_bits": 0, "man_bits": 3, "subnormals": False},
            "exp_bits=0 leaves only subnormals, so subnormals must be True",
        ),
        ({"exp_bits": 1, "man_bits": 3}, "IEEE specials need exp_bits >= 2 (one exponent is Inf/NaN), got 1"),
        (
            {"exp_bits": 4, "man_bits": 3, "specials": Specials.FNUZ, "signed": False},
            "FNUZ puts NaN at the negative-zero code, so the format must be signed",
        ),
        ({"exp_bits": 4, "man_bits": 3, "specials": "fn"}, "specials must be one of ieee, fn, fnuz, finite, got 'fn'"),
    ],
)
def test_impossible_parameters_are_refused(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Minifloat(**kwargs)


def test_nan_into_a_format_without_nan_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^fp4_e2m1 has no NaN, but the input holds NaN at index \(1,\)$"):
        numerics.get("fp4_e2m1").encode(np.array([1.0, np.nan]))


def test_finite_formats_must_saturate() -> None:
    with pytest.raises(
        ValueError, match=r"^fp6_e3m2 has no Inf or NaN, so overflow must saturate: pass saturate=True$"
    ):
        numerics.get("fp6_e3m2").encode(np.array([1.0]), saturate=False)


def test_bad_inputs_are_refused() -> None:
    fmt = numerics.get("fp8_e4m3")
    with pytest.raises(
        TypeError, match=r"^fp8_e4m3: input must be a real numeric array \(float or int\), got dtype <U3$"
    ):
        fmt.encode(np.array(["abc"]))
    with pytest.raises(ValueError, match=r"^rounding must be a Rounding or one of .*; got 'nearest'$"):
        fmt.encode(1.0, rounding="nearest")
    with pytest.raises(ValueError, match=r"^fp8_e4m3 codes must be in \[0, 255\], got 256$"):
        fmt.decode(np.array([1, 256]))
    with pytest.raises(TypeError, match=r"^fp8_e4m3 codes must be integers, got dtype float64$"):
        fmt.decode(np.array([1.0]))
