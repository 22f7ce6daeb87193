"""Any Brevitas model's quantized matrix products: found, described, and captured as operands.

`describe(model, example)` lists every `QuantLinear`, `QuantConv1d` and `QuantConv2d` of any
`nn.Module` (and the products inside Brevitas' attention modules, see models/_attention.py) with
its GEMM shape per sample, its operand formats as read from the quantized tensors, its bias, and,
for a layer that cannot map, the reason. `capture(model, layer, inputs)` runs the model once and
returns the layer's `Product`: both operands as codes and scales for the arrays (im2col for
convolutions, one row per output position, K ordered (kernel position, input channel) so that
channel groups stay contiguous along K), the bias, and the framework's own output, bias
included. The model is used as given (eval mode, its own calibration).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
from torch import nn

from ._operand import Operand, Unmappable, format_name, read

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn


@dataclass(frozen=True)
class LayerInfo:
    """One quantized matrix product of a model, as discovery sees it."""

    name: str
    kind: str  # linear, conv1d, conv2d, attention.qk, attention.av, or the class name of an unmapped layer
    gemm: tuple[int, int, int] | None  # (M per sample, K, N); None when the example did not reach it
    input: str  # operand formats as read from the model
    weight: str
    bias: str  # "none", "float", or "int{b} in units of scale_in*scale_w (exact in the accumulator)"
    reason: str | None = None  # why it cannot map; None when it does
    formats: tuple[str, str] | None = None  # numerics names of the input and weight codes, for scripts
    zero_points: tuple[int, int] = (0, 0)  # subtracted at the array edge (per tensor)

    @property
    def mappable(self) -> bool:
        return self.reason is None

    @classmethod
    def of(cls, product: Product) -> LayerInfo:
        """A mappable layer's description from its captured product (one sample's GEMM)."""
        return cls(product.name, product.kind, product.gemm, product.a.description, product.b.description,
                   product.bias_description, None, (format_name(product.a.format), format_name(product.b.format)),
                   (product.a.zero_point, product.b.zero_point))  # fmt: skip


@dataclass(frozen=True)
class Product:
    """One layer as a matrix product A (M, K) @ B (K, N) plus bias, with the framework's output."""

    name: str
    kind: str
    a: Operand
    b: Operand
    bias: np.ndarray | None  # (N,) float32: the bias the framework adds (None: no bias)
    bias_codes: np.ndarray | None  # (N,) int64 in units of a.scale * b.scale when the bias is integer-quantized
    bias_description: str
    reference: np.ndarray  # (M, N) float32: the framework's output of the layer, bias included
    output_shape: tuple[int, ...]
    fold: Callable[[np.ndarray], np.ndarray]  # an (M, N) result -> the layer's output layout

    @property
    def gemm(self) -> tuple[int, int, int]:
        m, k = self.a.values.shape
        return m, k, int(self.b.values.shape[1])


MATRIX_LAYERS: tuple[type, ...] = (qnn.QuantLinear, qnn.QuantConv1d, qnn.QuantConv2d)
UNMAPPED_LAYERS: tuple[type, ...] = (qnn.QuantConv3d, qnn.QuantConvTranspose1d, qnn.QuantConvTranspose2d,
                                     qnn.QuantConvTranspose3d)  # fmt: skip


def _kind(module: nn.Module) -> str:
    if isinstance(module, qnn.QuantLinear):
        return "linear"
    return "conv1d" if isinstance(module, qnn.QuantConv1d) else "conv2d"


def quant_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Name -> module of every quantized matrix-product layer (mapped kinds and known unmapped ones)."""
    return {name: module for name, module in model.named_modules()
            if isinstance(module, MATRIX_LAYERS + UNMAPPED_LAYERS)}  # fmt: skip


def layers(model: nn.Module) -> list[str]:
    """Names of the model's quantized matrix-product layers, in definition order."""
    from ._attention import attention_products

    return [*quant_modules(model), *attention_products(model)]


