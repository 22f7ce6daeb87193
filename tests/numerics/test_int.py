"""Integer formats and scaled integer quantization against numpy int64 arithmetic."""

from __future__ import annotations

import numpy as np
import pytest

import numerics
from numerics import IntFormat, Rounding

REFERENCE_ROUNDING = {
    Rounding.NEAREST_EVEN: np.round,
    Rounding.NEAREST_AWAY: lambda v: np.sign(v) * (np.floor(np.abs(v)) + (np.abs(v) - np.floor(np.abs(v)) >= 0.5)),
    Rounding.TOWARD_ZERO: np.trunc,
    Rounding.TOWARD_POSITIVE: np.ceil,
    Rounding.TOWARD_NEGATIVE: np.floor,
}


def inputs(fmt: IntFormat) -> np.ndarray:
    steps = np.arange(fmt.min_int - 3, fmt.max_int + 4, dtype=np.float64)
    halves = steps + 0.5
    rng = np.random.default_rng(fmt.width)
    return np.concatenate(
        [
            steps,
            halves,
            np.nextafter(halves, np.inf),
            np.nextafter(halves, -np.inf),
            rng.uniform(fmt.min_int - 10, fmt.max_int + 10, 2000),
            [0.0, -0.0, 1e300, -1e300],
        ]
    )


@pytest.mark.parametrize("mode", list(REFERENCE_ROUNDING))
@pytest.mark.parametrize("name", ["int2", "int4", "int8", "uint4", "uint8", "int8_narrow", "ternary", "int16"])
def test_encode_rounds_then_saturates_like_numpy(name: str, mode: Rounding) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, IntFormat)
    x = inputs(fmt)
    expected = np.clip(REFERENCE_ROUNDING[mode](x), fmt.min_int, fmt.max_int)
    np.testing.assert_array_equal(fmt.quantize(x, rounding=mode), expected)


@pytest.mark.parametrize("name", ["int3", "int8", "uint5", "int12"])
def test_wrapping_keeps_the_low_bits(name: str) -> None:
    fmt = numerics.get(name)
    x = np.arange(-3000, 3000, dtype=np.float64) * 1.0
    codes = fmt.encode(x, saturate=False)
    np.testing.assert_array_equal(codes, x.astype(np.int64) & ((1 << fmt.bits) - 1))
    assert fmt.encode(np.array([2.0**70 + 2.0**20]), saturate=False)[0] == (2**20 if fmt.bits > 20 else 0)


@pytest.mark.parametrize("name", ["int2", "int4", "int8", "uint8", "int8_narrow", "ternary", "int16", "uint16"])
def test_every_code_decodes_to_its_twos_complement_value(name: str) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, IntFormat)
    codes = np.arange(1 << fmt.bits)
    signed = np.where(codes >= 1 << (fmt.bits - 1), codes - (1 << fmt.bits), codes) if fmt.signed else codes
    np.testing.assert_array_equal(fmt.decode(codes), signed)
    np.testing.assert_array_equal(fmt.lower(codes)[0], signed)


def test_ternary_and_narrow_ranges() -> None:
    assert numerics.get("ternary").values().tolist() == [-1, 0, 1]
    assert numerics.get("ternary").decode(np.array([2])).tolist() == [-2]  # the unused code still decodes
    assert numerics.get("ternary").quantize(np.array([-5.0, -0.4, 0.6, 9.0])).tolist() == [-1, 0, 1, 1]
    assert numerics.get("int8_narrow").quantize(np.array([-300.0])).tolist() == [-127]


def test_per_tensor_symmetric_quantization() -> None:
    x = np.array([[-2.0, 0.5], [1.0, 0.25]])
    q = numerics.quantize_int(x, "int8")
    assert q.scale.item() == 2.0 / 127
    np.testing.assert_array_equal(q.integers(), np.round(x / (2.0 / 127)))
    np.testing.assert_allclose(q.dequantize(), x, atol=1 / 127)


def test_per_channel_scales_follow_the_channel_axis() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((6, 10)) * np.arange(1, 7)[:, None]
    q = numerics.quantize_int(x, "int4", channel_axis=0)
    assert q.scale.shape == (6, 1)
    np.testing.assert_array_equal(q.scale[:, 0], np.abs(x).max(axis=1) / 7)
    np.testing.assert_array_equal(q.integers(), np.clip(np.round(x / q.scale), -8, 7))


