"""Any float PyTorch model to a Brevitas-quantized one, through Brevitas' own layer replacement.

`quantize` deep-copies the model and swaps every `nn.Linear`, `nn.Conv1d` and `nn.Conv2d` (exact
classes: a subclass may override `forward`, and `nn.MultiheadAttention`'s projection never calls its
own) for Brevitas' `QuantLinear` / `QuantConv1d` / `QuantConv2d` with the format's weight and input
quantizers, by `brevitas.graph.quantize.layerwise_quantize`. That walks modules, not an FX graph, so
models that cannot be traced work too. Biases stay float (added after the quantized product, as the
hardware does). Formats with per-tensor activation scales then calibrate them on the given inputs.

MX formats group 32 inputs along the features of a linear layer and the channels of a convolution;
where a layer's width is not a multiple of 32 Brevitas zero-pads the last group (a short block with
the same shared scale rule), so every layer width works.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ._quantizers import quantizers, scheme

with warnings.catch_warnings():  # brevitas.graph imports the deprecated brevitas.fx
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn
    from brevitas.graph.calibrate import calibration_mode
    from brevitas.graph.quantize import layerwise_quantize
    from brevitas.quant_tensor import _unpack_quant_tensor

# float class -> (Brevitas class, quantizers are the convolution's)
QUANTIZED: dict[type[nn.Module], tuple[type[nn.Module], bool]] = {
    nn.Linear: (qnn.QuantLinear, False),
    nn.Conv1d: (qnn.QuantConv1d, True),
    nn.Conv2d: (qnn.QuantConv2d, True),
}


class _FloatBiasAfter:
    """Adds the float bias after the quantized product instead of inside it: with per-row input
    scales (OliVe, posits) Brevitas derives an output zero point from bias / output scale, and those
    shapes do not broadcast. The sum is the same as Brevitas' own float-bias path."""

    def inner_forward_impl(self, x: Any, quant_weight: Any, quant_bias: torch.Tensor | None) -> torch.Tensor:
        out = _unpack_quant_tensor(super().inner_forward_impl(x, quant_weight, None))  # type: ignore[misc]
        if quant_bias is None:
            return out
        channel_axis = -1 if isinstance(self, nn.Linear) else 1
        shape = [1] * out.dim()
        shape[channel_axis] = -1
        return out + _unpack_quant_tensor(quant_bias).view(shape)


# same names, parameters and state dict keys as Brevitas' classes (isinstance still holds)
_FLOAT_BIAS_AFTER: dict[type[nn.Module], type[nn.Module]] = {
    cls: type(cls.__name__, (_FloatBiasAfter, cls), {"__module__": __name__}) for cls, _ in QUANTIZED.values()
}


class _Root(nn.Module):
    """Holds the model as a child: Brevitas replaces children, so a bare `nn.Linear` model works too."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


def quantize(model: nn.Module, fmt: str, calibration: np.ndarray, batch: int = 256) -> nn.Module:
    """A copy of `model` with every Linear / Conv1d / Conv2d quantized to `fmt` (a `models.scheme`
    name), activation scales calibrated on `calibration` (float32 model inputs) when the format has
    per-tensor ones; in eval mode. `model` itself is left as it was."""
    s = scheme(fmt)  # unknown names fail here, with the list of names
    if batch < 1:
        raise ValueError(f"batch must be positive, got {batch}")
    if _count(model) == 0:
        names = ", ".join(f"nn.{cls.__name__}" for cls in QUANTIZED)
        raise ValueError(f"{type(model).__name__} has no layer to quantize: quantize replaces {names} (exact classes)")
    inputs = np.asarray(calibration, dtype=np.float32)
    if s.calibrated and len(inputs) == 0:
        raise ValueError(f"{fmt} calibrates per-tensor activation scales: calibration needs at least one input")
    root = _Root(copy.deepcopy(model))
    quantized = layerwise_quantize(root, compute_layer_map=_layer_map(fmt, s.per_row)).model
    quantized.eval()  # calibration must not move batch-norm statistics or run dropout
    if s.calibrated:
        _calibrate(quantized, inputs, batch)
    return quantized.eval()


def _count(model: nn.Module) -> int:
    return sum(type(module) in QUANTIZED for module in model.modules())


def _layer_map(fmt: str, per_row: bool) -> dict[type[nn.Module], tuple[type[nn.Module], dict[str, Any]]]:
    layer_map = {}
    for float_class, (quant_class, conv) in QUANTIZED.items():
        weight_quant, input_quant = quantizers(fmt, conv=conv)
        new_class = _FLOAT_BIAS_AFTER[quant_class] if per_row else quant_class
        layer_map[float_class] = (
            new_class,
            {"weight_quant": weight_quant, "input_quant": input_quant, "bias_quant": None},
        )
    return layer_map


def _calibrate(model: nn.Module, inputs: np.ndarray, batch: int) -> None:
    device = next(model.parameters()).device
    with torch.no_grad(), calibration_mode(model), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # as in _train: Brevitas' quant tensors warn on some torch functions
        for start in range(0, len(inputs), batch):
            model(torch.from_numpy(inputs[start : start + batch]).to(device))