def _structure_reason(module: nn.Module) -> str | None:
    """Why a layer cannot map, from its structure alone (None: it may map)."""
    if isinstance(module, UNMAPPED_LAYERS):
        return f"{type(module).__name__} is not mapped (linear, 1-D and 2-D convolutions are)"
    if isinstance(module, qnn.QuantConv1d | qnn.QuantConv2d):
        if module.groups != 1:
            return (f"groups={module.groups}: a grouped (or depthwise) convolution is {module.groups} separate "
                    "products with their own inputs; only groups=1 maps to one matrix product")  # fmt: skip
        if module.padding_mode != "zeros":
            return f"padding_mode={module.padding_mode!r}: only zero padding is im2col with zero codes"
    if module.output_quant.is_quant_enabled:
        return ("output_quant requantizes the layer's output inside the layer; the arrays deliver the product "
                "(requantization is a separate stage: put a QuantIdentity after the layer)")  # fmt: skip
    return None


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        model.train(was_training)


def forward(model: nn.Module, inputs: np.ndarray | torch.Tensor) -> Any:
    """The model's output for `inputs` in eval mode, warnings silenced, no gradients."""
    x = torch.from_numpy(inputs) if isinstance(inputs, np.ndarray) else inputs
    try:
        with _evaluating(model):
            out = model(x)
    except (Unmappable, ModelError):
        raise
    except Exception as error:  # the user's model failed on these inputs: their error, named, not ours
        raise ModelError(f"the model's forward pass failed on inputs of shape {tuple(x.shape)} (dtype {x.dtype}): "
                         f"{type(error).__name__}: {first_line(error)}") from error  # fmt: skip
    return out.value if hasattr(out, "value") else out


class ModelError(ValueError):
    """The user's model (its file, factory or forward pass) failed: a user error, with the cause."""


def first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else "(no message)"


def capture_slices(model: nn.Module, layer: str, inputs: np.ndarray) -> list[Product] | None:
    """A batched product (inside attention) as one Product per (sample, head); None for a layer
    that is one matrix product (see `capture`)."""
    from ._attention import attention_products, capture_attention_slices

    products = attention_products(model)
    return capture_attention_slices(model, layer, products[layer], inputs) if layer in products else None


def _capture_io(model: nn.Module, module: nn.Module, inputs: np.ndarray) -> tuple[Any, Any]:
    seen: list[tuple[Any, Any]] = []
    hook = module.register_forward_hook(lambda _m, args, out: seen.append((args[0], out)))
    try:
        forward(model, inputs)
    finally:
        hook.remove()
    if not seen:
        raise Unmappable("the model's forward pass never called this layer")
    if len(seen) > 1:
        raise Unmappable(f"the layer runs {len(seen)} times in one forward pass (a shared layer): its output cannot "
                         "be replaced call by call; give each use its own module")  # fmt: skip
    return seen[0]


def _bias(module: nn.Module, quant_input: Any, quant_weight: Any, a: Operand, b: Operand) -> tuple[Any, Any, str]:
    """(float32 values, integer codes or None, description) of the layer's bias."""
    if getattr(module, "bias", None) is None:
        return None, None, "none"
    if not module.bias_quant.is_quant_enabled:
        return module.bias.detach().float().numpy(), None, "float (added after the product)"
    quant = module.bias_quant(module.bias, quant_input, quant_weight)
    values = quant.value.detach().float().numpy()
    scale = quant.scale.detach().double().expand_as(quant.value).numpy()
    bits = int(quant.bit_width.item())
    product_scale = np.broadcast_to(np.float32(a.scale) * b.scale.astype(np.float32), values.shape)
    if a.scale.ndim == 0 and np.array_equal(scale, product_scale.astype(np.float64)):
        codes = quant.int().detach().to(torch.int64).numpy()
        return values, codes, f"int{bits} in units of scale_in*scale_w (exact in the accumulator)"
    return values, None, f"int{bits} with its own scale (added as float after the product)"


