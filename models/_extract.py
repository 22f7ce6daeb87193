"""Extraction: from a Brevitas model, one layer's codes, scales, formats and Brevitas' own output.

The codes are what hardware consumes: for INT and minifloat layers the integer / grid codes of
the quantized input and weight with their float32 scales (value = decode(code) * scale); for MX
layers numerics' MX encodings (element codes plus E8M0 block scales along K). `brevitas_output`
is the layer's matrix product in float32 as Brevitas computes it (bias excluded: it is added
after the product, outside the array).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

import numerics

from ._nets import Biased


@dataclass(frozen=True)
class LayerCodes:
    name: str
    format: str
    input_codes: Any  # (M, K) codes, or an MX encoding along K
    weight_codes: Any  # (K, N) codes, or an MX encoding along K
    input_scale: np.ndarray  # float32 scale of the input (1.0 for MX: the blocks carry it)
    weight_scale: np.ndarray  # float32 scale per tensor () or per output channel (N,)
    brevitas_output: np.ndarray  # (M, N) float32


def linear_layers(model: nn.Module) -> list[str]:
    """Names of the model's quantized linear layers, in definition order (what `extract` takes)."""
    return [name for name, module in model.named_modules() if isinstance(module, Biased) and not module.spatial]


def extract(model: nn.Module, layer: str, images: np.ndarray, fmt: str) -> LayerCodes:
    """Run `images` through `model` and capture the input of linear layer `layer` (a name from
    `linear_layers`), then quantize it and the weight exactly as Brevitas does."""
    modules = dict(model.named_modules())
    names = linear_layers(model)
    if layer not in names:
        available = ", ".join(names)
        raise ValueError(f"layer {layer!r} is not a quantized linear layer of this model; available: {available}")
    quant_linear = modules[layer].layer
    captured: list[torch.Tensor] = []
    hook = quant_linear.register_forward_hook(lambda _m, inputs, _out: captured.append(inputs[0].detach()))
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model(torch.from_numpy(images))
        hook.remove()
        x = captured[0].reshape(-1, captured[0].shape[-1])
        quant_input, quant_weight = quant_linear.input_quant(x), quant_linear.quant_weight()
        output = nn.functional.linear(quant_input.value, quant_weight.value)
    element = numerics.get(fmt.removesuffix("_channel"))
    if isinstance(element, numerics.BlockFormat):
        a = element.encode(quant_input.value.double().numpy(), axis=1)
        b = element.encode(quant_weight.value.double().numpy().T, axis=0)
        one = np.float32(1.0)
        return LayerCodes(layer, fmt, a, b, np.array(one), np.array(one), output.numpy())
    a, s_a = _codes(element, quant_input)
    b, s_w = _codes(element, quant_weight)
    return LayerCodes(layer, fmt, a, b.T.copy(), s_a, s_w.reshape(-1), output.numpy())


def _codes(element: Any, quant: Any) -> tuple[np.ndarray, np.ndarray]:
    """Codes and float32 scale of a Brevitas quant tensor in `element`."""
    scale = quant.scale.detach().numpy().astype(np.float32)
    if isinstance(element, numerics.IntFormat):
        return element.encode(quant.int().double().numpy()), scale
    return element.encode(quant.minifloat().double().numpy()), scale
