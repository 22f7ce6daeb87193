"""Extraction: from a Brevitas model, one layer's codes, scales, formats and Brevitas' own output.

Every quantized layer becomes one matrix product A (M, K) @ B (K, N), the shape hardware runs:
a linear layer's input rows (all leading axes flattened: samples, tokens) against its transposed
weight; a convolution through im2col, one row per output pixel and K ordered (kernel row, kernel
column, input channel) so that MX blocks along the channels stay contiguous along K. The codes
are what hardware consumes: INT and minifloat layers give integer / grid codes with float32
scales (value = decode(code) * scale, per tensor, per output channel, or per row); MX layers give
numerics' MX encodings along K; OliVe layers give pair encodings (A along K, B along N) whose
integer grid the array multiplies, their scales applied outside. `brevitas_output` is the
layer's output as Brevitas computes it in float32 (bias excluded: it is added after the product,
outside the array), laid out like the product; `to_layer` folds a product back to the layer's
output layout.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

import numerics

from ._discover import gemm_layouts
from ._nets import Biased
from ._quantizers import scheme


@dataclass(frozen=True)
class LayerCodes:
    name: str
    format: str
    kind: str  # "linear" or "conv"
    input_codes: Any  # (M, K) codes, or an MX / OliVe encoding
    weight_codes: Any  # (K, N) codes, or an MX / OliVe encoding
    input_scale: np.ndarray  # float32: () per tensor, (M, 1) per row; 1.0 for MX (the blocks carry it)
    weight_scale: np.ndarray  # float32: () per tensor or (N,) per output channel; 1.0 for MX
    brevitas_output: np.ndarray  # (M, N) float32
    output_shape: tuple[int, ...]  # the layer's output shape

    def to_layer(self, product: np.ndarray) -> np.ndarray:
        """An (M, N) product in the layer's output layout (conv: (images, channels, rows, cols))."""
        if self.kind == "conv":
            n, c, h, w = self.output_shape
            return product.reshape(n, h, w, c).transpose(0, 3, 1, 2)
        return product.reshape(self.output_shape)


def bundled_layers(model: nn.Module) -> list[str]:
    """Names of a bundled model's quantized layers (linear and convolution), in definition order."""
    return [name for name, module in model.named_modules() if isinstance(module, Biased)]


def layer_kind(model: nn.Module, layer: str) -> str:
    modules = dict(model.named_modules())
    names = bundled_layers(model)
    if layer not in names:
        raise ValueError(f"layer {layer!r} is not a quantized layer of this model; available: {', '.join(names)}")
    return "conv" if modules[layer].spatial else "linear"


