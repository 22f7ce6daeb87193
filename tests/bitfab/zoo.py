"""User-style models built only from stock `brevitas.nn` layers and `brevitas.quant` quantizers
(no bitfab quantizer), each with a bias, calibrated on the digits as a user would. Each factory
is what a user passes as `--model zoo.py:NAME`. Inputs: digits images (N, 1, 8, 8)."""

from __future__ import annotations

import warnings

import torch
from torch import nn

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn
    from brevitas.graph.calibrate import calibration_mode
    from brevitas.quant import (
        Fp8e4m3ActPerTensorFloat,
        Fp8e4m3OCPActPerTensorFloat,
        Fp8e4m3OCPWeightPerChannelFloat,
        Fp8e4m3OCPWeightPerTensorFloat,
        Fp8e4m3WeightPerTensorFloat,
        Int8ActPerTensorFixedPoint,
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int8WeightPerTensorFixedPoint,
        Int8WeightPerTensorFloat,
        Int32Bias,
        ShiftedUint8ActPerTensorFloat,
        Uint8ActPerTensorFloat,
    )
    from brevitas.quant.experimental.mx_quant_ocp import MXFloat8e4m3Act, MXFloat8e4m3Weight


class TwoLayer(nn.Module):
    """64 -> 32 -> 10 with a ReLU between; `first` and `second` are the two quantized layers."""

    def __init__(self, first: nn.Module, second: nn.Module, act: nn.Module | None = None, offset: float = 0.0) -> None:
        super().__init__()
        self.fc1, self.act, self.fc2, self.offset = first, act or nn.ReLU(), second, offset

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x.flatten(1) - self.offset)))


def _calibrated(model: nn.Module, inputs: int = 64, features: tuple[int, ...] = (1, 8, 8)) -> nn.Module:
    import models

    split = models.digits()
    images = torch.from_numpy(split.train_images[:inputs])
    if features != (1, 8, 8):
        images = torch.randn(inputs, *features, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad(), calibration_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(images)
    return model.eval()


def _pair(
    weight: object, act: object, bias_quant: object = None, offset: float = 0.0, calibrate: bool = True
) -> nn.Module:
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = qnn.QuantLinear(64, 32, bias=True, weight_quant=weight, input_quant=act, bias_quant=bias_quant)
        second = qnn.QuantLinear(32, 10, bias=True, weight_quant=weight, input_quant=act, bias_quant=bias_quant)
    model = TwoLayer(first, second, offset=offset)
    return _calibrated(model) if calibrate else model.eval()


def int8_tensor() -> nn.Module:
    """INT8 per-tensor weights, INT8 activations, an Int32Bias (exact in the accumulator)."""
    return _pair(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Int32Bias)


def int8_channel_relu() -> nn.Module:
    """INT8 per-channel weights; fc2's input is a QuantReLU's unsigned 8-bit output (FINN's default)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = qnn.QuantLinear(64, 32, bias=True, weight_quant=Int8WeightPerChannelFloat,
                                input_quant=Int8ActPerTensorFloat)  # fmt: skip
        relu = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        second = qnn.QuantLinear(32, 10, bias=True, weight_quant=Int8WeightPerChannelFloat, input_quant=None)
    return _calibrated(TwoLayer(first, second, relu))


def shifted_uint8() -> nn.Module:
    """Zero-point (asymmetric) uint8 activations, INT8 weights; the pixels are shifted to [-0.3, 0.7]
    so that fc1's calibrated zero point is not 0 (fc2's input, after a ReLU, keeps zero point 0)."""
    return _pair(Int8WeightPerTensorFloat, ShiftedUint8ActPerTensorFloat, offset=0.3)


def int4_channel() -> nn.Module:
    return _pair(Int8WeightPerChannelFloat.let(bit_width=4), Int8ActPerTensorFloat.let(bit_width=4))


def fp8_ocp_tensor() -> nn.Module:
    return _pair(Fp8e4m3OCPWeightPerTensorFloat, Fp8e4m3OCPActPerTensorFloat)


def fp8_ocp_channel() -> nn.Module:
    return _pair(Fp8e4m3OCPWeightPerChannelFloat, Fp8e4m3OCPActPerTensorFloat)


def fp8_brevitas() -> nn.Module:
    """Brevitas' own (non-OCP) E4M3: no Inf/NaN codes, max 480."""
    return _pair(Fp8e4m3WeightPerTensorFloat, Fp8e4m3ActPerTensorFloat)


