"""numerics.requantize (a layer's integer output stage) against a Fraction reference, and its
multipliers against Brevitas-style float requantization."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import numpy as np
import pytest

import numerics


def reference(acc: int, bias: int, multiplier: int, shift: int, fmt: numerics.IntFormat, zero_point: int,
              low: int, high: int) -> int:  # fmt: skip
    """The integer the stage must give, from Python's exact round-half-even of a Fraction."""
    value = round(Fraction((acc + bias) * multiplier, 2**shift)) + zero_point
    return max(low, min(high, max(fmt.min_int, min(fmt.max_int, value))))


@pytest.mark.parametrize("name", ["int8", "uint8", "int4", "int16"])
@pytest.mark.parametrize("shift", [0, 1, 5, 16])
def test_requantize_matches_exact_rounding_at_every_boundary(name: str, shift: int) -> None:
    fmt = numerics.get(name)
    rng = np.random.default_rng(shift)
    channels = 6
    multiplier = np.array([0, 1, 3, 2 ** max(shift - 1, 0), 2**20 + 7, (1 << 31) - 1])
    bias = rng.integers(-1000, 1000, channels)
    zero_point = (fmt.min_int + fmt.max_int + 1) // 2 if not fmt.signed else 0
    # accumulators on and next to every half-way point of channel 3 (a power of two), random elsewhere
    halves = (2 * np.arange(-40, 40) + 1) * 2 ** max(shift - 1, 0) // max(int(multiplier[3]), 1)
    near = (halves[:, None] + np.array([-1, 0, 1])).reshape(-1) - bias[3]
    acc = rng.integers(-(2**24), 2**24, (near.size, channels))
    acc[:, 3] = near
    acc[:5] = [[2**28 - 1], [-(2**28)], [0], [1], [-1]]  # saturation and the smallest values
    for activation, clamp in (("identity", None), ("relu", None), ("clamp", (fmt.min_int + 2, fmt.max_int - 3))):
        codes = numerics.requantize(acc, bias, multiplier, shift, fmt, zero_point, activation, clamp)  # type: ignore[arg-type]
        got, _ = fmt.lower(codes)
        low = zero_point if activation == "relu" else clamp[0] if clamp else fmt.min_int
        high = clamp[1] if clamp else fmt.max_int
        want = [[reference(int(a), int(b), int(m), shift, fmt, zero_point, low, high)
                 for a, b, m in zip(row, bias, multiplier, strict=True)] for row in acc]  # fmt: skip
        np.testing.assert_array_equal(got, want, err_msg=f"{name} shift {shift} {activation}")


