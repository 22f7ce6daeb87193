"""numerics.requantize (a layer's integer output stage) against a Fraction reference, and its
multipliers against Brevitas-style float requantization."""

from __future__ import annotations

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