def extract(model: nn.Module, layer: str, images: np.ndarray, fmt: str) -> LayerCodes:
    """Run `images` through `model`, capture the input and output of layer `layer` (a name from
    `bundled_layers`), and quantize that input and the weight exactly as Brevitas does."""
    kind = layer_kind(model, layer)
    quant_layer = dict(model.named_modules())[layer].layer
    captured: list[tuple[torch.Tensor, torch.Tensor]] = []

    def keep(_module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        captured.append((inputs[0].detach(), output.detach()))

    hook = quant_layer.register_forward_hook(keep)
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model(torch.from_numpy(images))
        finally:
            hook.remove()
        x, output = captured[0]
        return layer_codes(quant_layer, layer, kind, fmt, x, output)


def layer_codes(quant_layer: nn.Module, layer: str, kind: str, fmt: str, x: torch.Tensor,
                output: torch.Tensor) -> LayerCodes:  # fmt: skip
    """The codes of one call of `quant_layer` (the Brevitas layer inside a bundled `Biased`) on
    input `x`, which gave `output`."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quant_input, quant_weight = quant_layer.input_quant(x), quant_layer.quant_weight()
    s = scheme(fmt)
    if kind == "conv":
        _check_conv(quant_layer, s, layer)
        brevitas = output.permute(0, 2, 3, 1).reshape(-1, output.shape[1])
        to_rows = gemm_layouts(quant_layer, "conv2d")[0]  # the reader's im2col: one layout for both paths
    else:
        brevitas = output.reshape(-1, output.shape[-1])
        to_rows = _flatten_rows

    def weight_columns(w: torch.Tensor) -> np.ndarray:  # (K, N), K ordered like the input rows
        return (w.permute(0, 2, 3, 1) if kind == "conv" else w).reshape(w.shape[0], -1).T.double().numpy()

    common = {"name": layer, "format": fmt, "kind": kind, "brevitas_output": brevitas.numpy(),
              "output_shape": tuple(output.shape)}  # fmt: skip
    a_fmt, w_fmt = numerics.get(s.activation), numerics.get(s.weight)
    one = np.array(np.float32(1.0))
    if isinstance(a_fmt, numerics.BlockFormat):
        a = a_fmt.encode(to_rows(quant_input.value).double().numpy(), axis=1)
        b = w_fmt.encode(weight_columns(quant_weight.value), axis=0)
        return LayerCodes(input_codes=a, weight_codes=b, input_scale=one, weight_scale=one, **common)
    if isinstance(a_fmt, numerics.OVPFormat):
        return _ovp_codes(a_fmt, quant_input, weight_columns(quant_weight.value), _scale(quant_weight), common)
    a = a_fmt.encode(to_rows(_grid(a_fmt, quant_input)).numpy())
    b = w_fmt.encode(weight_columns(_grid(w_fmt, quant_weight)))
    w_scale = quant_weight.scale.detach().numpy().astype(np.float32).reshape(-1)
    return LayerCodes(input_codes=a, weight_codes=b, input_scale=_scale(quant_input),
                      weight_scale=w_scale if s.per_channel else w_scale.reshape(()), **common)  # fmt: skip


def _grid(element: Any, quant: Any) -> torch.Tensor:
    """The quantized tensor on the element format's own grid (integers, minifloat or posit values)."""
    if isinstance(element, numerics.Posit):  # value / a power-of-two scale: exact
        return quant.value.detach().double() / quant.scale.detach().double()
    return (quant.int() if isinstance(element, numerics.IntFormat) else quant.minifloat()).double()


def _scale(quant: Any) -> np.ndarray:
    """() per tensor, (M, 1) per row."""
    scale = quant.scale.detach().numpy().astype(np.float32)
    return scale.reshape(()) if scale.size == 1 else scale.reshape(-1, 1)


def _flatten_rows(x: torch.Tensor) -> torch.Tensor:
    return x.reshape(-1, x.shape[-1])


def _check_conv(conv: nn.Module, s: Any, layer: str) -> None:
    if conv.groups != 1 or isinstance(conv.padding, str) or conv.padding_mode != "zeros":
        raise ValueError(f"layer {layer!r}: only ungrouped, zero-padded convolutions map to a matrix product")
    activation = s.activation
    if s.per_row:
        raise ValueError(f"layer {layer!r}: {activation} activations take one scale per row of a linear layer's "
                         f"input; convolutions are not mapped for {activation} (linear layers are)")  # fmt: skip
    block = numerics.get(activation)
    if isinstance(block, numerics.BlockFormat) and conv.in_channels % block.block_size:
        raise ValueError(f"layer {layer!r} has {conv.in_channels} input channels: {activation} blocks along the "
                         f"channels map to blocks along K only when the channels are a multiple of "
                         f"{block.block_size}")  # fmt: skip


def _ovp_codes(fmt: numerics.OVPFormat, quant_input: Any, weight: np.ndarray, w_scale: np.ndarray,
               common: dict[str, Any]) -> LayerCodes:  # fmt: skip
    """OliVe encodings with Brevitas' scales: A (M, K) pairs along K, one scale per row; B (K, N)
    pairs along N (the weight's output channels), one scale."""
    rows = replace(fmt, channel_axis=0)  # keeps every option of the format
    x = _flatten_rows(quant_input.value).double().numpy()
    input_scale = quant_input.scale.detach().numpy().astype(np.float32).reshape(-1, 1)
    a = rows.encode(x, axis=1, scale=input_scale.reshape(-1))
    b = fmt.encode(weight, axis=1, scale=w_scale)
    return LayerCodes(input_codes=a, weight_codes=b, input_scale=input_scale, weight_scale=w_scale, **common)
