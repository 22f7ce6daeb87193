"""Brevitas quantizers that quantize exactly like numerics formats, by format name.

Weights: INT per tensor (`int8`, `int4`) or per output channel (`int8_channel`, `int4_channel`),
absmax scale over the narrow range [-(2**(b-1) - 1), 2**(b-1) - 1]; OCP minifloats per tensor
(absmax maps to the format's max); OCP MX (one E8M0 scale per 32 weights along the input axis);
OliVe pairs (`ovp4`, `ovp8`, see models/_ovp_quant.py).
Activations: the same element formats with a per-tensor scale learned from calibration (INT,
minifloats), per-block MX scales computed on the fly (blocks along the features of a linear
layer's input, along the channels of a convolution's), or per-row OliVe scales.
Posits (`posit8_2`, ...; models/_ovp_quant.py): a power-of-two scale per tensor (weights) or per
row (activations) puts the values near 1.
`int8_pow2`: INT8 with power-of-two scales (Brevitas' FixedPoint quantizers) and biases on the
accumulator grid, so a layer's requantization to the next one's codes is a shift: the format a
whole network runs in hardware bit-exactly against Brevitas (`bitfab cosim network`).
Weight-only formats for the bit-serial unit (`int4_a8`, `int2_a8`, `fp4_e2m1_a8`): the weights
per output channel in the named format, the activations INT8 per tensor.

`mxint8` is OCP MXINT8: Brevitas' own `MXInt8Weight` divides the block absmax by 128 before
rounding the scale to a power of two, so its elements overflow and clip; OCP puts the absmax in
[1, 2) of the element grid (scale 2**(floor(log2 amax) - 6) per integer step). The quantizers
here fold that implied 2**-6 into Brevitas' integer scaling (64 instead of 128) and keep the
elements symmetric (+-127, numerics' `mxint8`; Brevitas would also produce -128).
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from typing import Any

import torch

from ._ovp_quant import ovp_quantizers, posit_quantizers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas
    from brevitas.quant import (
        Fp8e4m3OCPActPerTensorFloat,
        Fp8e4m3OCPWeightPerTensorFloat,
        Fp8e5m2OCPActPerTensorFloat,
        Fp8e5m2OCPWeightPerTensorFloat,
        FpOCPActPerTensorFloat,
        FpOCPWeightPerChannelFloat,
        FpOCPWeightPerTensorFloat,
        Int8ActPerTensorFixedPoint,
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int8WeightPerTensorFixedPoint,
        Int8WeightPerTensorFloat,
    )
    from brevitas.quant.experimental.mx_quant_ocp import (
        MXFloat8e4m3Act,
        MXFloat8e4m3Weight,
        MXInt8Act,
        MXInt8Weight,
    )
    from brevitas.quant.float_base import Fp4e2m1Mixin, Fp6e2m3Mixin, Fp6e3m2Mixin


class OCPIntScaling(brevitas.jit.ScriptModule):
    """2**(bits - 2) integer steps per unit of the block scale: OCP MXINT8's implied 2**-6."""

    def __init__(self, signed: bool | None = None) -> None:
        super().__init__()

    @brevitas.jit.script_method
    def forward(self, bit_width: torch.Tensor, signed: bool | None = None) -> torch.Tensor:
        return 2.0 ** (bit_width - 2)


def _minifloat(mixin: type, base: type) -> type:
    return type(f"{mixin.__name__}{base.__name__}", (mixin, base), {})


@dataclass(frozen=True)
class Scheme:
    """A model format: Brevitas quantizers and the numerics formats of the codes they produce."""

    weight_quant: Any
    input_quant: Any  # for linear layers: blocks / pairs along the last (feature) axis
    conv_input_quant: Any  # for convolutions: MX blocks along the channels
    weight: str  # numerics format of the weight codes
    activation: str  # numerics format of the input codes
    calibrated: bool  # per-tensor activation scales come from calibration (else computed on the fly)
    per_channel: bool = False  # one weight scale per output channel
    per_row: bool = False  # one activation scale per row (sample / token), computed on the fly
    integer_bias: bool = False  # biases stored on the accumulator grid (power-of-two scales: exact in hardware)


_FP4 = {"bit_width": 4, "exponent_bit_width": 2, "mantissa_bit_width": 1}
_INT4 = Int8WeightPerTensorFloat.let(bit_width=4)
_OCP_INT = {"int_scaling_impl": OCPIntScaling, "narrow_range": True}  # numerics' mxint8 is symmetric: +-127/64


def _element(weight: Any, act: Any, fmt: str, per_channel: bool = False) -> Scheme:
    return Scheme(weight, act, act, fmt, fmt, True, per_channel)


def _mx(weight: Any, act: Any, fmt: str) -> Scheme:
    return Scheme(weight, act.let(group_dim=-1), act.let(group_dim=1), fmt, fmt, False)


def _weight_only(weight: Any, fmt: str) -> Scheme:
    return Scheme(weight, Int8ActPerTensorFloat, Int8ActPerTensorFloat, fmt, "int8", True, True)


def _ovp(name: str) -> Scheme:
    weight, act = ovp_quantizers(name)
    return Scheme(weight, act, act, name, name, False, per_row=True)