def capture(model: nn.Module, layer: str, inputs: np.ndarray) -> Product:
    """Run `inputs` through `model` and return layer `layer` (a name from `layers`) as a Product."""
    from ._attention import attention_products, capture_attention

    products = attention_products(model)
    if layer in products:
        return capture_attention(model, layer, products[layer], inputs)
    modules = quant_modules(model)
    if layer not in modules:
        names = ", ".join(layers(model)) or "none: the model has no Brevitas QuantLinear/QuantConv1d/QuantConv2d"
        raise ValueError(f"layer {layer!r} is not a quantized layer of this model; available: {names}")
    module = modules[layer]
    if reason := _structure_reason(module):
        raise Unmappable(f"layer {layer!r}: {reason}")
    x, out = _capture_io(model, module, inputs)
    with _evaluating(model):
        quant_input = module.input_quant(x) if module.input_quant.is_quant_enabled else x
        quant_weight = _quant_weight(module, quant_input)
    kind = _kind(module)
    rows, columns = gemm_layouts(module, kind)
    try:
        a = read(quant_input, rows, 1, f"layer {layer!r} input ({_quantizer(module.input_quant)})",
                 _bitfab_format(module.input_quant))  # fmt: skip
        b = read(quant_weight, columns, 0, f"layer {layer!r} weight ({_quantizer(module.weight_quant)})",
                 _bitfab_format(module.weight_quant))  # fmt: skip
        with _evaluating(model):
            bias, bias_codes, bias_description = _bias(module, quant_input, quant_weight, a, b)
    except Unmappable as error:
        raise Unmappable(str(error)) from None
    output = (out.value if hasattr(out, "value") else out).detach()
    channels = output.shape[-1] if kind == "linear" else output.shape[1]
    reference = output.reshape(-1, channels) if kind == "linear" else output.movedim(1, -1).reshape(-1, channels)
    shape = tuple(output.shape)
    return Product(layer, kind, a, b, bias, bias_codes, bias_description, reference.float().numpy(), shape,
                   _fold(kind, shape))  # fmt: skip


def _bitfab_format(proxy: Any) -> Any:
    """The numerics format of bitfab's own tensor quantizers (posits, OliVe) behind a proxy, else None."""
    from ._ovp_quant import OVPTensorQuant, PositTensorQuant

    tensor_quant = getattr(proxy, "tensor_quant", None)
    if tensor_quant is None:
        tensor_quant = getattr(getattr(proxy, "fused_activation_quant_proxy", None), "tensor_quant", None)
    return tensor_quant.format if isinstance(tensor_quant, OVPTensorQuant | PositTensorQuant) else None


def _quant_weight(module: nn.Module, quant_input: Any) -> Any:
    """The quantized weight; accumulator-aware (A2Q) quantizers need the quantized input for it."""
    quant_input = quant_input if hasattr(quant_input, "bit_width") else None
    return module.quant_weight(quant_input=quant_input)


def _quantizer(proxy: Any) -> str:
    """The quantizer's class name, as the user wrote it, when Brevitas kept it."""
    injector = getattr(proxy, "quant_injector", None)
    return getattr(injector, "__name__", type(proxy).__name__)


def _fold(kind: str, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    if kind == "linear":
        return lambda product: product.reshape(shape)
    return lambda product: np.moveaxis(product.reshape(shape[0], *shape[2:], shape[1]), -1, 1)


def gemm_layouts(module: nn.Module, kind: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], ...]:
    """(input -> A (M, K), weight -> B (K, N)) for the layer."""
    if kind == "linear":
        return (lambda x: x.reshape(-1, x.shape[-1])), (lambda w: w.T)
    spatial = 1 if kind == "conv1d" else 2
    kernel = tuple(module.kernel_size)
    stride, dilation = tuple(module.stride), tuple(module.dilation)
    padding = _padding(module, kernel, dilation, stride)

    def rows(x: torch.Tensor) -> torch.Tensor:
        if spatial == 1:
            x = x.unsqueeze(2)
        k2 = (1, *kernel) if spatial == 1 else kernel
        unfolded = nn.functional.unfold(x, k2, dilation=(1, *dilation) if spatial == 1 else dilation,
                                        padding=(0, *padding) if spatial == 1 else padding,
                                        stride=(1, *stride) if spatial == 1 else stride)  # fmt: skip
        n, c = x.shape[:2]
        positions = int(np.prod(kernel))
        return unfolded.reshape(n, c, positions, -1).permute(0, 3, 2, 1).reshape(-1, positions * c)

    def columns(w: torch.Tensor) -> torch.Tensor:  # (N, C, *kernel) -> (kernel..., C) per column
        return w.movedim(1, -1).reshape(w.shape[0], -1).T

    return rows, columns


