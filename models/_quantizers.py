"""Brevitas quantizers that quantize exactly like numerics formats, by format name.

Weights: INT per tensor (`int8`, `int4`) or per output channel (`int8_channel`, `int4_channel`),
absmax scale over the narrow range [-(2**(b-1) - 1), 2**(b-1) - 1]; OCP minifloats per tensor
(absmax maps to the format's max); OCP MX (one E8M0 scale per 32 weights along the input axis).
Activations: the same element formats with a per-tensor scale learned from calibration (INT,
minifloats) or per-block MX scales computed on the fly.

Brevitas' own `MXInt8Weight` is not OCP MXINT8; `mxint8` is not offered until a quantizer equal
to numerics' is written (tests/models pin which names exist).
"""

from __future__ import annotations

import warnings
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from brevitas.quant import (
        Fp8e4m3OCPActPerTensorFloat,
        Fp8e4m3OCPWeightPerTensorFloat,
        Fp8e5m2OCPActPerTensorFloat,
        Fp8e5m2OCPWeightPerTensorFloat,
        FpOCPActPerTensorFloat,
        FpOCPWeightPerTensorFloat,
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int8WeightPerTensorFloat,
    )
    from brevitas.quant.experimental.mx_quant_ocp import MXFloat8e4m3Act, MXFloat8e4m3Weight
    from brevitas.quant.float_base import Fp4e2m1Mixin, Fp6e2m3Mixin, Fp6e3m2Mixin


def _minifloat(mixin: type, base: type) -> type:
    return type(f"{mixin.__name__}{base.__name__}", (mixin, base), {})


_FP4 = {"bit_width": 4, "exponent_bit_width": 2, "mantissa_bit_width": 1}

WEIGHT_QUANTIZERS: dict[str, Any] = {
    "int8": Int8WeightPerTensorFloat,
    "int4": Int8WeightPerTensorFloat.let(bit_width=4),
    "int8_channel": Int8WeightPerChannelFloat,
    "int4_channel": Int8WeightPerChannelFloat.let(bit_width=4),
    "fp8_e4m3": Fp8e4m3OCPWeightPerTensorFloat,
    "fp8_e5m2": Fp8e5m2OCPWeightPerTensorFloat,
    "fp6_e3m2": _minifloat(Fp6e3m2Mixin, FpOCPWeightPerTensorFloat),
    "fp6_e2m3": _minifloat(Fp6e2m3Mixin, FpOCPWeightPerTensorFloat),
    "fp4_e2m1": _minifloat(Fp4e2m1Mixin, FpOCPWeightPerTensorFloat),
    "mxfp8_e4m3": MXFloat8e4m3Weight,
    "mxfp4": MXFloat8e4m3Weight.let(**_FP4),
}

ACT_QUANTIZERS: dict[str, Any] = {
    "int8": Int8ActPerTensorFloat,
    "int4": Int8ActPerTensorFloat.let(bit_width=4),
    "fp8_e4m3": Fp8e4m3OCPActPerTensorFloat,
    "fp8_e5m2": Fp8e5m2OCPActPerTensorFloat,
    "fp6_e3m2": _minifloat(Fp6e3m2Mixin, FpOCPActPerTensorFloat),
    "fp6_e2m3": _minifloat(Fp6e2m3Mixin, FpOCPActPerTensorFloat),
    "fp4_e2m1": _minifloat(Fp4e2m1Mixin, FpOCPActPerTensorFloat),
    "mxfp8_e4m3": MXFloat8e4m3Act.let(group_dim=-1),
    "mxfp4": MXFloat8e4m3Act.let(group_dim=-1, **_FP4),
}
ACT_QUANTIZERS["int8_channel"], ACT_QUANTIZERS["int4_channel"] = ACT_QUANTIZERS["int8"], ACT_QUANTIZERS["int4"]


def quantizers(fmt: str) -> tuple[Any, Any]:
    """(weight quantizer, input quantizer) for a format name, or a clear error listing the names."""
    if fmt not in WEIGHT_QUANTIZERS:
        raise ValueError(f"no Brevitas quantizer for {fmt!r}; available: {', '.join(sorted(WEIGHT_QUANTIZERS))}")
    return WEIGHT_QUANTIZERS[fmt], ACT_QUANTIZERS[fmt]
