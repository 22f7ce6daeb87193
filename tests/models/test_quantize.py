"""models.quantize: plain float models (not the bundled ones) become Brevitas models that stay close."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from torch import nn

import models

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn

FORMATS = ("int8", "int8_channel", "fp8_e4m3", "mxfp8_e4m3", "int4")
EIGHT_BIT = FORMATS[:4]
# relative error of the weights and of the logits; 4 bits lose far more than 8
WEIGHT_TOLERANCE = {"int8": 0.015, "int8_channel": 0.015, "fp8_e4m3": 0.04, "mxfp8_e4m3": 0.07, "int4": 0.25}
OUTPUT_TOLERANCE = {"int8": 0.02, "int8_channel": 0.02, "fp8_e4m3": 0.05, "mxfp8_e4m3": 0.08, "int4": 0.2}
CALIBRATION = 512  # training images for the activation scales
FLOAT_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d)
QUANT_LAYERS = (qnn.QuantLinear, qnn.QuantConv1d, qnn.QuantConv2d)


def cnn() -> nn.Module:
    # conv2 reads 32 channels: one MX block; conv1 reads one channel, a short (padded) block
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 32, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 4 * 4, 10),
    )


def mlp() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def trained(build: Callable[[], nn.Module], split: models.Split, epochs: int) -> nn.Module:
    torch.manual_seed(0)  # the initial weights too: the same model in every run
    model = build()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    images, labels = torch.from_numpy(split.train_images), torch.from_numpy(split.train_labels)
    order = np.random.default_rng(0)
    for _ in range(epochs):
        for batch in np.array_split(order.permutation(len(labels)), len(labels) // 64):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(images[batch]), labels[batch]).backward()
            optimizer.step()
    return model.eval()


def logits(model: nn.Module, images: np.ndarray) -> torch.Tensor:
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Brevitas' quant tensors warn on some torch functions
        return model(torch.from_numpy(images))


def relative_error(value: torch.Tensor, reference: torch.Tensor) -> float:
    return float(((value - reference).norm() / reference.norm()).detach())


def pairs(float_model: nn.Module, quantized: nn.Module) -> list[tuple[nn.Module, nn.Module]]:
    """(float layer, its replacement), matched by module name."""
    replaced = dict(quantized.named_modules())
    return [(layer, replaced[name]) for name, layer in float_model.named_modules() if type(layer) in FLOAT_LAYERS]


@pytest.fixture(scope="module")
def split() -> models.Split:
    return models.digits()


@pytest.fixture(scope="module")
def nets(split: models.Split) -> dict[str, nn.Module]:
    return {"cnn": trained(cnn, split, 5), "mlp": trained(mlp, split, 15)}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_every_layer_is_replaced_with_its_weights(nets: dict[str, nn.Module], split: models.Split, name: str,
                                                  fmt: str) -> None:  # fmt: skip
    model = nets[name]
    quantized = models.quantize(model, fmt, split.train_images[:CALIBRATION])
    matched = pairs(model, quantized)
    assert len(matched) == (3 if name == "cnn" else 2)
    assert not [m for m in quantized.modules() if type(m) in FLOAT_LAYERS]
    for layer, replacement in matched:
        expected = {nn.Linear: qnn.QuantLinear, nn.Conv2d: qnn.QuantConv2d}[type(layer)]
        assert type(replacement) is expected
        assert torch.equal(replacement.weight, layer.weight) and torch.equal(replacement.bias, layer.bias)
        assert not replacement.bias_quant.is_quant_enabled  # the bias stays float
        assert replacement.weight_quant.is_quant_enabled and replacement.input_quant.is_quant_enabled
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            weight = replacement.quant_weight().value
        assert 0 < relative_error(weight, layer.weight) < WEIGHT_TOLERANCE[fmt]
    assert not quantized.training
    assert all(t.device.type == "cpu" for t in [*quantized.parameters(), *quantized.buffers()])


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_outputs_and_accuracy_stay_close(nets: dict[str, nn.Module], split: models.Split, name: str,
                                         fmt: str) -> None:  # fmt: skip
    model = nets[name]
    quantized = models.quantize(model, fmt, split.train_images[:CALIBRATION])
    reference, output = logits(model, split.test_images), logits(quantized, split.test_images)
    assert relative_error(output, reference) < OUTPUT_TOLERANCE[fmt]
    float_accuracy = models.accuracy(model, split.test_images, split.test_labels)
    accuracy = models.accuracy(quantized, split.test_images, split.test_labels)
    assert float_accuracy >= 0.9
    assert accuracy >= float_accuracy - (0.03 if fmt in EIGHT_BIT else 0.15)


def test_the_original_model_is_left_alone(nets: dict[str, nn.Module], split: models.Split) -> None:
    model = nets["cnn"]
    before = {key: value.clone() for key, value in model.state_dict().items()}
    types = [type(m) for m in model.modules()]
    models.quantize(model, "int8", split.train_images[:64])
    assert [type(m) for m in model.modules()] == types
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert not model.training


def test_activation_scales_come_from_the_calibration_data(nets: dict[str, nn.Module], split: models.Split) -> None:
    small = models.quantize(nets["mlp"], "int8", split.train_images)
    large = models.quantize(nets["mlp"], "int8", 4 * split.train_images)
    scales = [q[1].input_quant.scale() for q in (small, large)]
    assert torch.allclose(4 * scales[0], scales[1], rtol=0.05)
    with pytest.raises(ValueError, match="calibration"):
        models.quantize(nets["mlp"], "int8", split.train_images[:0])
    # MX scales come from each block on the fly: no calibration data needed
    assert type(models.quantize(nets["mlp"], "mxfp8_e4m3", split.train_images[:0])[1]) is qnn.QuantLinear


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxint8", "mxfp4"])
def test_mx_blocks_that_do_not_divide_the_width_still_run(fmt: str) -> None:
    torch.manual_seed(1)
    # 3 and 40 inputs: Brevitas zero-pads the last group of 32
    model = nn.Sequential(nn.Conv1d(3, 40, 3), nn.ReLU(), nn.Flatten(1), nn.Linear(40 * 14, 10)).eval()
    inputs = np.random.default_rng(1).normal(size=(16, 3, 16)).astype(np.float32)
    quantized = models.quantize(model, fmt, inputs)
    assert [type(m) for m in quantized if type(m) in QUANT_LAYERS] == [qnn.QuantConv1d, qnn.QuantLinear]
    output = logits(quantized, inputs)
    assert output.shape == (16, 10) and torch.isfinite(output).all()
    assert relative_error(output, logits(model, inputs)) < (0.1 if fmt != "mxfp4" else 0.4)


@pytest.mark.parametrize("fmt", ["ovp8", "posit8_1"])
def test_per_row_formats_add_the_float_bias_after_the_product(nets: dict[str, nn.Module], split: models.Split,
                                                              fmt: str) -> None:  # fmt: skip
    # Brevitas cannot fold a float bias into per-row scaled outputs; the replacement adds it after
    model = nets["cnn"]
    quantized = models.quantize(model, fmt, split.train_images[:0])
    assert all(isinstance(q, QUANT_LAYERS) for _, q in pairs(model, quantized))
    images = split.test_images[:64]  # these formats quantize through numerics, in numpy: slower
    assert relative_error(logits(quantized, images), logits(model, images)) < 0.05


def test_a_bare_layer_is_a_model_too() -> None:
    layer = nn.Linear(64, 10)
    quantized = models.quantize(layer, "int8", np.ones((4, 64), np.float32))
    assert type(quantized) is qnn.QuantLinear and torch.equal(quantized.weight, layer.weight)


def test_refusals() -> None:
    with pytest.raises(ValueError, match="no Brevitas quantizer for 'int9'"):
        models.quantize(mlp(), "int9", np.ones((4, 1, 8, 8), np.float32))
    with pytest.raises(ValueError, match=r"ReLU has no layer to quantize: .*nn\.Linear, nn\.Conv1d, nn\.Conv2d"):
        models.quantize(nn.ReLU(), "int8", np.ones((4, 8), np.float32))
    with pytest.raises(ValueError, match="batch"):
        models.quantize(mlp(), "int8", np.ones((4, 1, 8, 8), np.float32), batch=0)
