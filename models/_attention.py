"""The matrix products inside Brevitas' attention modules (q·kᵀ and attention·v).

`QuantScaledDotProductAttention` and `QuantMultiheadAttention` each compute two batched products
with their own activation quantizers (QuantIdentity modules) on both operands:
- `attention.qk`: `q_scaled_quant(q / sqrt(d)) @ k_transposed_quant(kᵀ)`, consumed (mask added) by
  `softmax_input_quant`;
- `attention.av`: `attn_output_weights_quant(softmax) @ v_quant(v)`, consumed by `sdpa_output_quant`
  (SDPA) or, transposed to (L, N, E), by `out_proj` (MHA).
A batched product (batch, heads, L, d) @ (batch, heads, d, S) is not one GEMM with a shared B
operand, so it is captured as one plain GEMM per (batch, head) slice: `capture_attention_slices`.
`capture_attention` returns the first slice only, for callers that take one Product per layer.

The operands are read from the QuantTensors the quantizers' proxies (`<quantizer>.act_quant`)
return during one forward pass, i.e. the very tensors Brevitas multiplies. The reference is
Brevitas' own product:
- av: the input of its consumer (sdpa_output_quant / out_proj), which is the product itself;
- qk: the mask is added to the product before anything can be hooked (SDPA adds it in place, MHA
  fuses it into `baddbmm`), so the product is recomputed with Brevitas' own operator (`@` for SDPA,
  `torch.bmm` for MHA) on the exact tensors it multiplied: bit-identical to what it computed (with
  no mask this equals the softmax input, the tests check it; with a mask, MHA never forms the bare
  product and this is the product its `baddbmm` adds the mask to).
The first call of the attention module is the one captured (and replaced by
`forward_with_attention_product`); dropout must be off (SDPA's `dropout_p` applies even in eval).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._discover import Product, forward
from ._discover import _quantizer as _proxy_name
from ._operand import Unmappable, read

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn

ATTENTION_LAYERS: tuple[type, ...] = (qnn.QuantScaledDotProductAttention, qnn.QuantMultiheadAttention)
KINDS = ("attention.qk", "attention.av")


@dataclass(frozen=True)
class _Roles:
    """Which QuantIdentity attributes of the attention module make A and B, and which module consumes the product."""

    a: str
    b: str
    consumer: str


def _roles(module: nn.Module, kind: str) -> _Roles:
    if kind == "attention.qk":
        return _Roles("q_scaled_quant", "k_transposed_quant", "softmax_input_quant")
    consumer = "out_proj" if isinstance(module, qnn.QuantMultiheadAttention) else "sdpa_output_quant"
    return _Roles("attn_output_weights_quant", "v_quant", consumer)


def attention_products(model: nn.Module) -> dict[str, tuple[nn.Module, str]]:
    """Product name -> (attention module, kind) for both products of every Brevitas attention module,
    quantized or not (`capture_attention` says why an unquantized one cannot map)."""
    found: dict[str, tuple[nn.Module, str]] = {}
    for name, module in model.named_modules():
        if isinstance(module, ATTENTION_LAYERS):
            for kind in KINDS:
                suffix = kind.split(".")[1]
                found[f"{name}.{suffix}" if name else suffix] = (module, kind)
    return found


@dataclass
class _Seen:
    """What one forward pass showed of a product (first call of the module only)."""

    a: Any = None  # QuantTensor (or Tensor when unquantized) from the A quantizer's proxy
    b: Any = None
    consumer: torch.Tensor | None = None  # the consumer's input, before any replacement


def _value(x: Any) -> torch.Tensor:
    return x.value if hasattr(x, "value") else x


def _batched(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The av consumer's input -> (slices, L, N)."""
    if isinstance(module, qnn.QuantMultiheadAttention):
        # out_proj's input: bmm's (batch·heads, L, d), transposed and viewed as (L, batch, heads·d)
        length, batch, heads = x.shape[0], x.shape[1], module.num_heads
        return x.reshape(length, batch, heads, -1).permute(1, 2, 0, 3).reshape(batch * heads, length, -1)
    return x.reshape(-1, *x.shape[-2:])