def _padding(module: nn.Module, kernel: tuple[int, ...], dilation: tuple[int, ...],
             stride: tuple[int, ...]) -> tuple[int, ...]:  # fmt: skip
    """Explicit symmetric padding ('valid' and 'same' resolved as PyTorch does)."""
    padding = module.padding
    if padding == "valid":
        return (0,) * len(kernel)
    if padding == "same":
        totals = [d * (k - 1) for k, d in zip(kernel, dilation, strict=True)]
        if any(t % 2 for t in totals):
            raise Unmappable(f"padding='same' with an even kernel {kernel} pads asymmetrically; give explicit padding")
        return tuple(t // 2 for t in totals)
    return tuple(padding)


def describe(model: nn.Module, example: np.ndarray | None = None) -> list[LayerInfo]:
    """Every quantized matrix product of `model`: formats read from it, and why a layer cannot map.
    With `example` (a batch of inputs, one sample is enough) the GEMM shapes and the input formats
    are read from a real forward pass."""
    infos = []
    for name in layers(model):
        infos.append(_describe_one(model, name, example))
    return infos


def _describe_one(model: nn.Module, name: str, example: np.ndarray | None) -> LayerInfo:
    from ._attention import attention_products

    kind = attention_products(model).get(name, (None, ""))[1] or _kind_or_class(quant_modules(model)[name])
    if example is None:
        module = quant_modules(model).get(name)
        reason = _structure_reason(module) if module is not None else None
        weight = _weight_only_description(model, name) if module is not None and reason is None else "?"
        return LayerInfo(name, kind, None, "? (give an example input)", weight, "?", reason)
    try:
        product = capture(model, name, example[:1])
    except Unmappable as error:
        return LayerInfo(name, kind, None, "-", "-", "-", str(error))
    return replace(LayerInfo.of(product), name=name)


def _kind_or_class(module: nn.Module) -> str:
    return _kind(module) if isinstance(module, MATRIX_LAYERS) else type(module).__name__


def _weight_only_description(model: nn.Module, name: str) -> str:
    module = quant_modules(model)[name]
    try:
        with _evaluating(model):
            quant = _quant_weight(module, None)
        _, columns = gemm_layouts(module, _kind(module))
        return read(quant, columns, 0, f"layer {name!r} weight").description
    except Unmappable as error:
        return f"unmappable: {error}"


def forward_with(model: nn.Module, inputs: np.ndarray, replace: dict[str, np.ndarray]) -> np.ndarray:
    """The model's output with the named layers' outputs replaced (arrays in each layer's output
    layout): hardware in the loop. Everything else is computed by the model as usual."""
    from ._attention import attention_products

    products = attention_products(model)
    attention = {name: value for name, value in replace.items() if name in products}
    if len(attention) > 1 or (attention and len(replace) > 1):
        raise ValueError("replace one attention product at a time")
    if attention:
        from ._attention import forward_with_attention_product

        ((name, value),) = attention.items()
        return forward_with_attention_product(model, name, value, inputs)
    modules = quant_modules(model)
    hooks = []
    for name, value in replace.items():
        replacement = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))

        def swap(_module: nn.Module, _args: Any, out: Any, replacement: torch.Tensor = replacement) -> Any:
            if replacement.shape != (out.value if hasattr(out, "value") else out).shape:
                raise ValueError(f"replacement of shape {tuple(replacement.shape)} for an output of shape "
                                 f"{tuple((out.value if hasattr(out, 'value') else out).shape)}")  # fmt: skip
            return out.set(value=replacement) if hasattr(out, "set") else replacement

        hooks.append(modules[name].register_forward_hook(swap))
    try:
        return np.asarray(forward(model, inputs))
    finally:
        for hook in hooks:
            hook.remove()
