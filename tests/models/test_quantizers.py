"""Brevitas quantizers of models/ against numerics, bit for bit: the codes (integers or grid
values) and the scales Brevitas uses are exactly what numerics gives for the same scale."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import models
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


def quantized_weight(fmt: str, w: torch.Tensor, weight_quant: object = None) -> object:
    weight_quant = quantizers(fmt)[0] if weight_quant is None else weight_quant
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = qnn.QuantLinear(w.shape[1], w.shape[0], bias=False, weight_quant=weight_quant)
        with torch.no_grad():
            layer.weight.copy_(w)
        return layer.quant_weight()


def activations(seed: int, shape: tuple[int, ...] = (8, 64)) -> torch.Tensor:
    """Heavy-tailed activations with exact zeros, ties on coarse grids and powers of two."""
    rng = np.random.default_rng(seed)
    x = rng.standard_t(3, shape) * np.exp2(rng.integers(-4, 4, (*shape[:-1], 1)))
    flat = x.reshape(-1)
    flat[:16] = np.exp2(np.arange(-8, 8))
    flat[16:24] = 0.0
    flat[24:40] = np.round(flat[24:40] * 2) / 2
    return torch.from_numpy(x.astype(np.float32))


def quantized_input(fmt: str, x: torch.Tensor, calibration: torch.Tensor | None = None) -> object:
    """Brevitas' input quantizer of a linear layer (a convolution for 4-d x), calibrated on
    `calibration` where the format calibrates (per-tensor scales)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brevitas.graph.calibrate import calibration_mode

        weight_quant, input_quant = quantizers(fmt, conv=x.ndim == 4)
        layer = qnn.QuantLinear(x.shape[-1], 4, bias=False, weight_quant=weight_quant, input_quant=input_quant)
        if calibration is not None:
            with torch.no_grad(), calibration_mode(layer):
                layer(calibration)
        layer.eval()
        return layer.input_quant(x)


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


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4", "mxint8"])
def test_mx_weights_equal_numerics(fmt: str) -> None:
    w = weights(3)
    w[5, :32] = 1.99 * 2.0**-3  # MXINT8: rounds to 127.36 steps, saturates at 127
    w[6, :32] = -torch.exp2(torch.arange(-16.0, 16.0))
    q = quantized_weight(fmt, w)
    encoded = numerics.get(fmt).encode(w.double().numpy(), axis=1)
    np.testing.assert_array_equal(q.value.detach().double().numpy(), encoded.decode())