def mxfp8() -> nn.Module:
    """MX scales come from each block on the fly: nothing to calibrate (Brevitas' calibration mode
    also fails on groupwise activations with a bias)."""
    return _pair(MXFloat8e4m3Weight, MXFloat8e4m3Act.let(group_dim=-1), calibrate=False)


def fixed_point() -> nn.Module:
    """Power-of-two scales (FixedPoint quantizers)."""
    return _pair(Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Int32Bias)


class StridedConv(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = qnn.QuantConv2d(1, 8, 3, stride=2, padding=1, bias=True, weight_quant=Int8WeightPerChannelFloat,
                                    input_quant=Int8ActPerTensorFloat)  # fmt: skip
        self.fc = qnn.QuantLinear(8 * 4 * 4, 10, bias=True, weight_quant=Int8WeightPerTensorFloat,
                                  input_quant=Int8ActPerTensorFloat)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).flatten(1))


def strided_conv() -> nn.Module:
    """A QuantConv2d with stride 2 and padding 1 (im2col with zero padding)."""
    torch.manual_seed(0)
    return _calibrated(StridedConv())


class Residual(nn.Module):
    """A small residual block: x + fc_b(relu(fc_a(x))) between an input and an output layer (the add on the host)."""

    def __init__(self, weight: object = Int8WeightPerTensorFloat, act: object = Int8ActPerTensorFloat,
                 bias_quant: object = None) -> None:  # fmt: skip
        super().__init__()
        q = {"weight_quant": weight, "input_quant": act, "bias": True, "bias_quant": bias_quant}
        self.embed, self.fc_a, self.fc_b = (
            qnn.QuantLinear(64, 32, **q),
            qnn.QuantLinear(32, 32, **q),
            qnn.QuantLinear(32, 32, **q),
        )
        self.head = qnn.QuantLinear(32, 10, **q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.embed(x.flatten(1)))
        return self.head(h + self.fc_b(torch.relu(self.fc_a(h))))

    def hardware_program(self, net: object) -> object:
        """Three hardware segments: the skip needs embed's float output, so embed and fc_b leave
        the array in accumulator units and the host adds them and quantizes for the head."""
        x = net.quantize("embed", net.host("flatten", lambda t: t.flatten(1), net.images))  # type: ignore[attr-defined]
        h = net.layer("embed", x, relu=True)  # type: ignore[attr-defined]
        a = net.layer("fc_a", net.quantize("fc_a", h), relu=True, into="fc_b")  # type: ignore[attr-defined]
        added = net.host("residual add: embed + fc_b", lambda u, v: u + v, h, net.layer("fc_b", a))  # type: ignore[attr-defined]
        return net.layer("head", net.quantize("head", added))  # type: ignore[attr-defined]


def residual() -> nn.Module:
    torch.manual_seed(0)
    return _calibrated(Residual())


class Misnamed(Residual):
    def hardware_program(self, net: object) -> object:
        return net.layer("fc9", net.quantize("embed", net.images))  # type: ignore[attr-defined]


def misnamed() -> nn.Module:
    """A hardware program that names a layer the model does not have."""
    torch.manual_seed(0)
    return _calibrated(Misnamed())


class NoRelu(Residual):
    def hardware_program(self, net: object) -> object:  # fc_a's ReLU forgotten
        x = net.quantize("embed", net.host("flatten", lambda t: t.flatten(1), net.images))  # type: ignore[attr-defined]
        h = net.layer("embed", x, relu=True)  # type: ignore[attr-defined]
        a = net.layer("fc_a", net.quantize("fc_a", h), into="fc_b")  # type: ignore[attr-defined]
        added = net.host("residual add", lambda u, v: u + v, h, net.layer("fc_b", a))  # type: ignore[attr-defined]
        return net.layer("head", net.quantize("head", added))  # type: ignore[attr-defined]


def residual_norelu() -> nn.Module:
    """The float-scale residual block with a program that forgets a ReLU its forward pass has."""
    torch.manual_seed(0)
    return _calibrated(NoRelu())


def residual_pow2() -> nn.Module:
    """The residual block with power-of-two scales and Int32Bias: every layer exact in hardware."""
    torch.manual_seed(0)
    return _calibrated(Residual(Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Int32Bias))


def residual_fp8() -> nn.Module:
    """The residual block of stock layers with OCP FP8 E4M3 weights and activations (float scales)."""
    torch.manual_seed(0)
    return _calibrated(Residual(Fp8e4m3OCPWeightPerTensorFloat, Fp8e4m3OCPActPerTensorFloat))


