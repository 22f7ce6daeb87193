"""The branch-free float32 kernels against the general kernels, over adversarial bit patterns."""

from __future__ import annotations

import numpy as np
import pytest

import numerics


def float32_patterns() -> np.ndarray:
    """Every exponent with mantissas at and around every rounding position, plus random bits."""
    exponents = np.arange(256, dtype=np.uint32) << 23
    positions = np.arange(24, dtype=np.uint32)
    around = np.concatenate([(1 << positions) - 1, 1 << positions, (1 << positions) + 1, 3 << positions]) & 0x7FFFFF
    mantissas = np.unique(np.concatenate([around, [0, 0x7FFFFF, 0x400000, 0x3FFFFF, 0x400001]]).astype(np.uint32))
    grid = (exponents[:, None] | mantissas[None, :]).reshape(-1)
    rng = np.random.default_rng(0)
    bits = np.concatenate(
        [grid, grid | 0x80000000, rng.integers(0, 1 << 32, 1 << 18, dtype=np.uint64).astype(np.uint32)]
    )
    return bits.view(np.float32)


FAST = [
    "fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz", "fp8_e5m2fnuz", "fp8_e4m3_ieee", "fp8_e4m3_finite", "fp6_e3m2", "fp6_e2m3",
    "fp4_e2m1", "bf16", "fp16", "e8m0", "fp7_e4m2", "fp12_e8m3", "posit8_2", "posit16_2", "posit32_2", "posit8_0",
    "posit16_1", "posit12_3", "posit5_4",
]  # fmt: skip


def float64_patterns() -> np.ndarray:
    """float64 bit patterns: every exponent with mantissas around every rounding position, plus random bits."""
    exponents = np.arange(2048, dtype=np.uint64) << np.uint64(52)
    positions = np.arange(53, dtype=np.uint64)
    one = np.uint64(1)
    around = np.concatenate([(one << positions) - one, one << positions, (one << positions) + one])
    mantissas = np.unique(around & np.uint64((1 << 52) - 1))[::3]
    grid = (exponents[:, None] | mantissas[None, :]).reshape(-1)
    rng = np.random.default_rng(1)
    bits = np.concatenate([grid, grid | np.uint64(1 << 63), rng.integers(0, 2**63, 1 << 17, dtype=np.uint64)])
    return bits.view(np.float64)


def general_kernel(fmt: numerics.ElementFormat, x: np.ndarray, saturate: bool) -> np.ndarray:
    """Codes from the general (branchy, any-mode) kernel, bypassing the fast paths."""
    from numerics import _minifloat, _posit

    is_f32 = x.dtype == np.float32
    bits = x.view(np.uint32 if is_f32 else np.uint64)
    out = np.empty(x.size, fmt.code_dtype)
    if isinstance(fmt, numerics.Posit):
        _posit._encode(bits, is_f32, out, fmt.n, fmt.es, 0, 0)
    else:
        assert isinstance(fmt, numerics.Minifloat)
        _minifloat._encode(bits, is_f32, out, fmt.params(saturate), 0, 0)
    return out


def _policies(name: str) -> list[bool]:
    """The overflow policies a format accepts (posits and finite formats only saturate)."""
    fmt = numerics.get(name)
    if isinstance(fmt, numerics.Posit) or not (fmt.has_inf or fmt.has_nan):
        return [True]
    return [False, True]


UNUSUAL = [
    numerics.Minifloat(5, 2, signed=False),  # no sign bit
    numerics.Minifloat(4, 3, subnormals=False, specials=numerics.Specials.FN),  # no zero: the lowest binade is normal
    numerics.Minifloat(3, 2, bias=-2, specials=numerics.Specials.FINITE),  # quanta above 1
    numerics.Minifloat(8, 3, signed=False),  # float32 subnormal inputs can round up: the 64-bit kernel
    numerics.Minifloat(7, 15),  # a wide mantissa
]


@pytest.mark.parametrize(("name", "saturate"), [(n, s) for n in FAST for s in _policies(n)])
def test_fast_paths_equal_the_general_kernel(name: str, saturate: bool) -> None:
    _fast_paths_equal_the_general_kernel(numerics.get(name), saturate)


@pytest.mark.parametrize(("fmt", "saturate"), [(f, s) for f in UNUSUAL for s in (False, True)], ids=str)
def test_fast_paths_equal_the_general_kernel_for_unusual_layouts(fmt: numerics.Minifloat, saturate: bool) -> None:
    if saturate or fmt.has_inf or fmt.has_nan:
        _fast_paths_equal_the_general_kernel(fmt, saturate)


def _fast_paths_equal_the_general_kernel(fmt: numerics.ElementFormat, saturate: bool) -> None:
    for x in (float32_patterns(), float64_patterns()):
        if not fmt.has_nan:
            x = x[~np.isnan(x)]
        fast = fmt.encode(x, saturate=saturate)  # nearest-even: the branch-free kernels where they apply
        general = general_kernel(fmt, x, saturate)
        bad = fast != general
        assert not bad.any(), f"{x.dtype}: {x[bad][:4]}: fast {fast[bad][:4]}, general {general[bad][:4]}"


def test_fused_integer_quantization_equals_the_general_path() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, 256)) * 3
    for kwargs in ({}, {"channel_axis": 0}, {"group_size": 32}):
        fused = numerics.quantize_int(x, "int4", **kwargs)
        general = numerics.quantize_int(x, "int4", rounding="nearest_even", **kwargs)
        stepwise = np.clip(np.round(x.reshape(fused.grouped(x).shape) / fused.scale), -8, 7)
        np.testing.assert_array_equal(fused.integers().reshape(stepwise.shape), stepwise)
        np.testing.assert_array_equal(fused.codes, general.codes)


def test_dequantize_equals_the_formula_in_every_layout() -> None:
    rng = np.random.default_rng(2)
    x = rng.standard_normal((8, 4, 64))
    layouts = [{}, {"channel_axis": 0}, {"channel_axis": 1}, {"channel_axis": -1}, {"group_size": 16},
               {"group_size": 2, "group_axis": 1}]  # fmt: skip
    for kwargs in layouts:
        for symmetric, fmt in ((True, "int8"), (False, "uint4")):
            q = numerics.quantize_int(x, fmt, symmetric=symmetric, **kwargs)
            expected = ((q.grouped(q.integers()) - q.zero_point) * q.scale).reshape(x.shape)
            np.testing.assert_array_equal(q.dequantize(), expected)
            assert np.abs(q.dequantize() - x).max() <= q.scale.max() * 0.5000001


@pytest.mark.parametrize(("name", "saturate"), [("fp8_e4m3", False), ("fp8_e4m3", True), ("fp8_e5m2", False),
                                                ("fp8_e5m2", True), ("fp16", False), ("fp8_e5m2fnuz", True),
                                                ("fp8_e4m3fnuz", False), ("fp4_e2m1", True), ("bf16", False),
                                                ("e8m0", False), ("e8m0", True), ("fp6_e2m3", True)])  # fmt: skip
def test_specialized_kernel_for_large_float32_arrays_equals_the_general_kernel(name: str, saturate: bool) -> None:
    from numerics._minifloat import _SPECIALIZE_FROM

    fmt = numerics.get(name)
    x = float32_patterns()
    if not fmt.has_nan:
        x = x[~np.isnan(x)]
    x = np.resize(x, _SPECIALIZE_FROM)  # large enough for the specialized kernel
    np.testing.assert_array_equal(fmt.encode(x, saturate=saturate), general_kernel(fmt, x, saturate))