def test_per_group_scales() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 256))
    q = numerics.quantize_int(x, "int4", group_size=128)
    assert q.scale.shape == (3, 2, 1)
    groups = x.reshape(3, 2, 128)
    np.testing.assert_array_equal(q.scale[..., 0], np.abs(groups).max(axis=-1) / 7)
    assert np.abs(q.dequantize() - x).max() <= (q.scale.max() / 2) * (1 + 1e-12)


def test_asymmetric_quantization_uses_an_integer_zero_point() -> None:
    x = np.linspace(0.5, 3.0, 50)
    q = numerics.quantize_int(x, "uint8", symmetric=False)
    assert q.zero_point.item() == 0 and q.scale.item() == 3.0 / 255
    y = np.linspace(-1.0, 3.0, 50)
    q = numerics.quantize_int(y, "uint8", symmetric=False)
    assert q.zero_point.item() == round(1.0 / (4.0 / 255))
    np.testing.assert_allclose(q.dequantize(), y, atol=q.scale.item() / 2 + 1e-12)


def test_given_scale_and_zero_groups() -> None:
    q = numerics.quantize_int(np.array([0.3, -0.7, 100.0]), "int8", scale=0.25)
    assert q.integers().tolist() == [1, -3, 127]
    assert numerics.quantize_int(np.zeros(4), "int8").scale.item() == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"format": "fp8_e4m3"}, ValueError, "quantize_int needs an integer format, got fp8_e4m3"),
        ({"group_size": 3}, ValueError, "group_size must be a positive divisor of axis -1 (length 8), got 3"),
        ({"channel_axis": 2}, ValueError, "channel_axis must be in [-2, 1], got 2"),
        ({"channel_axis": 0, "group_size": 4}, ValueError, "pass channel_axis or group_size, not both"),
        ({"format": "uint8"}, ValueError, "symmetric quantization needs a signed format, got uint8"),
        ({"scale": -1.0}, ValueError, "scale must be finite and positive"),
        ({"scale": np.ones(3)}, ValueError, "scale of shape (3,) does not broadcast to (2, 8)"),
    ],
)
def test_quantize_int_errors(kwargs: dict, error: type, message: str) -> None:
    import re

    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        numerics.quantize_int(np.ones((2, 8)), **kwargs)


def test_nan_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^int8 has no NaN, but the input holds NaN at index \(0,\)$"):
        numerics.get("int8").encode(np.array([np.nan]))
    with pytest.raises(ValueError, match=r"^int8: cannot wrap an infinite input; use saturate=True$"):
        numerics.get("int8").encode(np.array([np.inf]), saturate=False)


def test_constructor_errors() -> None:
    with pytest.raises(ValueError, match=r"^integer bits must be in \[1, 32\], got 33$"):
        IntFormat(33)
    with pytest.raises(ValueError, match=r"^narrow range applies to signed integers only$"):
        IntFormat(8, signed=False, narrow=True)


@pytest.mark.parametrize(
    ("shape", "kwargs", "scale_shape"),
    [
        ((0,), {}, (1,)),
        ((0, 8), {}, (1, 1)),
        ((3, 0), {}, (1, 1)),
        ((3, 0), {"channel_axis": 0}, (3, 1)),
        ((0, 8), {"channel_axis": 1}, (1, 8)),
        ((0, 8), {"group_size": 4}, (0, 2, 1)),
        ((0,), {"symmetric": False}, (1,)),
        ((3, 0), {"symmetric": False, "channel_axis": 0}, (3, 1)),
        ((0, 8), {"scale": 0.5}, ()),
    ],
)
def test_quantize_int_empty_in_empty_out(shape: tuple[int, ...], kwargs: dict, scale_shape: tuple[int, ...]) -> None:
    q = numerics.quantize_int(np.zeros(shape), "int4", **kwargs)
    assert q.codes.shape == shape and q.dequantize().shape == shape
    assert q.scale.shape == scale_shape and (q.scale == kwargs.get("scale", 1.0)).all()  # empty groups: scale 1


@pytest.mark.parametrize(("shape", "group_size"), [((0,), None), ((0, 8), None), ((0, 8), 4), ((2, 0), None)])
def test_quantize_ternary_empty_in_empty_out(shape: tuple[int, ...], group_size: int | None) -> None:
    q = numerics.quantize_ternary(np.zeros(shape), group_size=group_size)
    assert q.codes.shape == shape and q.dequantize().shape == shape
