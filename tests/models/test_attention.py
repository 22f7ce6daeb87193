"""Attention products: q·kᵀ and attention·v of stock Brevitas attention modules, captured per
(batch, head) slice as plain GEMMs whose codes and scales reproduce Brevitas' own product.

The exact product of the decoded grids times the float32 scales may differ from Brevitas' float32
matmul only by float32 rounding: |exact - brevitas| <= (K + 3) u sum_k |a_k b_k|, u = 2**-24
(K partial sums, two operand roundings and one final scaling; (K + 3) u << 1 here).
"""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pytest
import torch
from torch import nn

from models._attention import (
    attention_products,
    capture_attention,
    capture_attention_slices,
    forward_with_attention_product,
)
from models._discover import Product, capture, forward, layers
from models._operand import Unmappable

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn

BATCH, HEADS, LENGTH, SOURCE, DIM = 2, 2, 4, 5, 8


class Sdpa(nn.Module):
    """Scaled dot-product attention of one batch-first input (batch, 3, heads, S, d) holding q (its first
    L rows), k and v: L != S, so that the slices' GEMMs are not square."""

    def __init__(self, causal: bool = False, **quantizers: object) -> None:
        super().__init__()
        self.attention = qnn.QuantScaledDotProductAttention(**quantizers)
        self.causal = causal

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x[:, 0, :, :LENGTH], x[:, 1], x[:, 2], is_causal=self.causal)


class Mha(nn.Module):
    """Self-attention with Brevitas' stock quantizers on both operands of both products."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.attention = qnn.QuantMultiheadAttention(16, HEADS, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x, need_weights=False)[0]


def _sdpa_inputs() -> np.ndarray:
    return np.random.default_rng(0).normal(0, 0.5, (BATCH, 3, HEADS, SOURCE, DIM)).astype(np.float32)


def _mha_inputs() -> np.ndarray:
    return np.random.default_rng(1).normal(0, 1, (BATCH, LENGTH, 16)).astype(np.float32)


CASES = {"sdpa": (Sdpa, _sdpa_inputs), "causal": (lambda: Sdpa(causal=True), _sdpa_inputs), "mha": (Mha, _mha_inputs)}


@cache
def _captured(case: str, product: str) -> tuple[nn.Module, np.ndarray, list[Product]]:
    """(model, inputs, slices), shared by the tests (capture leaves the model unchanged)."""
    make, inputs = CASES[case]
    model, x = make(), inputs()
    name = f"attention.{product}"
    return model, x, capture_attention_slices(model, name, attention_products(model)[name], x)


def _check_product(p: Product) -> None:
    for operand in (p.a, p.b):
        assert np.array_equal((operand.decoded() * operand.scale).astype(np.float32), operand.values)
    a, b = p.a.dequantized(), p.b.dequantized()
    exact = (p.a.decoded() @ p.b.decoded()) * (p.a.scale * p.b.scale)
    k = a.shape[1]
    bound = (k + 3) * 2.0**-24 * (np.abs(a) @ np.abs(b))
    assert p.reference.dtype == np.float32 and p.reference.shape == p.output_shape
    assert np.all(np.abs(exact.astype(np.float32) - p.reference.astype(np.float64)) <= bound)
    assert p.bias is None and p.bias_codes is None and p.bias_description == "none"
    assert np.array_equal(p.fold(p.reference.reshape(p.gemm[0], p.gemm[2])), p.reference)


@pytest.mark.parametrize("case", list(CASES))
def test_products_found_in_order_with_kinds(case: str) -> None:
    model = CASES[case][0]()
    found = attention_products(model)
    assert [(name, kind) for name, (_, kind) in found.items()] == [("attention.qk", "attention.qk"),
                                                                    ("attention.av", "attention.av")]  # fmt: skip
    assert all(module is model.attention for module, _ in found.values())
    assert list(found) == layers(model)[-2:]


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("product", ["qk", "av"])
def test_slices_reproduce_brevitas_product(case: str, product: str) -> None:
    model, x, slices = _captured(case, product)
    name = f"attention.{product}"
    assert [p.name for p in slices] == [f"{name}[b={b},h={h}]" for b in range(BATCH) for h in range(HEADS)]
    d, source = (DIM, SOURCE) if case != "mha" else (16 // HEADS, LENGTH)
    assert slices[0].gemm == ((LENGTH, d, source) if product == "qk" else (LENGTH, source, d))
    for p in slices:
        assert p.kind == name
        _check_product(p)
    first = capture(model, name, x)  # the single-product entry point (via capture_attention): slice (0, 0)
    assert first.name == slices[0].name and np.array_equal(first.reference, slices[0].reference)
    assert np.array_equal(first.a.codes, slices[0].a.codes) and np.array_equal(first.b.codes, slices[0].b.codes)


@pytest.mark.parametrize("case", ["sdpa", "causal", "mha"])
def test_qk_reference_is_the_softmax_input_where_unmasked(case: str) -> None:
    make, inputs = CASES[case]
    model, x = make(), inputs()
    seen: list[torch.Tensor] = []
    hook = model.attention.softmax_input_quant.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        slices = capture_attention_slices(model, "attention.qk", attention_products(model)["attention.qk"], x)
    finally:
        hook.remove()
    softmax_input = seen[0].reshape(-1, *seen[0].shape[-2:]).numpy()
    reference = np.stack([p.reference for p in slices])
    unmasked = np.isfinite(softmax_input)
    assert np.array_equal(softmax_input[unmasked], reference[unmasked])
    assert unmasked.all() == (case != "causal")


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("product", ["qk", "av"])
def test_forward_with_brevitas_product_is_exact(case: str, product: str) -> None:
    model, x, slices = _captured(case, product)
    name = f"attention.{product}"
    expected = np.asarray(forward(model, x))
    assert np.array_equal(forward_with_attention_product(model, name, [p.reference for p in slices], x), expected)
    perturbed = [
        p.reference + np.linspace(0, 1, p.reference.size, dtype=np.float32).reshape(p.output_shape) for p in slices
    ]
    assert not np.array_equal(forward_with_attention_product(model, name, perturbed, x), expected)


def test_forward_with_keeps_the_causal_mask() -> None:
    """A different qk product still cannot attend to future positions: v rows beyond the query's own
    position do not reach the output."""
    model, x, slices = _captured("causal", "qk")
    uniform = [np.zeros_like(p.reference) for p in slices]
    changed = x.copy()
    changed[:, 2, :, LENGTH - 1] += 1.0  # value row L - 1: only the last query (L - 1) may see it
    first = forward_with_attention_product(model, "attention.qk", uniform, x)
    second = forward_with_attention_product(model, "attention.qk", uniform, changed)
    assert np.array_equal(first[..., :-1, :], second[..., :-1, :])


def test_unquantized_operand_is_unmappable_with_the_quantizer_named() -> None:
    model = Sdpa(q_scaled_quant=None)
    found = attention_products(model)
    assert list(found) == ["attention.qk", "attention.av"]  # still listed
    with pytest.raises(Unmappable, match=r"A operand is not quantized.*q_scaled_quant"):
        capture_attention(model, "attention.qk", found["attention.qk"], _sdpa_inputs())
    capture_attention(model, "attention.av", found["attention.av"], _sdpa_inputs())  # av is still quantized
    with pytest.raises(Unmappable, match=r"B operand is not quantized.*v_quant"):
        capture(Sdpa(v_quant=None), "attention.av", _sdpa_inputs())
