"""Brevitas quantizers of models/ against numerics, bit for bit: the codes (integers or grid
values) and the scales Brevitas uses are exactly what numerics gives for the same scale."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import numerics
from models import quantizers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn

INTS = {"int8": ("int8", None), "int4": ("int4", None), "int8_channel": ("int8", 0), "int4_channel": ("int4", 0)}
MINIFLOATS = ["fp8_e4m3", "fp8_e5m2", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1"]


def weights(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, 64)) * np.exp2(rng.integers(-3, 3, (16, 1)))
    w[3, :8] = np.round(w[3, :8] * 4) / 4  # ties on coarse grids
    return torch.from_numpy(w.astype(np.float32))


def quantized_weight(fmt: str, w: torch.Tensor) -> object:
    weight_quant, _ = quantizers(fmt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = qnn.QuantLinear(w.shape[1], w.shape[0], bias=False, weight_quant=weight_quant)
        with torch.no_grad():
            layer.weight.copy_(w)
        return layer.quant_weight()


@pytest.mark.parametrize("fmt", sorted(INTS))
def test_int_weights_equal_numerics(fmt: str) -> None:
    element, channel_axis = INTS[fmt]
    w = weights(1)
    q = quantized_weight(fmt, w)
    scale = q.scale.detach().numpy().astype(np.float64)
    absmax = w.abs().amax(dim=1 if channel_axis == 0 else None, keepdim=channel_axis == 0).numpy()
    max_int = numerics.get(element).max
    np.testing.assert_array_equal(scale, (absmax / np.float32(max_int)).astype(np.float32).astype(np.float64))
    ours = numerics.quantize_int(w.double().numpy(), element, channel_axis=channel_axis, scale=scale)
    np.testing.assert_array_equal(q.int().numpy(), numerics.get(element).decode(ours.codes).astype(np.int64))


@pytest.mark.parametrize("fmt", MINIFLOATS)
def test_minifloat_weights_equal_numerics(fmt: str) -> None:
    w = weights(2)
    q = quantized_weight(fmt, w)
    element = numerics.get(fmt)
    scale = q.scale.detach()
    assert scale.item() == np.float32(w.abs().max().item()) / np.float32(element.max)
    quotient = (w / scale).numpy()  # float32, as Brevitas divides
    np.testing.assert_array_equal(q.minifloat().detach().numpy(), element.quantize(quotient, saturate=True))


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4"])
def test_mx_weights_equal_numerics(fmt: str) -> None:
    w = weights(3)
    q = quantized_weight(fmt, w)
    encoded = numerics.get(fmt).encode(w.double().numpy(), axis=1)
    np.testing.assert_array_equal(q.value.detach().double().numpy(), encoded.decode())


def test_unknown_format_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"no Brevitas quantizer for 'int3'; available: fp4_e2m1, fp6_e2m3"):
        quantizers("int3")