def _posit(name: str) -> Scheme:
    weight, act = posit_quantizers(name)
    return Scheme(weight, act, act, name, name, False, per_row=True)


SCHEMES: dict[str, Scheme] = {
    "int8": _element(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, "int8"),
    "int8_pow2": Scheme(
        Int8WeightPerTensorFixedPoint,
        Int8ActPerTensorFixedPoint,
        Int8ActPerTensorFixedPoint,
        "int8",
        "int8",
        True,
        integer_bias=True,
    ),
    "int4": _element(_INT4, Int8ActPerTensorFloat.let(bit_width=4), "int4"),
    "int8_channel": _element(Int8WeightPerChannelFloat, Int8ActPerTensorFloat, "int8", per_channel=True),
    "int4_channel": _element(
        Int8WeightPerChannelFloat.let(bit_width=4), Int8ActPerTensorFloat.let(bit_width=4), "int4", per_channel=True
    ),
    "fp8_e4m3": _element(Fp8e4m3OCPWeightPerTensorFloat, Fp8e4m3OCPActPerTensorFloat, "fp8_e4m3"),
    "fp8_e5m2": _element(Fp8e5m2OCPWeightPerTensorFloat, Fp8e5m2OCPActPerTensorFloat, "fp8_e5m2"),
    "fp6_e3m2": _element(
        _minifloat(Fp6e3m2Mixin, FpOCPWeightPerTensorFloat),
        _minifloat(Fp6e3m2Mixin, FpOCPActPerTensorFloat),
        "fp6_e3m2",
    ),
    "fp6_e2m3": _element(
        _minifloat(Fp6e2m3Mixin, FpOCPWeightPerTensorFloat),
        _minifloat(Fp6e2m3Mixin, FpOCPActPerTensorFloat),
        "fp6_e2m3",
    ),
    "fp4_e2m1": _element(
        _minifloat(Fp4e2m1Mixin, FpOCPWeightPerTensorFloat),
        _minifloat(Fp4e2m1Mixin, FpOCPActPerTensorFloat),
        "fp4_e2m1",
    ),
    "mxfp8_e4m3": _mx(MXFloat8e4m3Weight, MXFloat8e4m3Act, "mxfp8_e4m3"),
    "mxfp4": _mx(MXFloat8e4m3Weight.let(**_FP4), MXFloat8e4m3Act.let(**_FP4), "mxfp4"),
    "mxint8": _mx(MXInt8Weight.let(**_OCP_INT), MXInt8Act.let(**_OCP_INT), "mxint8"),
    "ovp4": _ovp("ovp4"),
    "ovp8": _ovp("ovp8"),
    "int4_a8": _weight_only(Int8WeightPerChannelFloat.let(bit_width=4), "int4"),
    "int2_a8": _weight_only(Int8WeightPerChannelFloat.let(bit_width=2), "int2"),
    "fp4_e2m1_a8": _weight_only(_minifloat(Fp4e2m1Mixin, FpOCPWeightPerChannelFloat), "fp4_e2m1"),
}
WEIGHT_ONLY = tuple(name for name, s in SCHEMES.items() if s.activation != s.weight)


def _pattern(fmt: str) -> Scheme | None:
    """Any INT2..INT8 (`int5`) or finite minifloat of 3..8 bits (`fp5_e2m2_finite`, all codes are
    numbers, saturating: the OCP FP6/FP4 convention), per-tensor scales."""
    if match := re.fullmatch(r"int([2-8])", fmt):
        bits = int(match[1])
        return _element(Int8WeightPerTensorFloat.let(bit_width=bits), Int8ActPerTensorFloat.let(bit_width=bits), fmt)
    if re.fullmatch(r"posit([4-8])_([0-3])", fmt):
        return _posit(fmt)
    if match := re.fullmatch(r"fp([3-8])_e([1-5])m([0-6])_finite", fmt):
        n, e, m = (int(g) for g in match.groups())
        if n != 1 + e + m:
            return None
        shape = {"bit_width": n, "exponent_bit_width": e, "mantissa_bit_width": m, "nan_values": None,
                 "inf_values": None, "saturating": True}  # fmt: skip
        return _element(FpOCPWeightPerTensorFloat.let(**shape), FpOCPActPerTensorFloat.let(**shape), fmt)
    return None


def scheme(fmt: str) -> Scheme:
    """The scheme of a model format name, or a clear error listing the names."""
    if fmt in SCHEMES:
        return SCHEMES[fmt]
    found = _pattern(fmt)
    if found is None:
        raise ValueError(f"no Brevitas quantizer for {fmt!r}; available: {', '.join(sorted(SCHEMES))}, "
                         "int2..int8, fp{n}_e{x}m{y}_finite (n = 3..8), posit{n}_{es} (n = 4..8, es <= 3)")  # fmt: skip
    return found


def quantizers(fmt: str, conv: bool = False) -> tuple[Any, Any]:
    """(weight quantizer, input quantizer) of a format for a linear layer (or a convolution)."""
    s = scheme(fmt)
    return s.weight_quant, s.conv_input_quant if conv else s.input_quant