def _unbatched(module: nn.Module, product: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(slices, L, N) -> the av consumer's layout of `like` (inverse of `_batched`)."""
    if isinstance(module, qnn.QuantMultiheadAttention):
        length, batch = like.shape[0], like.shape[1]
        heads, d = module.num_heads, product.shape[-1]
        return product.reshape(batch, heads, length, d).permute(2, 0, 1, 3).reshape(like.shape)
    return product.reshape(like.shape)


def _product_of(module: nn.Module, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Brevitas' own product of the two quantized operands (same operator, so bit-identical)."""
    if isinstance(module, qnn.QuantMultiheadAttention):
        return torch.bmm(a, b)
    return a @ b


def _observe(module: nn.Module, kind: str, seen: _Seen,
             replace: Callable[[torch.Tensor], torch.Tensor] | None = None) -> list[Any]:  # fmt: skip
    """Hooks that record the operands and the consumer's input of the module's first call,
    and optionally replace that input (`replace(observed) -> new`)."""
    roles = _roles(module, kind)

    def keep(slot: str) -> Callable[..., None]:
        def hook(_m: nn.Module, _args: Any, out: Any) -> None:
            if getattr(seen, slot) is None:
                setattr(seen, slot, out)

        return hook

    def consume(_m: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if seen.consumer is not None:
            return None
        seen.consumer = _value(args[0]).detach().clone()
        return None if replace is None else (replace(seen.consumer), *args[1:])

    return [getattr(module, roles.a).act_quant.register_forward_hook(keep("a")),
            getattr(module, roles.b).act_quant.register_forward_hook(keep("b")),
            getattr(module, roles.consumer).register_forward_pre_hook(consume)]  # fmt: skip


@contextmanager
def _hooked(module: nn.Module, kind: str, seen: _Seen,
            replace: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Iterator[None]:  # fmt: skip
    handles = _observe(module, kind, seen, replace)
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()


def _check_quantized(module: nn.Module, kind: str, name: str) -> None:
    """Both operands need a quantizer: the arrays multiply codes."""
    roles = _roles(module, kind)
    for role, attribute in (("A", roles.a), ("B", roles.b)):
        if not getattr(module, attribute).act_quant.is_quant_enabled:
            raise Unmappable(f"attention product {name!r}: its {role} operand is not quantized "
                             f"({type(module).__name__}.{attribute} has no quantizer; pass "
                             f"{attribute}=Int8ActPerTensorFloat or another quantizer): the arrays multiply codes, "
                             "so both operands need one")  # fmt: skip


def _run(model: nn.Module, module: nn.Module, kind: str, inputs: np.ndarray, name: str, seen: _Seen,
         replace: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Any:  # fmt: skip
    """The model's output for `inputs`, with the product's operands and consumer input recorded in `seen`
    (which `replace` may read: the operands are quantized before the consumer runs)."""
    with _hooked(module, kind, seen, replace):
        out = forward(model, inputs)
    if seen.a is None or seen.b is None or seen.consumer is None:
        raise Unmappable(f"attention product {name!r}: the model's forward pass never called this attention module")
    return out


def _reference(module: nn.Module, kind: str, seen: _Seen) -> torch.Tensor:
    """(slices, L, N) float32: the product Brevitas computed (see the module docstring)."""
    if kind == "attention.av":
        return _batched(module, seen.consumer)
    with torch.no_grad():
        product = _product_of(module, _value(seen.a).detach(), _value(seen.b).detach())
    return product.reshape(-1, *product.shape[-2:])


def _heads(module: nn.Module, seen: _Seen) -> int:
    """Heads per batch element, to name the slices (b, h)."""
    if isinstance(module, qnn.QuantMultiheadAttention):
        return int(module.num_heads)
    shape = _value(seen.a).shape
    return int(shape[-3]) if len(shape) >= 4 else 1


def _slice_layout(index: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda t: t.reshape(-1, *t.shape[-2:])[index]


def _quantizer(module: nn.Module, attribute: str) -> str:
    return f"{attribute}: {_proxy_name(getattr(module, attribute).act_quant)}"


def capture_attention_slices(model: nn.Module, name: str, found: tuple[nn.Module, str],
                             inputs: np.ndarray) -> list[Product]:  # fmt: skip
    """Run `inputs` through `model` once; one Product per (batch, head) slice of the attention product
    `name` (a key of `attention_products`), each a plain GEMM: (L, d) @ (d, S) for qk, (L, S) @ (S, dv) for av."""
    module, kind = found
    _check_quantized(module, kind, name)
    roles = _roles(module, kind)
    seen = _Seen()
    _run(model, module, kind, inputs, name, seen)
    reference = _reference(module, kind, seen).float().numpy()
    heads = _heads(module, seen)
    products = []
    for index in range(reference.shape[0]):
        label = f"{name}[b={index // heads},h={index % heads}]"
        try:
            a = read(seen.a, _slice_layout(index), 1, f"{label} A ({_quantizer(module, roles.a)})")
            b = read(seen.b, _slice_layout(index), 0, f"{label} B ({_quantizer(module, roles.b)})")
        except Unmappable as error:
            raise Unmappable(str(error)) from None
        shape = tuple(reference[index].shape)
        products.append(Product(label, kind, a, b, None, None, "none", reference[index], shape,
                                _reshaper(shape)))  # fmt: skip
    return products


def _reshaper(shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    return lambda product: product.reshape(shape)


def capture_attention(model: nn.Module, name: str, found: tuple[nn.Module, str], inputs: np.ndarray) -> Product:
    """The first (batch 0, head 0) slice of `capture_attention_slices`: the one Product that single-product
    callers (models._discover.capture, describe) take; the GEMM shape is every slice's."""
    return capture_attention_slices(model, name, found, inputs)[0]


def forward_with_attention_product(model: nn.Module, name: str, outputs: list[np.ndarray],
                                   inputs: np.ndarray) -> np.ndarray:  # fmt: skip
    """The model's output for `inputs` with the attention product `name` (first call of its module)
    replaced by `outputs`, one float (L, N) array per slice in `capture_attention_slices` order.

    av: the consumer receives the given product. qk: the mask Brevitas added is re-added as
    (softmax input - Brevitas' product): exact with no mask and with boolean / causal (0 / -inf)
    masks, and wherever the given product equals Brevitas'; elsewhere a finite float mask is
    added with one extra float32 rounding."""
    products = attention_products(model)
    if name not in products:
        raise ValueError(f"{name!r} is not an attention product of this model; available: {', '.join(products)}")
    module, kind = products[name]
    _check_quantized(module, kind, name)
    given = torch.from_numpy(np.stack([np.asarray(o, dtype=np.float32) for o in outputs]))
    seen = _Seen()

    def replace(observed: torch.Tensor) -> torch.Tensor:
        product = _reference(module, kind, seen)
        if given.shape != product.shape:
            raise ValueError(f"outputs for {name!r}: {tuple(given.shape)} given, {tuple(product.shape)} expected "
                             "(one (L, N) array per (batch, head) slice)")  # fmt: skip
        if kind == "attention.av":
            return _unbatched(module, given, observed)
        batched = observed.reshape(product.shape)
        masked = torch.where(given == product, batched, given + (batched - product))
        return masked.reshape(observed.shape)

    out = _run(model, module, kind, inputs, name, seen, replace)
    out = out[0] if isinstance(out, tuple | list) else out
    return _value(out).detach().float().numpy()
