"""A whole network in hardware terms: which layers run on the array, what runs on the host, and
Brevitas' own values at every layer boundary.

A model describes its forward pass as a *hardware program*, `hardware_program(net)`, written
against a `Network`: `net.quantize(layer, values)` (host: values to that layer's input codes),
`net.layer(name, codes, relu=, into=)` (the array and its output stage: codes in, codes out —
`into` names the layer whose input quantizer takes them, so the stage requantizes to its format
and scale; without `into` the stage adds the bias and keeps accumulator units, for the host), and
`net.host(what, function, *inputs)` (pooling, flatten, residual adds: float64 on the host, named
so the run can list them). The bundled MLP and CNN carry one; a user's model may define its own.

`brevitas_taps` runs the Brevitas model once and keeps, per quantized layer, its codes and scales
(`LayerCodes`), the integer codes its input quantizer produced, and its output with the bias.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

import numerics

from ._discover import _bias as layer_bias
from ._discover import _kind as layer_kind_of
from ._discover import _quant_weight as quant_weight_of
from ._discover import _structure_reason as structure_reason
from ._discover import gemm_layouts, quant_modules
from ._extract import LayerCodes, bundled_layers, layer_codes, layer_kind
from ._operand import Unmappable, format_name, read
from ._quantizers import scheme

INT32 = (-(1 << 31), (1 << 31) - 1)


@dataclass(frozen=True, eq=False)
class Codes:
    """Activations in a layer's layout as the values of their format's grid — integers for INT
    formats, the format's own values for minifloats: value = (integers - zero_point) * scale
    (`scale` broadcasts: a scalar, or one per channel on the layout's channel axis)."""

    integers: np.ndarray
    scale: np.ndarray
    zero_point: int = 0

    def values(self) -> np.ndarray:
        return (self.integers - self.zero_point).astype(np.float64) * self.scale


class Network(Protocol):
    images: np.ndarray

    def quantize(self, layer: str, values: Codes | np.ndarray) -> Codes: ...

    def layer(self, name: str, x: Codes, relu: bool = False, into: str | None = None) -> Codes: ...

    def host(self, what: str, function: Callable[..., torch.Tensor], *inputs: Codes | np.ndarray) -> np.ndarray: ...


@dataclass(frozen=True, eq=False)
class Tap:
    """One quantized layer in one Brevitas forward pass."""

    codes: LayerCodes
    input_units: np.ndarray  # the input quantizer's values / scale (integers for INT), in the layer's input layout
    input_scale: float  # per tensor
    input_format: str  # numerics name of the input codes' format
    weight_format: str
    output: np.ndarray  # float32, the layer's output with its bias (before any activation), layer layout
    bias: np.ndarray  # float64 (N,)

    @property
    def weight_scale(self) -> np.ndarray:
        return np.asarray(self.codes.weight_scale, dtype=np.float64).reshape(-1)

    @property
    def accumulator_scale(self) -> np.ndarray:
        """(N,) the value of one accumulator unit per output channel: input scale x weight scale."""
        return self.input_scale * self.weight_scale * np.ones(self.bias.shape)


def hardware_program(model: nn.Module) -> Callable[[Network], Codes]:
    """The model's `hardware_program` method, or a clear error."""
    program = getattr(model, "hardware_program", None)
    if not callable(program):
        raise ValueError(f"{type(model).__name__} has no hardware_program(net) method: a whole-network run needs "
                         "the model's forward pass in hardware terms (the bundled mlp and cnn have one; see "
                         "models/_network.py)")  # fmt: skip
    return program


def brevitas_taps(model: nn.Module, fmt: str | None, images: np.ndarray) -> tuple[dict[str, Tap], np.ndarray]:
    """Every quantized layer's `Tap` and the logits, from one Brevitas forward pass over `images`:
    the bundled models' layers (`fmt` names their format) and any stock Brevitas QuantLinear /
    QuantConv2d (formats, scales and bias read from its own quantized tensors)."""
    taps: dict[str, Tap] = {}
    hooks = []
    modules = dict(model.named_modules())
    bundled = bundled_layers(model)
    for name in bundled:
        if fmt is None:
            raise ValueError(f"layer {name!r} is a bundled model's layer: its format must be given")
        hooks += _bundled_hooks(model, modules[name], name, fmt, taps)
    for name, module in quant_modules(model).items():
        if not any(name == f"{b}.layer" for b in bundled):
            hooks.append(module.register_forward_hook(functools.partial(_stock_tap, name=name, taps=taps)))
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            logits = model(torch.from_numpy(images))
    finally:
        for hook in hooks:
            hook.remove()
    return taps, (logits.value if hasattr(logits, "value") else logits).numpy()


def _bundled_hooks(model: nn.Module, biased: nn.Module, name: str, fmt: str, taps: dict[str, Tap]) -> list[Any]:
    seen: dict[str, Any] = {}

    def inner(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        seen["x"], seen["product"] = inputs[0].detach(), output.detach()

    def outer(module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        quant_layer = module.layer
        codes = layer_codes(quant_layer, name, layer_kind(model, name), fmt, seen["x"], seen["product"])
        quant_input = quant_layer.input_quant(seen["x"])
        s = scheme(fmt)
        scale = _tensor_scale(name, quant_input)
        taps[name] = Tap(codes, _units(quant_input, scale, s.activation), scale, s.activation, s.weight,
                         output.detach().numpy(), module.bias.detach().double().numpy())  # fmt: skip

    return [biased.layer.register_forward_hook(inner), biased.register_forward_hook(outer)]


def _stock_tap(module: nn.Module, inputs: tuple[Any, ...], output: Any, *, name: str, taps: dict[str, Tap]) -> None:
    """A stock Brevitas layer's tap: its operands read as bring-your-own-model reads them."""
    if reason := structure_reason(module):
        raise Unmappable(f"layer {name!r}: {reason}")
    x = inputs[0]
    quant_input = module.input_quant(x) if module.input_quant.is_quant_enabled else x
    quant_weight = quant_weight_of(module, quant_input)
    kind = layer_kind_of(module)
    if kind not in ("linear", "conv2d"):
        raise Unmappable(f"layer {name!r}: a whole-network run maps linear and 2-D convolution layers, not {kind}")
    rows, columns = gemm_layouts(module, kind)
    a = read(quant_input, rows, 1, f"layer {name!r} input")
    b = read(quant_weight, columns, 0, f"layer {name!r} weight")
    for operand, what in ((a, "input"), (b, "weight")):
        if not isinstance(operand.format, numerics.IntFormat | numerics.Minifloat) or operand.zero_point:
            raise Unmappable(f"layer {name!r}: its {what} is {operand.description}; a whole-network run takes INT "
                             "operands without zero points or minifloats")  # fmt: skip
    bias = layer_bias(module, quant_input, quant_weight, a, b)[0]
    value = (output.value if hasattr(output, "value") else output).detach()
    channels = value.shape[-1] if kind == "linear" else value.shape[1]
    flat = value.permute(0, 2, 3, 1).reshape(-1, channels) if kind == "conv2d" else value.reshape(-1, channels)
    codes = LayerCodes(name, format_name(a.format), "conv" if kind == "conv2d" else "linear", a.codes, b.codes,
                       np.asarray(a.scale, np.float32), np.asarray(b.scale, np.float32), flat.numpy(),
                       tuple(value.shape))  # fmt: skip
    scale = _tensor_scale(name, quant_input)
    taps[name] = Tap(codes, _units(quant_input, scale, format_name(a.format)), scale, format_name(a.format),
                     format_name(b.format), value.numpy(),
                     np.zeros(channels) if bias is None else np.asarray(bias, np.float64))  # fmt: skip


def _units(quant_input: Any, scale: float, fmt: str) -> np.ndarray:
    """The quantized input / its scale on the format's grid: Brevitas' integers for INT formats
    (`.int()`), a minifloat's values re-read from the float tensor (value / scale, rounded to the
    nearest value of the format: Brevitas' float32 product may sit an ulp off the grid)."""
    resolved = numerics.get(fmt)
    if isinstance(resolved, numerics.IntFormat):
        return quant_input.int().detach().numpy().astype(np.int64)
    ratio = quant_input.value.detach().double().numpy() / scale
    return resolved.decode(resolved.encode(ratio, saturate=True)).astype(np.float64)


def _tensor_scale(name: str, quant_input: Any) -> float:
    scale = quant_input.scale.detach().double().numpy()
    if scale.size != 1:
        raise Unmappable(f"layer {name!r}: a whole-network run takes per-tensor activation scales, got {scale.size}")
    return float(scale.reshape(()))


def integer_biases(model: nn.Module, images: np.ndarray, fmt: str) -> None:
    """Put every bundled layer's bias on its accumulator grid (input scale x weight scale), as an
    int32 bias quantizer (Brevitas' Int32Bias) would: the stored bias is then exactly an integer
    number of accumulator units, which the output stage adds."""
    taps, _ = brevitas_taps(model, fmt, images)
    modules = dict(model.named_modules())
    with torch.no_grad():
        for name, tap in taps.items():
            units = np.clip(np.rint(tap.bias / tap.accumulator_scale), *INT32)
            modules[name].bias.copy_(torch.from_numpy(units * tap.accumulator_scale))
