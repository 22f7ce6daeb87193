"""Small real models for the digits: an MLP, a CNN and a transformer encoder block.

Every matrix product is a Brevitas `QuantLinear`/`QuantConv2d` with `weight_quant=` and
`input_quant=` from `models.quantizers` (or float when the format is None), so the same module
definition serves float training, PTQ and QAT, and parameters load across them by name. MX
formats quantize activations in blocks of 32 along the features of a linear layer and along the
channels of a convolution (the CNN's second convolution has 32 input channels, so its blocks line
up with the reduction axis of its im2col product; the first has one channel, padded to a block).
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import nn

from ._quantizers import quantizers

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn

MODELS = ("mlp", "cnn", "transformer")


class Biased(nn.Module):
    """A Brevitas layer without bias plus a float bias added after it: the bias is not part of
    the quantized matrix product (hardware adds it after scaling; Brevitas cannot quantize a
    bias against per-block MX input scales)."""

    def __init__(self, layer: nn.Module, channels: int, spatial: bool = False) -> None:
        super().__init__()
        self.layer, self.spatial = layer, spatial
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x) + (self.bias[:, None, None] if self.spatial else self.bias)


def _linear(fmt: str | None, inputs: int, outputs: int) -> Biased:
    return Biased(qnn.QuantLinear(inputs, outputs, bias=False, **_q(fmt)), outputs)


def _conv(fmt: str | None, inputs: int, outputs: int) -> Biased:
    conv = qnn.QuantConv2d(inputs, outputs, 3, padding=1, bias=False, **_q(fmt, conv=True))
    return Biased(conv, outputs, spatial=True)


def _q(fmt: str | None, conv: bool = False) -> dict[str, Any]:
    if fmt is None:
        return {"weight_quant": None, "input_quant": None}
    weight, act = quantizers(fmt, conv)
    return {"weight_quant": weight, "input_quant": act}


class MLP(nn.Module):
    def __init__(self, fmt: str | None = None, hidden: int = 64) -> None:
        super().__init__()
        self.fc1, self.fc2 = _linear(fmt, 64, hidden), _linear(fmt, hidden, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.relu(self.fc1(images.flatten(1))))

    def hardware_program(self, net: Any) -> Any:
        """The forward pass in hardware terms (models/_network.py): both layers on the array."""
        x = net.quantize("fc1", net.host("flatten", lambda images: images.flatten(1), net.images))
        return net.layer("fc2", net.layer("fc1", x, relu=True, into="fc2"))


class CNN(nn.Module):
    def __init__(self, fmt: str | None = None) -> None:
        super().__init__()
        self.conv1, self.conv2 = _conv(fmt, 1, 32), _conv(fmt, 32, 16)
        self.fc = _linear(fmt, 16 * 4 * 4, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(images))
        x = nn.functional.avg_pool2d(torch.relu(self.conv2(x)), 2)
        return self.fc(x.flatten(1))

    def hardware_program(self, net: Any) -> Any:
        """The forward pass in hardware terms: the convolutions (im2col on the host) and the
        classifier on the array; the pooling between them on the host."""
        x = net.layer("conv1", net.quantize("conv1", net.images), relu=True, into="conv2")
        pooled = net.host("avg_pool2d 2x2, flatten", lambda y: nn.functional.avg_pool2d(y, 2).flatten(1),
                          net.layer("conv2", x, relu=True))  # fmt: skip
        return net.layer("fc", net.quantize("fc", pooled))


class Transformer(nn.Module):
    """The 8 image rows as 8 tokens of 8 pixels; one attention head, one FFN, mean pooling."""

    def __init__(self, fmt: str | None = None, width: int = 32) -> None:
        super().__init__()
        self.embed = _linear(fmt, 8, width)
        self.position = nn.Parameter(torch.zeros(8, width))
        square = [_linear(fmt, width, width) for _ in range(4)]
        self.query, self.key, self.value, self.out = square
        self.norm1, self.norm2 = nn.LayerNorm(width), nn.LayerNorm(width)
        self.ffn1, self.ffn2 = _linear(fmt, width, 2 * width), _linear(fmt, 2 * width, width)
        self.head = _linear(fmt, width, 10)
        self.width = width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(images[:, 0]) + self.position  # (batch, 8, width)
        q, k, v = self.query(tokens), self.key(tokens), self.value(tokens)
        attention = torch.softmax(q @ k.transpose(1, 2) / self.width**0.5, dim=-1)
        tokens = self.norm1(tokens + self.out(attention @ v))
        tokens = self.norm2(tokens + self.ffn2(torch.relu(self.ffn1(tokens))))
        return self.head(tokens.mean(dim=1))


def build(model: str, fmt: str | None = None) -> nn.Module:
    """A fresh model (`mlp`, `cnn`, `transformer`), float or quantized to `fmt`."""
    classes = {"mlp": MLP, "cnn": CNN, "transformer": Transformer}
    if model not in classes:
        raise ValueError(f"unknown model {model!r}; available: {', '.join(MODELS)}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return classes[model](fmt)