def test_brevitas_own_mxint8_is_not_ocp() -> None:
    """Why models/ brings its own: Brevitas' MXInt8Weight scales by absmax / 128, so a block's
    largest elements clip to 127 steps of a scale half as large as OCP's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from brevitas.quant.experimental.mx_quant_ocp import MXInt8Weight
    w = weights(4)
    theirs = quantized_weight("mxint8", w, MXInt8Weight).value.detach().double().numpy()
    ocp = numerics.get("mxint8").encode(w.double().numpy(), axis=1).decode()
    assert np.mean(theirs != ocp) > 0.5


@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "mxfp4", "mxint8"])
def test_mx_activations_equal_numerics_along_features_and_channels(fmt: str) -> None:
    x = activations(5)
    np.testing.assert_array_equal(quantized_input(fmt, x).value.double().numpy(),
                                  numerics.get(fmt).encode(x.double().numpy(), axis=1).decode())  # fmt: skip
    images = activations(6, (2, 64, 3, 3))  # convolution inputs: blocks along the 64 channels
    np.testing.assert_array_equal(quantized_input(fmt, images).value.double().numpy(),
                                  numerics.get(fmt).encode(images.double().numpy(), axis=1).decode())  # fmt: skip


@pytest.mark.parametrize("fmt", ["int8", "int4"])
def test_int_activations_equal_numerics_at_the_calibrated_scale(fmt: str) -> None:
    x = activations(7)
    q = quantized_input(fmt, x, calibration=activations(8))
    scale = q.scale.detach().numpy().astype(np.float64)
    ours = numerics.quantize_int(x.double().numpy(), fmt, scale=scale)
    np.testing.assert_array_equal(q.int().numpy(), numerics.get(fmt).decode(ours.codes).astype(np.int64))
    assert np.abs(q.int().numpy()).max() == numerics.get(fmt).max  # calibration on larger data: some clip


@pytest.mark.parametrize("fmt", MINIFLOATS)
def test_minifloat_activations_equal_numerics_at_the_calibrated_scale(fmt: str) -> None:
    x = activations(9)
    q = quantized_input(fmt, x, calibration=activations(10))
    quotient = (x / q.scale.detach()).numpy()
    np.testing.assert_array_equal(q.minifloat().detach().numpy(), numerics.get(fmt).quantize(quotient, saturate=True))


@pytest.mark.parametrize("fmt", ["ovp4", "ovp8"])
def test_ovp_weights_and_activations_equal_numerics(fmt: str) -> None:
    """OliVe through Brevitas: weights pair along the output channels under one MSE scale,
    activations along the features under one MSE scale per row."""
    w = weights(11)
    q = quantized_weight(fmt, w)
    ours = numerics.get(fmt).encode(w.double().numpy(), axis=0)
    np.testing.assert_array_equal(q.value.detach().numpy(), ours.decode().astype(np.float32))
    assert q.scale.item() == numerics.get("fp32").decode(ours.scale)
    x = activations(12)
    x[:, 5] *= 40  # one outlier channel, as in transformer activations
    qx = quantized_input(fmt, x)
    rows = numerics.OVPFormat(numerics.get(fmt).element_bits, channel_axis=0).encode(x.double().numpy(), axis=1)
    np.testing.assert_array_equal(qx.value.numpy(), rows.decode().astype(np.float32))
    np.testing.assert_array_equal(qx.scale.numpy().reshape(-1), numerics.get("fp32").decode(rows.scale))
    outliers = np.abs(qx.int().numpy()) > numerics.get(fmt).normal_max
    assert outliers.any()  # heavy tails exercise the abfloat outliers and their victims


@pytest.mark.parametrize("fmt", ["posit8_2", "posit8_0", "posit6_1"])
def test_posit_weights_and_activations_equal_numerics(fmt: str) -> None:
    """Brevitas has no posits: values are numerics' posit grid times a power-of-two scale, 2**round(log2(rms))
    per tensor (weights) or per row (activations)."""
    element = numerics.get(fmt)
    for q, x, rows in ((quantized_weight(fmt, weights(15)), weights(15).double().numpy().reshape(1, -1), False),
                       (quantized_input(fmt, activations(16)), activations(16).double().numpy(), True)):  # fmt: skip
        scale = np.exp2(np.round(np.log2(np.sqrt(np.mean(x**2, axis=1, keepdims=True)))))
        expected = element.decode(element.encode(x / scale)) * scale
        assert np.array_equal(q.scale.detach().numpy().reshape(-1), scale.reshape(-1).astype(np.float32))
        np.testing.assert_array_equal(q.value.detach().double().numpy().reshape(expected.shape), expected)
        assert rows == (q.scale.numel() > 1)


@pytest.mark.parametrize("fmt", ["int4_a8", "int2_a8", "fp4_e2m1_a8"])
def test_weight_only_formats_quantize_weights_per_channel(fmt: str) -> None:
    w = weights(13)
    q = quantized_weight(fmt, w)
    element = numerics.get(models.scheme(fmt).weight)
    scale = q.scale.detach()
    assert scale.shape == (16, 1)
    if isinstance(element, numerics.IntFormat):
        ours = numerics.quantize_int(w.double().numpy(), element.name, channel_axis=0, scale=scale.double().numpy())
        np.testing.assert_array_equal(q.int().numpy(), element.decode(ours.codes).astype(np.int64))
    else:
        np.testing.assert_array_equal(q.minifloat().detach().numpy(),
                                      element.quantize((w / scale).numpy(), saturate=True))  # fmt: skip


def test_unknown_format_lists_the_available_ones() -> None:
    with pytest.raises(ValueError, match=r"no Brevitas quantizer for 'int9'; available: fp4_e2m1, fp4_e2m1_a8"):
        quantizers("int9")
    with pytest.raises(ValueError, match=r"int2..int8, fp\{n\}_e\{x\}m\{y\}_finite \(n = 3..8\)"):
        quantizers("fp5_e2m3_finite")  # 1 + 2 + 3 != 5


@pytest.mark.parametrize("fmt", ["int3", "int5", "int7", "fp3_e1m1_finite", "fp5_e2m2_finite", "fp7_e3m3_finite",
                                 "fp8_e5m2_finite"])  # fmt: skip
def test_patterned_formats_equal_numerics(fmt: str) -> None:
    """The seed study's formats: any INT2..8, any finite minifloat of 3..8 bits."""
    w = weights(14)
    q = quantized_weight(fmt, w)
    element = numerics.get(fmt)
    scale = q.scale.detach()
    if isinstance(element, numerics.IntFormat):
        ours = numerics.quantize_int(w.double().numpy(), fmt, scale=scale.double().numpy())
        np.testing.assert_array_equal(q.int().numpy(), element.decode(ours.codes).astype(np.int64))
    else:
        assert scale.item() == np.float32(w.abs().max().item()) / np.float32(element.max)
        quotient = (w / scale).numpy()
        np.testing.assert_array_equal(q.minifloat().detach().numpy(), element.quantize(quotient, saturate=True))
