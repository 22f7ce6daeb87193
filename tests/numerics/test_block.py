"""Block formats (OCP MX, BFP, NVFP4) against gfloat's block functions and exact references."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import gfloat
import numpy as np
import pytest
from gfloat.formats import (
    format_info_mxfp4_e2m1,
    format_info_mxfp6_e2m3,
    format_info_mxfp6_e3m2,
    format_info_mxfp8_e4m3,
    format_info_mxfp8_e5m2,
    format_info_mxint8,
)

import numerics
from numerics import BlockFormat, ScaleRule

GFLOAT = {
    "mxfp8_e4m3": format_info_mxfp8_e4m3,
    "mxfp8_e5m2": format_info_mxfp8_e5m2,
    "mxfp6_e3m2": format_info_mxfp6_e3m2,
    "mxfp6_e2m3": format_info_mxfp6_e2m3,
    "mxfp4": format_info_mxfp4_e2m1,
    "mxint8_full": format_info_mxint8,  # gfloat's MXINT8 allows -2.0 (code 0x80)
}
EMAX = {"mxfp8_e4m3": 8, "mxfp8_e5m2": 15, "mxfp6_e3m2": 4, "mxfp6_e2m3": 2, "mxfp4": 2, "mxint8_full": 0}


def floor_log2(value: Fraction) -> int:
    """Exact floor(log2 value) for value > 0, by integer comparison only."""
    e = value.numerator.bit_length() - value.denominator.bit_length()
    while Fraction(2) ** e > value:
        e -= 1
    while Fraction(2) ** (e + 1) <= value:
        e += 1
    return e


def reference_shared_exponent(amax: float, name: str, rule: ScaleRule) -> int:
    fmt = numerics.get(name)
    assert isinstance(fmt, BlockFormat)
    exact = Fraction(amax)
    if exact == 0:
        return -127  # all-zero block: the smallest scale
    top = Fraction(fmt.element.max) * Fraction(2) ** fmt.element_exponent
    if rule is ScaleRule.FLOOR:
        e = floor_log2(exact) - EMAX[name]
    elif rule is ScaleRule.CEIL:
        fl = floor_log2(exact)
        e = fl + (exact != Fraction(2) ** fl) - EMAX[name]
    elif rule is ScaleRule.EVEN:
        fl = floor_log2(exact)
        bits = numerics.get(name).element.man_bits if name != "mxint8_full" else 6  # type: ignore[union-attr]
        steps = exact / Fraction(2) ** fl * 2**bits  # in [2**bits, 2**(bits+1))
        rounded = round(steps)  # Python rounds half to even
        e = fl + (rounded == 2 ** (bits + 1)) - EMAX[name]
    else:
        e = math.ceil(math.log2(amax)) - 12 - EMAX[name]
        while top * Fraction(2) ** e < exact:
            e += 1
        while top * Fraction(2) ** (e - 1) >= exact:
            e -= 1
    return max(min(e, 127), -127)


def with_rule(name: str, rule: ScaleRule) -> BlockFormat:
    """The registered block format `name` with another scale rule."""
    base = numerics.get(name)
    assert isinstance(base, BlockFormat)
    return BlockFormat(base.element, 32, base.scale, rule, base.element_exponent)


def adversarial_blocks(rng: np.random.Generator, n_blocks: int) -> np.ndarray:
    blocks = rng.standard_normal((n_blocks, 32)) * np.exp2(rng.integers(-20, 20, (n_blocks, 1)))
    k = rng.integers(-30, 30, n_blocks)
    blocks[::5, 0] = np.nextafter(np.exp2(k[::5]), 0)  # amax just below a power of two
    blocks[1::5, 0] = np.exp2(k[1::5]) * 1.75  # significand at the saturation edge of E4M3
    blocks[2::5, 0] = np.exp2(k[2::5]) * 1.5  # ... and of E2M1
    blocks[3::5] = np.round(blocks[3::5] * 8) / 8  # many exact grid points and ties
    blocks[4::5, 1:] = blocks[4::5, :1] * (np.arange(1, 32) / 64)  # ties below the max
    return blocks


@pytest.mark.parametrize("rule", list(ScaleRule))
@pytest.mark.parametrize("name", sorted(GFLOAT))
def test_elements_equal_gfloat_encode_block(name: str, rule: ScaleRule) -> None:
    fmt = with_rule(name, rule)
    blocks = adversarial_blocks(np.random.default_rng(len(name)), 120)
    ours = fmt.quantize(blocks)
    info = GFLOAT[name]
    for row, got in zip(blocks, ours, strict=True):
        scale = 2.0 ** reference_shared_exponent(float(np.abs(row).max()), name, rule)
        codes = list(gfloat.encode_block(info, scale, row / scale))
        expected = np.fromiter(gfloat.decode_block(info, codes), float)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("rule", list(ScaleRule))
@pytest.mark.parametrize("name", sorted(GFLOAT))
def test_shared_exponent_equals_the_exact_rule(name: str, rule: ScaleRule) -> None:
    fmt = with_rule(name, rule)
    blocks = adversarial_blocks(np.random.default_rng(7), 200)
    blocks = np.concatenate([blocks, blocks.astype(np.float32).astype(np.float64)])
    scales = fmt.encode(blocks).scales[:, 0]
    expected = [reference_shared_exponent(float(np.abs(r).max()), name, rule) + 127 for r in blocks]
    np.testing.assert_array_equal(scales, expected)


def test_floor_log2_never_comes_from_a_float_log2() -> None:
    amax = np.float32(np.nextafter(np.float32(32.0), np.float32(0)))  # 31.999998: float32 log2 says 5
    fmt = numerics.get("mxfp4")
    encoded = fmt.encode(np.array([amax] + [0.0] * 31, dtype=np.float32))
    assert int(encoded.scales[0]) - 127 == 4 - 2
    assert fmt.quantize(np.array([amax] + [0.0] * 31, dtype=np.float32))[0] == 24.0  # 28 would need scale 2**3


def test_edge_blocks_zero_subnormal_clamp_nan_inf() -> None:
    fmt = numerics.get("mxfp8_e4m3")
    x = np.zeros((5, 32))
    x[1, 3] = 1e-310  # float64 subnormal: the scale clamps to 2**-127
    x[2, 0] = 1e300  # clamps to 2**127 and saturates
    x[3, 5] = np.nan
    x[4, 6] = -np.inf
    encoded = fmt.encode(x)
    assert encoded.scales[:, 0].tolist() == [0, 0, 254, 255, 255]
    values = encoded.decode()
    assert (values[0] == 0).all() and values[1, 3] == 0.0
    assert values[2, 0] == 448 * 2.0**127
    assert np.isnan(values[3:]).all()


def test_mxint8_is_symmetric_by_default() -> None:
    x = np.array([-127.75 / 64] + [0.0] * 31)  # scale 2**0; -127.75 rounds to -128
    assert numerics.get("mxint8").quantize(x)[0] == -127 / 64
    assert numerics.get("mxint8_full").quantize(x)[0] == -2.0  # code 0x80


def test_blocks_run_along_the_chosen_axis_and_pad_partials() -> None:
    rng = np.random.default_rng(3)
    x = rng.standard_normal((40, 3))
    fmt = numerics.get("mxfp6_e2m3")
    np.testing.assert_array_equal(fmt.quantize(x, axis=0), fmt.quantize(x.T).T)
    encoded = fmt.encode(x, axis=0)
    assert encoded.elements.shape == (3, 2, 32) and encoded.scales.shape == (3, 2)
    strict = BlockFormat(fmt.element, 32, fmt.scale, partial="reject")  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match=re.escape(": axis length 40 is not a multiple of the block size 32")):
        strict.encode(x, axis=0)


def test_quantize_is_idempotent_and_round_trips_codes() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_t(3, (16, 64))
    for name in ("mxfp8_e5m2", "mxfp4", "mxint8", "bfp5_16", "nvfp4"):
        fmt = numerics.get(name)
        once = fmt.quantize(x)
        np.testing.assert_array_equal(fmt.quantize(once), once)


@pytest.mark.parametrize("name", ["mxfp4", "mxfp6_e3m2", "mxfp8_e4m3", "nvfp4", "bfp3_8"])
def test_pack_unpack_round_trip(name: str) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, BlockFormat)
    x = np.random.default_rng(5).standard_normal((3, 50))
    encoded = fmt.encode(x)
    element_bytes, scale_bytes = encoded.pack()
    per_row = encoded.elements.shape[-2] * fmt.block_size
    assert element_bytes.size == math.ceil(3 * per_row * fmt.element.bits / 8)
    again = fmt.unpack(element_bytes, scale_bytes, x.shape, tensor_scale=encoded.tensor_scale)
    np.testing.assert_array_equal(again.decode(), encoded.decode())


def test_fp4_packing_puts_element_zero_in_the_low_nibble() -> None:
    fmt = numerics.get("mxfp4")
    encoded = fmt.encode(np.array([6.0, 0.5] + [0.0] * 30))  # amax 6: scale 2**0
    element_bytes, scale_bytes = encoded.pack()
    assert element_bytes[0] == 0x7 | (0x1 << 4) and scale_bytes.tolist() == [127]


def test_nvfp4_two_level_scales() -> None:
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 64)) * np.array([[1.0], [10.0], [1e-3], [300.0]])
    fmt = numerics.get("nvfp4")
    encoded = fmt.encode(x)
    tensor = float(numerics.get("fp32").decode(encoded.tensor_scale))
    assert tensor == np.float32(np.abs(x).max() / (448 * 6))
    amax = np.abs(x.reshape(4, 4, 16)).max(axis=-1)
    ideal = np.clip(amax / 6 / tensor, 2.0**-6, 448)
    np.testing.assert_array_equal(
        numerics.get("fp8_e4m3").decode(encoded.scales), numerics.get("fp8_e4m3").quantize(ideal)
    )
    block_scale = numerics.get("fp8_e4m3").decode(encoded.scales)[..., None] * tensor
    expected = numerics.get("fp4_e2m1").quantize(x.reshape(4, 4, 16) / block_scale) * block_scale
    np.testing.assert_array_equal(encoded.decode(), expected.reshape(4, 64))
    up = BlockFormat(fmt.element, 16, fmt.scale, tensor_scale=True, scale_rounding=numerics.Rounding.TOWARD_POSITIVE)  # type: ignore[attr-defined]
    scales_up = numerics.get("fp8_e4m3").decode(up.encode(x).scales)
    assert (scales_up >= ideal).all()  # rounding the scale up never saturates an element


def test_lower_full_is_exact() -> None:
    rng = np.random.default_rng(8)
    x = rng.standard_normal((6, 40))
    for name in ("mxfp8_e4m3", "mxint8", "nvfp4", "bfp4_8"):
        encoded = numerics.get(name).encode(x)
        sig, exp = encoded.lower_full()
        np.testing.assert_array_equal(np.ldexp(sig.astype(float), exp.astype(np.int32)), encoded.decode())


def test_bad_parameters() -> None:
    e8m0, fp4 = numerics.get("e8m0"), numerics.get("fp4_e2m1")
    with pytest.raises(ValueError, match=r"^block_size must be >= 1, got 0$"):
        BlockFormat(fp4, 0, e8m0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^scale_rule must be one of floor, ceil, even, rceil, got 'floor'$"):
        BlockFormat(fp4, 32, e8m0, "floor")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^bfp mantissa bits must be in \[2, 16\], got 1$"):
        numerics.get("bfp1_16")
    with pytest.raises(ValueError, match=r"^mxfp4: axis must be in \[-1, 0\], got 1$"):
        numerics.get("mxfp4").encode(np.ones(4), axis=1)


def nvfp4_reference(x: np.ndarray, tensor: float) -> np.ndarray:
    """NVFP4 values from the definition, given the tensor scale (blocks of 16 along the last axis)."""
    e4m3, fp4 = numerics.get("fp8_e4m3"), numerics.get("fp4_e2m1")
    blocks = x.reshape(*x.shape[:-1], -1, 16)
    amax = np.abs(blocks).max(axis=-1, keepdims=True)
    block_scale = e4m3.quantize(np.clip(amax / 6 / tensor, 2.0**-6, 448)) * tensor
    return (fp4.quantize(blocks / block_scale) * block_scale).reshape(x.shape)


def test_nvfp4_amax_beyond_the_fp32_tensor_scale_is_refused() -> None:
    fmt = numerics.get("nvfp4")
    limit = 448 * 6 * float(np.finfo(np.float32).max)
    message = "nvfp4: amax 1e+300 is beyond the fp32 tensor scale: magnitudes must be <= 448 * 6 * fp32 max = "
    with pytest.raises(ValueError, match=f"^{re.escape(message + repr(limit))}$"):
        fmt.encode(np.full((2, 32), -1e300))
    with pytest.raises(ValueError, match=re.escape(f"amax {float(np.nextafter(limit, np.inf))!r} is beyond")):
        fmt.encode(np.array([np.nextafter(limit, np.inf)] + [1.0] * 15))
    x = np.array([limit, -limit / 3, 1e39] + [0.0] * 13)  # the largest amax the fp32 tensor scale holds
    encoded = fmt.encode(x)
    assert float(numerics.get("fp32").decode(encoded.tensor_scale)) == float(np.finfo(np.float32).max)
    np.testing.assert_array_equal(encoded.decode(), nvfp4_reference(x, float(np.finfo(np.float32).max)))
    assert encoded.decode()[0] == limit


@pytest.mark.parametrize("magnitude", [1e-44, 1e-40, 1e-39])
def test_nvfp4_tiny_tensors_keep_their_values(magnitude: float) -> None:
    """Below fp32's normal range the tensor scale rounds up onto fp32's subnormal grid (at least
    2**-149), not to 0: the values survive, and no block scale needs more than 448."""
    fmt = numerics.get("nvfp4")
    x = np.random.default_rng(12).standard_normal((2, 32)) * magnitude
    encoded = fmt.encode(x)
    tensor = float(numerics.get("fp32").decode(encoded.tensor_scale))
    ideal = np.abs(x).max() / 2688
    assert tensor >= ideal and (tensor == 2.0**-149 or tensor - 2.0**-149 < ideal)  # the next subnormal up
    decoded = encoded.decode()
    np.testing.assert_array_equal(decoded, nvfp4_reference(x, tensor))
    assert np.abs(decoded).max() >= np.abs(x).max() * 0.75 and np.count_nonzero(decoded) > 50


def test_nvfp4_subnormal_tensor_scale_rounds_up_so_nothing_saturates() -> None:
    amax = 2688 * 1.4 * 2.0**-149  # nearest even would give 2**-149 and an ideal block scale of 627 > 448
    encoded = numerics.get("nvfp4").encode(np.array([amax, amax / 5] + [0.0] * 14))
    assert float(numerics.get("fp32").decode(encoded.tensor_scale)) == 2.0**-148
    assert encoded.decode()[0] == 6 * 320 * 2.0**-148  # E4M3(313.6) = 320; 1.4 * 2688 / 320 / 2 = 5.88 -> 6
