"""A bundled model with every quantized layer's matrix product computed by numerics with a chosen
accumulator: the accuracy a design with that accumulator reaches (the study of issue 15).

Each quantized layer's product is replaced, in one forward pass, by `numerics.matmul` over the
layer's own codes (MX: block scales inside; other formats: tensor / channel / row scales applied
after, as the hardware flow does), so a narrow or floating-point accumulator's rounding reaches
every later layer. With `ExactAccumulator` this is the exact-hardware model.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

import numerics

from ._extract import bundled_layers, layer_codes, layer_kind
from ._quantizers import scheme


def product_values(codes: Any, fmt: str, accumulator: numerics.Accumulator) -> np.ndarray:
    """A layer's (M, N) product as float64 values, from its codes with `accumulator` (MX and
    OliVe encodings carry their scales; other formats' scales are applied after)."""
    s = scheme(fmt)
    a, b = codes.input_codes, codes.weight_codes
    if isinstance(a, numerics.OVPEncoded):  # OliVe encodings carry their own scales and scale axes
        return numerics.matmul(a, b, a.format, b.format, accumulator).to_float64()
    values = numerics.matmul(a, b, s.activation, s.weight, accumulator).to_float64()
    if isinstance(a, numerics.BlockEncoded):
        return values
    with np.errstate(invalid="ignore", over="ignore"):
        return values * codes.input_scale.astype(np.float64) * codes.weight_scale.astype(np.float64)


def logits_with(model: nn.Module, fmt: str, images: np.ndarray,
                accumulator: numerics.Accumulator) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """The model's logits with every quantized layer's product from numerics (see the module), and
    which images met a NaN or an infinite sum on the way (an accumulator that overflowed): their
    products continue as 0 so the rest of the batch runs, and they count as wrong answers."""
    poisoned = np.zeros(len(images), bool)
    hooks = []
    for layer in bundled_layers(model):
        quant_layer = dict(model.named_modules())[layer].layer
        kind = layer_kind(model, layer)

        def replace(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor, *, name: str = layer,
                    kind: str = kind) -> torch.Tensor:  # fmt: skip
            codes = layer_codes(module, name, kind, fmt, inputs[0].detach(), output.detach())
            product = product_values(codes, fmt, accumulator)
            bad_rows = ~np.isfinite(product).all(axis=1)
            poisoned[np.flatnonzero(bad_rows) // (len(product) // len(images))] = True
            values = codes.to_layer(np.where(np.isfinite(product), product, 0.0))
            return torch.from_numpy(values.astype(np.float32))

        hooks.append(quant_layer.register_forward_hook(replace))
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model(torch.from_numpy(images)).numpy(), poisoned
    finally:
        for hook in hooks:
            hook.remove()


def accuracy_with(model: nn.Module, fmt: str, images: np.ndarray, labels: np.ndarray,
                  accumulator: numerics.Accumulator) -> float:  # fmt: skip
    """Test accuracy with every quantized product accumulated by `accumulator` (an image whose
    sums overflowed to Inf or NaN counts as wrong)."""
    logits, poisoned = logits_with(model, fmt, images, accumulator)
    return float(((logits.argmax(axis=1) == labels) & ~poisoned).mean())