def test_power_of_two_ratios_are_exact_and_others_are_bounded() -> None:
    """Brevitas requantizes in float: round(acc * scale_in * scale_w / scale_out) (half to even).
    Power-of-two scales (FixedPoint quantizers) give power-of-two multipliers: the same codes
    exactly; a float ratio's multiplier is the nearest integer on the layer's shift (its relative
    error grows for channels far below the largest ratio: one shift serves them all)."""
    ratios = np.array([2.0**-7, 2.0**-9, 2.0**-3, 2.0**-12])
    multipliers, shift = numerics.quantized_multiplier(ratios)
    np.testing.assert_array_equal(multipliers / 2.0**shift, ratios)
    acc = np.random.default_rng(1).integers(-(2**20), 2**20, (4000, 4))
    codes = numerics.requantize(acc, 0, multipliers, shift, "int8")
    brevitas = np.clip(np.round(acc * ratios), -128, 127)  # float64 is exact here
    np.testing.assert_array_equal(numerics.get("int8").lower(codes)[0], brevitas)
    floats = np.array([0.0123, 0.7, 1.9, 3e-5])
    multipliers, shift = numerics.quantized_multiplier(floats)
    assert 2**30 <= multipliers.max() < 2**31
    assert np.all(np.abs(multipliers - np.ldexp(floats, shift)) <= 0.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: numerics.requantize([1], 0, [1], 0, "fp8_e4m3"),
         "the output stage rounds to integer formats, got fp8_e4m3"),
        (lambda: numerics.requantize([1], 0, [1], 0, "int8", activation="gelu"),  # type: ignore[arg-type]
         "activation must be one of identity, relu, clamp, got 'gelu'"),
        (lambda: numerics.requantize([1], 0, [1], 0, "int8", activation="clamp"),
         "activation 'clamp' takes clamp=(low, high) integer bounds, and only it does"),
        (lambda: numerics.requantize([1], 0, [1], -1, "int8"), "shift must be >= 0, got -1"),
        (lambda: numerics.requantize([1], 0, [1], 0, "uint8", zero_point=300),
         "zero_point 300 is outside uint8's range 0..255"),
        (lambda: numerics.requantize([2**40], 0, [2**30], 0, "int8"),
         "(acc + bias) * multiplier reaches 1.181e+21; the exact golden model holds < 2**62"),
        (lambda: numerics.quantized_multiplier([0.5, -1.0]), "requantization ratios must be positive and finite"),
        (lambda: numerics.quantized_multiplier([2.0**40]), "a ratio of 1.09951e+12 needs a negative shift"),
    ],
)  # fmt: skip
def test_bad_requantization_input_is_named(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        call()  # type: ignore[operator]


def binade_windows(fmt: numerics.Minifloat, lowest: int = 0, span: int = 40) -> tuple[np.ndarray, np.ndarray,
                                                                                      np.ndarray, int]:  # fmt: skip
    """(acc (256, 1), bias, multiplier, shift): per channel, 256 consecutive exact values
    (acc + bias) * multiplier / 2**shift in steps of an eighth of a quantum, the windows (one every
    two binades, both signs) covering the subnormals, every binade and past the largest value, so
    every tie, binade edge and saturation is reached; multipliers 2**lift for lifts from `lowest`
    (the shift lowered to match) up to `span` bits, plus three odd ones near zero."""
    shift = fmt.man_bits + 3 - fmt.emin - lowest  # one step: an eighth of the subnormal quantum x 2**lowest
    start = 1 << fmt.man_bits  # a window's first value: 2**(emin - 3 + lift)
    emax = math.frexp(float(fmt.max))[1] - 1
    biases, multipliers = [], []
    for lift in range(lowest, min(emax - fmt.emin + 4, lowest + span + 1), 2):
        for sign in (1, -1):
            biases.append(sign * (start + 128))
            multipliers.append(1 << (lift - lowest))
    if lowest == 0:
        biases += [0, 5, -3]
        multipliers += [1, 7, 255]
    return np.arange(-128, 128)[:, None], np.array(biases), np.array(multipliers), shift


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp8_e5m2", "fp6_e2m3", "fp4_e2m1"])
@pytest.mark.parametrize("activation", ["identity", "relu", "clamp"])
def test_requantize_minifloat_equals_ml_dtypes_at_every_tie_and_saturates(name: str, activation: str) -> None:
    """The independent oracle: the exact value (a float64, checked exact by Fraction), clipped,
    cast by ml_dtypes (round to nearest even)."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    fmt = numerics.get(name)
    assert isinstance(fmt, numerics.Minifloat)
    acc, bias, multiplier, shift = binade_windows(fmt)
    clamp = (-2.0, 3.0) if activation == "clamp" else None
    codes = numerics.requantize_minifloat(acc, bias, multiplier, shift, fmt, activation, clamp)  # type: ignore[arg-type]
    pairs = list(zip(bias, multiplier, strict=True))
    exact = [[Fraction(int(a + b) * int(m), 2**shift) for b, m in pairs] for a in acc[:, 0]]
    values = np.array(exact, dtype=np.float64)
    assert all(Fraction(float(v)) == x for v, x in zip(values.ravel(), np.array(exact).ravel(), strict=True))
    top = float(fmt.max)
    low, high = {"identity": (-top, top), "relu": (0.0, top), "clamp": clamp}[activation]  # type: ignore[dict-item]
    dtype = {"fp8_e4m3": ml_dtypes.float8_e4m3fn, "fp8_e5m2": ml_dtypes.float8_e5m2,
             "fp6_e2m3": ml_dtypes.float6_e2m3fn, "fp4_e2m1": ml_dtypes.float4_e2m1fn}[name]  # fmt: skip
    want = np.clip(values, low, high).astype(dtype).astype(np.float64)
    got = fmt.decode(codes)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))  # ReLU and clamp give +0, identity keeps -0
    grid = values / float(2.0 ** (fmt.emin - fmt.man_bits))
    assert (np.abs(values) > top).any() and ((grid % 1) == 0.5).any()  # saturation and subnormal ties are reached


def test_requantize_mx_equals_the_ocp_rule_from_ml_dtypes() -> None:
    """Blocks of 32 channels: scale 2**(floor(log2 amax) - 8), elements cast by ml_dtypes after
    clipping to E4M3's largest value; ReLU before the amax."""
    ml_dtypes = pytest.importorskip("ml_dtypes")
    rng = np.random.default_rng(5)
    n = 70  # two whole blocks and a partial one (zero padded)
    acc = rng.integers(-(1 << 20), 1 << 20, (16, n))
    acc[0], acc[1, :32] = 0, 1  # a zero block, a block of ones
    bias, multiplier, shift = rng.integers(-500, 500, n), rng.integers(1, 1 << 12, n), 13
    for activation in ("identity", "relu"):
        blocks = numerics.requantize_mx(acc, bias, multiplier, shift, "mxfp8_e4m3", activation)  # type: ignore[arg-type]
        values = np.ldexp(((acc + bias) * multiplier).astype(np.float64), -shift)
        values = np.maximum(values, 0) if activation == "relu" else values
        padded = np.concatenate([values, np.zeros((16, 3 * 32 - n))], axis=1).reshape(16, 3, 32)
        amax = np.abs(padded).max(axis=-1)
        exponent = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1))) - 8, -127)
        np.testing.assert_array_equal(blocks.scales, (exponent + 127).astype(np.int64))
        scaled = np.clip(padded / np.ldexp(1.0, exponent.astype(int))[..., None], -448, 448)
        want = scaled.astype(ml_dtypes.float8_e4m3fn).astype(np.float64)
        np.testing.assert_array_equal(numerics.get("fp8_e4m3").decode(blocks.elements), want)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"format": "fp8_e4m3", "zero_point": 3}, "has no zero point"),
        ({"format": "fp8_e4m3", "activation": "clamp", "clamp": (-1.1, 2.0)}, "must be a finite value"),
        ({"format": "mxfp8_e4m3", "activation": "clamp", "clamp": (-1, 2)}, "identity' or 'relu"),
        ({"format": "posit8_2"}, "INT, minifloat or MX"),
    ],
)
def test_bad_float_outputs_are_named(kwargs: dict[str, object], message: str) -> None:
    stage = numerics.Requantization(np.zeros(32, np.int64), np.ones(32, np.int64), 2, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=re.escape(message)):
        stage.blocks(np.zeros((1, 32))) if kwargs["format"].startswith("mx") else stage.codes(np.zeros((1, 32)))


