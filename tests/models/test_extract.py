"""Extraction: a layer's codes and scales reproduce Brevitas' own output of that layer.

The exact product (numerics.matmul over the extracted codes, exactly what the arrays compute)
times the float32 scales may differ from Brevitas' float32 matmul only by float32 rounding:
Brevitas rounds each dequantized operand (x = code * scale) and every product and partial sum,
so |exact - brevitas| <= gamma(K + 3) * sum_k |x_k w_k| with gamma(n) = n u / (1 - n u), u = 2**-24
(the +3: two operand roundings and one final scaling).
"""

from __future__ import annotations

import numpy as np
import pytest
from torch import nn

import models
import numerics


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> nn.Module:
    return models.float_model("mlp", models.digits(), cache=tmp_path_factory.mktemp("weights"))


@pytest.mark.parametrize("fmt", ["int8", "int4_channel", "fp8_e4m3", "mxfp4", "mxfp8_e4m3"])
@pytest.mark.parametrize("layer", ["fc1", "fc2"])
def test_codes_and_scales_reproduce_brevitas(mlp: nn.Module, fmt: str, layer: str) -> None:
    split = models.digits()
    model = models.quantized_model("mlp", fmt, mlp, split)
    codes = models.extract(model, layer, split.test_images[:64], fmt)
    element = fmt.removesuffix("_channel")
    exact = numerics.matmul(codes.input_codes, codes.weight_codes, element, element)
    values = exact.to_float64() * codes.input_scale.astype(np.float64) * codes.weight_scale.astype(np.float64)
    a = _decoded(codes.input_codes, element) * codes.input_scale
    b = _decoded(codes.weight_codes, element) * codes.weight_scale
    k = a.shape[1]
    u = 2.0**-24
    gamma = (k + 3) * u / (1 - (k + 3) * u)
    bound = gamma * (np.abs(a) @ np.abs(b))
    assert np.all(np.abs(values - codes.brevitas_output.astype(np.float64)) <= bound + 1e-300)


def _decoded(codes: object, fmt: str) -> np.ndarray:
    decoded = codes.decode() if hasattr(codes, "decode") else numerics.get(fmt).decode(codes)  # type: ignore[union-attr]
    return np.asarray(decoded, dtype=np.float64)


def test_layers_are_listed_and_unknown_ones_refused(mlp: nn.Module) -> None:
    model = models.quantized_model("mlp", "int8", mlp, models.digits())
    assert models.linear_layers(model) == ["fc1", "fc2"]
    message = "layer 'conv1' is not a quantized linear layer of this model; available: fc1, fc2"
    with pytest.raises(ValueError, match=message):
        models.extract(model, "conv1", models.digits().test_images[:4], "int8")
