"""models/_network.py: Brevitas' values at every layer (taps) and the power-of-two INT8 scheme
whose biases sit on the accumulator grid."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import models


def test_int8_pow2_has_power_of_two_scales_and_biases_on_the_accumulator_grid(mlp: nn.Module,
                                                                              split: models.Split) -> None:  # fmt: skip
    model = models.quantized_model("mlp", "int8_pow2", mlp, split)
    taps, logits = models.brevitas_taps(model, "int8_pow2", split.test_images[:5])
    assert list(taps) == ["fc1", "fc2"] and logits.shape == (5, 10)
    for tap in taps.values():
        assert float(np.log2(tap.input_scale)).is_integer() and np.all(np.log2(tap.weight_scale) % 1 == 0)
        units = tap.bias / tap.accumulator_scale
        assert np.array_equal(units, np.rint(units)) and np.abs(units).max() > 0
        assert (tap.input_format, tap.weight_format) == ("int8", "int8")
    # the taps are Brevitas' own: fc2's input integers are its quantizer's codes of relu(fc1)
    fc1 = taps["fc1"]
    expected = np.clip(np.rint(np.maximum(fc1.output, 0) / taps["fc2"].input_scale), -128, 127)
    assert np.array_equal(taps["fc2"].input_units, expected)


def test_a_stock_brevitas_layer_is_tapped_with_its_quantized_bias() -> None:
    from tests.bitfab import zoo

    model = zoo.residual_pow2()
    images = models.digits().test_images[:3]
    taps, _ = models.brevitas_taps(model, None, images)
    assert list(taps) == ["embed", "fc_a", "fc_b", "head"]
    embed = taps["embed"]
    with torch.no_grad():
        product = model.embed(torch.from_numpy(images).flatten(1))
    assert np.array_equal(embed.output, product.value.numpy() if hasattr(product, "value") else product.numpy())
    units = embed.bias / embed.accumulator_scale  # Int32Bias: whole accumulator units
    assert np.array_equal(units, np.rint(units))


def test_a_model_without_a_program_or_a_bundled_format_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^Linear has no hardware_program\(net\) method"):
        models.hardware_program(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"^layer 'fc1' is a bundled model's layer: its format must be given$"):
        models.brevitas_taps(models.build("mlp", "int8"), None, np.zeros((1, 1, 8, 8), np.float32))