def test_requantize_minifloat_is_exact_beyond_float64s_53_bits() -> None:
    """Products up to 2**61, just off ties that a float64 would round onto: the nearest of the
    format's values by exact Fractions (ties to the even code), found by brute force."""
    fmt = numerics.get("fp8_e4m3")
    assert isinstance(fmt, numerics.Minifloat)
    finite = [c for c in range(256) if np.isfinite(fmt.decode(np.array([c], np.uint8))[0])]
    grid = sorted((Fraction(float(fmt.decode(np.array([c], np.uint8))[0])), c) for c in finite if c != 0x80)
    shift = 58  # a float64 of tie +- 1 would be the tie itself
    tie = (Fraction(17, 16) + Fraction(9, 8)) / 2 * 2**shift  # halfway between 1.0625 and 1.125
    totals = [int(tie) + d for d in (-1, 0, 1)] + [(1 << 61) - 1, -(1 << 60) - 3, 3 << 55]
    codes = numerics.requantize_minifloat(np.array(totals), 0, 1, shift, fmt)
    for total, code in zip(totals, codes, strict=True):
        value = Fraction(total, 2**shift)
        best = min(grid, key=lambda g: (abs(g[0] - value), g[1] & 1))
        want = best[1] if abs(value) <= 448 else (0x7E if value > 0 else 0xFE)
        assert int(code) == want, (total, int(code), want)