class WideMLP(nn.Module):
    """784-256-10 (MNIST-sized inputs)."""

    def __init__(self) -> None:
        super().__init__()
        q = {"weight_quant": Int8WeightPerChannelFloat, "input_quant": Int8ActPerTensorFloat, "bias": True}
        self.fc1, self.fc2 = qnn.QuantLinear(784, 256, **q), qnn.QuantLinear(256, 10, **q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


def wide_mlp() -> nn.Module:
    torch.manual_seed(0)
    return _calibrated(WideMLP(), features=(784,))


class Attention(nn.Module):
    """Tokens = the 8 image rows; q, k, v projections and Brevitas' quantized scaled dot-product
    attention (both products quantized: Int8 q and kᵀ, unsigned attention weights and Int8 v)."""

    def __init__(self) -> None:
        super().__init__()
        q = {"weight_quant": Int8WeightPerTensorFloat, "input_quant": Int8ActPerTensorFloat, "bias": True}
        self.q, self.k, self.v = (qnn.QuantLinear(8, 8, **q) for _ in range(3))
        self.attention = qnn.QuantScaledDotProductAttention()
        self.head = qnn.QuantLinear(8, 10, **q)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x[:, 0]  # (batch, 8 rows, 8 pixels)
        out = self.attention(self.q(tokens), self.k(tokens), self.v(tokens))
        return self.head(out.mean(dim=1))


def attention() -> nn.Module:
    torch.manual_seed(0)
    return _calibrated(Attention())


class Grouped(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = qnn.QuantConv2d(1, 4, 3, padding=1, weight_quant=Int8WeightPerTensorFloat,
                                    input_quant=Int8ActPerTensorFloat)  # fmt: skip
        self.depthwise = qnn.QuantConv2d(4, 4, 3, padding=1, groups=4, weight_quant=Int8WeightPerTensorFloat,
                                         input_quant=Int8ActPerTensorFloat)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.depthwise(self.conv(x)).flatten(1)


def grouped() -> nn.Module:
    """A depthwise convolution: refused (groups > 1) while the first convolution maps."""
    torch.manual_seed(0)
    return _calibrated(Grouped())


def weight_only() -> nn.Module:
    """fc1 has no input quantizer and a float input: refused (weight-only)."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = qnn.QuantLinear(64, 32, bias=True, weight_quant=Int8WeightPerTensorFloat, input_quant=None)
        second = qnn.QuantLinear(32, 10, bias=True, weight_quant=Int8WeightPerTensorFloat,
                                 input_quant=Int8ActPerTensorFloat)  # fmt: skip
    return _calibrated(TwoLayer(first, second))


def float_cnn() -> nn.Module:
    """A float model (no Brevitas), for `models.quantize`: a 3x3 convolution of one channel (too
    narrow for MX groups of 32), a pointwise convolution of 32 channels (K = 32), a linear head."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 8, 1), nn.ReLU(),
                         nn.Flatten(), nn.Linear(8 * 64, 10)).eval()  # fmt: skip


def float_mlp() -> nn.Module:
    """A float MLP (no Brevitas), for `models.quantize` to per-row formats (OliVe, posits)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).eval()


class Shared(nn.Module):
    """One layer called twice per forward pass (shared weights): refused, not half-captured."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = qnn.QuantLinear(64, 64, bias=True, weight_quant=Int8WeightPerTensorFloat,
                                  input_quant=Int8ActPerTensorFloat)  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.fc(x.flatten(1))))


def shared() -> nn.Module:
    torch.manual_seed(0)
    return _calibrated(Shared())


def binary_a2q() -> nn.Module:
    """Bipolar (+-1) weights, and accumulator-aware (A2Q) weights for a 16-bit accumulator."""
    from brevitas.quant import Int8AccumulatorAwareWeightQuant, SignedBinaryWeightPerTensorConst

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first = qnn.QuantLinear(64, 32, bias=True, weight_quant=SignedBinaryWeightPerTensorConst,
                                input_quant=Int8ActPerTensorFloat)  # fmt: skip
        relu = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        second = qnn.QuantLinear(32, 10, bias=True, weight_quant=Int8AccumulatorAwareWeightQuant, input_quant=None,
                                 weight_accumulator_bit_width=16)  # fmt: skip
    return _calibrated(TwoLayer(first, second, relu))
