"""Format names: the registry, name patterns and the errors for names that do not resolve."""

from __future__ import annotations

import re

import numpy as np
import pytest

import numerics
from numerics import IntFormat, Minifloat, Posit, Specials

REQUIRED = [f"int{b}" for b in range(2, 17)] + [f"uint{b}" for b in range(2, 17)] + [
    "ternary", "fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz", "fp8_e5m2fnuz", "fp8_e4m3_ieee", "fp6_e3m2", "fp6_e2m3",
    "fp4_e2m1", "bf16", "fp16", "fp32", "e8m0", "posit8_2", "posit16_2", "posit32_2", "posit8_0", "posit16_1",
]  # fmt: skip


def test_every_required_name_is_registered() -> None:
    assert set(REQUIRED) <= set(numerics.formats())
    names = numerics.formats()
    assert names == sorted(set(names), key=names.index) and names[0] == "bf16"
    assert {"mxfp4", "mxfp8_e4m3", "mxint8", "nvfp4", "ovp4", "ovp8", "bitmod4", "bitmod3"} <= set(names)
    assert numerics.formats().index("int2") < numerics.formats().index("int10")


@pytest.mark.parametrize(
    "name",
    [
        n
        for n in numerics.formats()
        if isinstance(numerics.get(n), numerics.ElementFormat) and numerics.get(n).bits <= 16
    ],
)
def test_registered_formats_round_trip_every_code(name: str) -> None:
    """Exhaustive up to 16 bits; fp32, fp64, int32 and posit32 are sampled in their own tests."""
    fmt = numerics.get(name)
    codes = np.arange(1 << fmt.bits)
    values = fmt.decode(codes)
    again = fmt.encode(values, saturate=True if not (fmt.has_inf or fmt.has_nan) else None)
    nan = np.isnan(values)
    assert np.isnan(fmt.decode(again[nan])).all()
    if isinstance(fmt, IntFormat) and fmt.narrow:
        # The most negative code is outside a narrow range: it decodes, then saturates.
        keep = codes != 1 << (fmt.bits - 1)
        np.testing.assert_array_equal(again[~nan & keep], codes[~nan & keep])
    else:
        np.testing.assert_array_equal(again[~nan], codes[~nan])


def test_patterns_build_formats() -> None:
    assert numerics.get("posit12_3") == Posit(12, 3)
    assert numerics.get("fp7_e4m2") == Minifloat(4, 2)
    assert numerics.get("fp8_e4m3fn") == numerics.get("fp8_e4m3") == Minifloat(4, 3, specials=Specials.FN)
    assert numerics.get("fp6_e3m2_finite") == numerics.get("fp6_e3m2")
    assert numerics.get("int24") == IntFormat(24)
    assert numerics.get("UINT5") == IntFormat(5, signed=False)
    assert numerics.get("bfloat16") is numerics.get("bf16")
    fmt = numerics.get("fp8_e4m3")
    assert numerics.get(fmt) is fmt


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("fp8_e4m4", "format 'fp8_e4m4': fp8 needs 1 + exponent + mantissa bits = 8, got 1 + 4 + 4 = 9"),
        ("fp8_e4m3x", "unknown format 'fp8_e4m3x'; did you mean fp8_e4m3, mxfp8_e4m3, fp8_e4m3fn, "
                      "fp8_e4m3fnuz? (see bitfab formats; patterns: int{b}, uint{b}, posit{n}_{es}, "
                      "fp{n}_e{x}m{y}[fn|fnuz|_finite], bfp{m}_{block})"),
        ("posit40_2", "posit n must be in [2, 32], got 40"),
        ("int0", "integer bits must be in [1, 32], got 0"),
        ("fp5_e0m4", "IEEE specials need exp_bits >= 2 (one exponent is Inf/NaN), got 0"),
    ],
)  # fmt: skip
def test_bad_names_explain_themselves(name: str, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        numerics.get(name)


def test_non_string_names_are_refused() -> None:
    with pytest.raises(TypeError, match=r"^format must be a name or a format object, got int$"):
        numerics.get(8)  # type: ignore[arg-type]
