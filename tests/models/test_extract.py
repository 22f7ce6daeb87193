"""Extraction: a layer's codes and scales reproduce Brevitas' own output of that layer.

The exact product (numerics.matmul over the extracted codes, exactly what the arrays compute)
times the float32 scales may differ from Brevitas' float32 matmul only by float32 rounding:
Brevitas rounds each dequantized operand (x = code * scale) and every product and partial sum,
so |exact - brevitas| <= gamma(K + 3) * sum_k |x_k w_k| with gamma(n) = n u / (1 - n u), u = 2**-24
(the +3: two operand roundings and one final scaling).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import models
import numerics

# Float weights the whole suite trains once and shares (tests/conftest.py sets BITFAB_CACHE).
SHARED_WEIGHTS = Path(os.environ["BITFAB_CACHE"]) / "models"


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    return models.float_model("mlp", models.digits(), cache=SHARED_WEIGHTS)


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    return models.float_model("cnn", models.digits(), cache=SHARED_WEIGHTS)


MLP_FORMATS = ["int8", "int4_channel", "fp8_e4m3", "mxfp4", "mxfp8_e4m3", "mxint8", "ovp4", "int4_a8", "fp4_e2m1_a8",
               "posit8_2"]  # fmt: skip


@pytest.mark.parametrize("fmt", MLP_FORMATS)
@pytest.mark.parametrize("layer", ["fc1", "fc2"])
def test_codes_and_scales_reproduce_brevitas(mlp: nn.Module, fmt: str, layer: str) -> None:
    _check_layer(mlp, "mlp", fmt, layer, 64)


CNN_CASES = [("int8", "conv1"), ("int8", "conv2"), ("fp8_e4m3", "conv2"), ("mxfp8_e4m3", "conv2"),
             ("mxint8", "conv2"), ("int4_a8", "fc")]  # fmt: skip


@pytest.mark.parametrize(("fmt", "layer"), CNN_CASES)
def test_convolutions_extract_through_im2col(cnn: nn.Module, fmt: str, layer: str) -> None:
    codes = _check_layer(cnn, "cnn", fmt, layer, 4)
    assert codes.kind == ("conv" if layer.startswith("conv") else "linear")
    product = np.arange(np.prod(codes.brevitas_output.shape)).reshape(codes.brevitas_output.shape)
    folded = codes.to_layer(product)
    assert folded.shape == codes.output_shape
    if codes.kind == "conv":  # row = (image, y, x), column = output channel
        assert folded[1, 2, 3, 4] == product[1 * 64 + 3 * 8 + 4, 2]


def _check_layer(float_model: nn.Module, name: str, fmt: str, layer: str, images: int) -> models.LayerCodes:
    split = models.digits()
    model = models.quantized_model(name, fmt, float_model, split)
    codes = models.extract(model, layer, split.test_images[:images], fmt)
    s = models.scheme(fmt)
    a_fmt = getattr(codes.input_codes, "format", s.activation)
    b_fmt = getattr(codes.weight_codes, "format", s.weight)
    exact = numerics.matmul(codes.input_codes, codes.weight_codes, a_fmt, b_fmt)
    carried = hasattr(codes.input_codes, "decode")  # MX and OliVe encodings hold their scales
    scales = 1.0 if carried else codes.input_scale.astype(np.float64) * codes.weight_scale.astype(np.float64)
    values = exact.to_float64() * scales
    a = _decoded(codes.input_codes, s.activation) * (1.0 if carried else codes.input_scale)
    b = _decoded(codes.weight_codes, s.weight) * (1.0 if carried else codes.weight_scale)
    k = a.shape[1]
    u = 2.0**-24
    gamma = (k + 3) * u / (1 - (k + 3) * u)
    bound = gamma * (np.abs(a) @ np.abs(b))
    assert np.all(np.abs(values - codes.brevitas_output.astype(np.float64)) <= bound + 1e-300)
    return codes


def _decoded(codes: object, fmt: str) -> np.ndarray:
    decoded = codes.decode() if hasattr(codes, "decode") else numerics.get(fmt).decode(codes)  # type: ignore[union-attr]
    return np.asarray(decoded, dtype=np.float64)


def test_layers_are_listed_and_unknown_ones_refused(mlp: nn.Module) -> None:
    model = models.quantized_model("mlp", "int8", mlp, models.digits())
    assert models.bundled_layers(model) == ["fc1", "fc2"]
    message = "layer 'conv1' is not a quantized layer of this model; available: fc1, fc2"
    with pytest.raises(ValueError, match=message):
        models.extract(model, "conv1", models.digits().test_images[:4], "int8")
