"""The structure of a QONNX graph (models/_qonnx.py reads and runs it): which nodes are matrix
products and which tensors play which part in each, with no graph run.

Node names (the file's, made up when empty or repeated); a `MatMul` (with its bias `Add`), `Gemm`
or `Conv` node as a `_Layer`: its A, B, bias and output tensors, the layouts that turn A and B into
the product's rows and columns (a Gemm's transposes; a convolution's im2col, one row per output
position with K ordered (kernel position, input channel) as models/_discover.py lays it) and the
reason a node cannot map from its structure alone (Gemm alpha / beta, batched MatMul, grouped,
3-D or asymmetrically padded convolutions); `_fold` back to the layer's output layout; and
`_trace`, which walks an operand back through shape-only ops to the quantizer (or integer
datatype annotation) that defines its grid, refusing an operand with none (or a minifloat one).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import onnx
import torch
from onnx import helper

from ._operand import Unmappable

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from qonnx.core.modelwrapper import ModelWrapper

MATRIX_OPS = ("MatMul", "Gemm", "Conv")
# Ops that only move or relabel elements: an operand's grid and scales pass through them unchanged.
SHAPE_OPS = frozenset({"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity"})
QUANTIZERS = frozenset({"Quant", "IntQuant", "BipolarQuant", "FloatQuant", "Trunc"})

Context = dict[str, Any]


class _Layout(Protocol):
    """A tensor as the layer reads it -> the product's layout; `edge` pads convolutions with the
    border values instead of zeros (for scales and zero points, which padding does not change)."""

    def __call__(self, x: np.ndarray, *, edge: bool = False) -> np.ndarray: ...


@dataclass(frozen=True)
class _Layer:
    """One MatMul / Gemm / Conv node as a matrix product: which tensors play which part."""

    name: str
    kind: str
    a: str  # the tensor read as A (before its layout)
    b: str
    bias: str | None
    output: str  # the tensor that holds the product plus bias (an Add's output for MatMul + Add)
    rows: _Layout
    columns: _Layout
    reason: str | None  # why the node cannot map, from its structure alone


@dataclass(frozen=True)
class _Source:
    """Where an operand's grid is defined: a quantizer node, or an integer datatype annotation."""

    node: onnx.NodeProto | None  # the Quant / BipolarQuant node; None for a datatype annotation
    tensor: str  # the quantizer's output (or the annotated tensor)
    path: tuple[onnx.NodeProto, ...]  # shape-only ops from `tensor` to the layer's input, in execution order
    datatype: Any = None


def _node_names(model: ModelWrapper) -> list[tuple[onnx.NodeProto, str]]:
    """Each node with its name; made up (op type and index) when empty, suffixed when repeated."""
    named, seen = [], set()
    for index, node in enumerate(model.graph.node):
        name = node.name or f"{node.op_type}_{index}"
        if name in seen:
            name = f"{name}_{index}"
        seen.add(name)
        named.append((node, name))
    return named


def _attributes(node: onnx.NodeProto) -> dict[str, Any]:
    values = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    return {k: v.decode() if isinstance(v, bytes) else v for k, v in values.items()}


# --- which tensors play which part --------------------------------------------------------------


def _layer(model: ModelWrapper, node: onnx.NodeProto, name: str) -> _Layer:
    if node.op_type == "Conv":
        return _conv(model, node, name)
    if node.op_type == "Gemm":
        return _gemm(model, node, name)
    return _matmul(model, node, name)


def _gemm(model: ModelWrapper, node: onnx.NodeProto, name: str) -> _Layer:
    attrs = _attributes(node)
    trans_a, trans_b = bool(attrs.get("transA", 0)), bool(attrs.get("transB", 0))
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    reason = None
    if alpha != 1.0 or beta != 1.0:
        reason = (f"Gemm with alpha={alpha:g}, beta={beta:g} scales the product or the bias inside the node; "
                  "only alpha = beta = 1 maps")  # fmt: skip

    def rows(x: np.ndarray, *, edge: bool = False) -> np.ndarray:
        return x.T if trans_a else x

    def columns(w: np.ndarray, *, edge: bool = False) -> np.ndarray:
        return w.T if trans_b else w

    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    return _Layer(name, "linear", node.input[0], node.input[1], bias, node.output[0], rows, columns, reason)


def _matmul(model: ModelWrapper, node: onnx.NodeProto, name: str) -> _Layer:
    a_shape, b_shape = model.get_tensor_shape(node.input[0]), model.get_tensor_shape(node.input[1])
    reason = None
    if b_shape is None or a_shape is None or len(b_shape) != 2 or len(a_shape) < 2:
        reason = (f"MatMul of shapes {a_shape} and {b_shape}: only A (..., M, K) @ B (K, N) with a 2-D B maps "
                  "(a batched B is one product per batch)")  # fmt: skip
    kind = "linear" if _is_constant(model, node.input[1]) else "matmul"
    bias, output = None, node.output[0]
    add = _bias_add(model, node, b_shape[-1] if b_shape else None)
    if add is not None:
        bias, output = add
    return _Layer(name, kind, node.input[0], node.input[1], bias, output, _flatten_rows, _as_is, reason)


def _flatten_rows(x: np.ndarray, *, edge: bool = False) -> np.ndarray:
    return x.reshape(-1, x.shape[-1])


def _as_is(x: np.ndarray, *, edge: bool = False) -> np.ndarray:
    return x


def _bias_add(model: ModelWrapper, node: onnx.NodeProto, n: int | None) -> tuple[str, str] | None:
    """(bias tensor, Add output) when the MatMul's only consumer adds a constant per column: the
    bias of a Linear layer exported as MatMul + Add."""
    consumers = model.find_consumers(node.output[0])
    if n is None or len(consumers) != 1 or consumers[0].op_type != "Add":
        return None
    add = consumers[0]
    other = add.input[1] if add.input[0] == node.output[0] else add.input[0]
    shape = model.get_tensor_shape(other)
    if not _is_constant(model, other) or shape is None or math.prod(shape) != n or (shape and shape[-1] != n):
        return None
    return other, add.output[0]


def _is_constant(model: ModelWrapper, tensor: str) -> bool:
    """Whether the tensor is an initializer seen through quantizers and shape-only ops (a weight)."""
    while (producer := model.find_producer(tensor)) is not None:
        if producer.op_type not in SHAPE_OPS | QUANTIZERS:
            return False
        tensor = producer.input[0]
    return model.get_initializer(tensor) is not None


def _conv(model: ModelWrapper, node: onnx.NodeProto, name: str) -> _Layer:
    attrs = _attributes(node)
    w_shape = model.get_tensor_shape(node.input[1]) or []
    spatial = max(len(w_shape) - 2, 0)
    kernel = tuple(attrs.get("kernel_shape", w_shape[2:]))
    stride = tuple(attrs.get("strides", (1,) * spatial))
    dilation = tuple(attrs.get("dilations", (1,) * spatial))
    pads = tuple(attrs.get("pads", (0,) * 2 * spatial))
    auto_pad, group = attrs.get("auto_pad", "NOTSET"), int(attrs.get("group", 1))
    bias = node.input[2] if len(node.input) > 2 and node.input[2] else None
    kind = f"conv{spatial}d"
    reason = _conv_reason(spatial, group, auto_pad, pads)
    padding = pads[:spatial] if reason is None else (0,) * spatial

    def rows(x: np.ndarray, *, edge: bool = False) -> np.ndarray:
        return _im2col(x, kernel, stride, padding, dilation, edge)

    def columns(w: np.ndarray, *, edge: bool = False) -> np.ndarray:  # (N, C, *kernel) -> (kernel..., C) per column
        return np.moveaxis(w, 1, -1).reshape(w.shape[0], -1).T

    return _Layer(name, kind, node.input[0], node.input[1], bias, node.output[0], rows, columns, reason)


def _conv_reason(spatial: int, group: int, auto_pad: str, pads: tuple[int, ...]) -> str | None:
    if spatial not in (1, 2):
        return f"a {spatial}-D convolution is not mapped (1-D and 2-D are)"
    if group != 1:
        return (f"group={group}: a grouped (or depthwise) convolution is {group} separate products with their own "
                "inputs; only group=1 maps to one matrix product")  # fmt: skip
    if auto_pad not in ("NOTSET", "VALID"):
        return f"auto_pad={auto_pad} may pad asymmetrically; only explicit symmetric pads map"
    if auto_pad == "NOTSET" and tuple(pads[:spatial]) != tuple(pads[spatial:]):
        return f"pads={list(pads)} are asymmetric (begin != end); only symmetric padding maps"
    return None


def _im2col(x: np.ndarray, kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...],
            dilation: tuple[int, ...], edge: bool) -> np.ndarray:  # fmt: skip
    """(n, C, *spatial) -> (n * positions, kernel positions * C), channels innermost, as _discover lays it."""
    if len(kernel) == 1:
        x, kernel, stride = x[:, :, None], (1, *kernel), (1, *stride)
        padding, dilation = (0, *padding), (1, *dilation)
    widths = ((0, 0), (0, 0), *((p, p) for p in padding))
    padded = np.pad(x, widths, mode="edge" if edge else "constant")
    unfolded = torch.nn.functional.unfold(torch.from_numpy(np.ascontiguousarray(padded)), kernel,
                                          dilation=dilation, stride=stride)  # fmt: skip
    n, c = x.shape[:2]
    positions = math.prod(kernel)
    return unfolded.reshape(n, c, positions, -1).permute(0, 3, 2, 1).reshape(-1, positions * c).numpy()


def _fold(kind: str, shape: tuple[int, ...]) -> Callable[[np.ndarray], np.ndarray]:
    if kind in ("linear", "matmul"):
        return lambda product: product.reshape(shape)
    return lambda product: np.moveaxis(product.reshape(shape[0], *shape[2:], shape[1]), -1, 1)


# --- where an operand's grid is defined ----------------------------------------------------------


def _trace(model: ModelWrapper, tensor: str, what: str) -> _Source:
    """Walk back from the layer's input through shape-only ops to the node that quantized it."""
    path: list[onnx.NodeProto] = []
    start = tensor
    while True:
        datatype = model.get_tensor_datatype(tensor)
        if datatype.is_integer():
            return _Source(None, tensor, tuple(path), datatype)
        producer = model.find_producer(tensor)
        if producer is None:
            origin = "a float constant" if model.get_initializer(tensor) is not None else "the graph input"
            raise Unmappable(f"{what} ({start!r}) is {origin} {tensor!r} with no Quant node: the arrays "
                             "multiply codes, so both operands need a quantizer")  # fmt: skip
        if producer.op_type in ("Quant", "IntQuant", "BipolarQuant"):
            return _Source(producer, tensor, tuple(path))
        if producer.op_type == "FloatQuant":
            raise Unmappable(f"{what}: FloatQuant node {producer.name!r} quantizes it to a minifloat "
                             f"({_minifloat_bits(model, producer)}); minifloat operands are mapped from Brevitas "
                             "models (models._discover), not yet from QONNX files")  # fmt: skip
        if producer.op_type not in SHAPE_OPS:
            raise Unmappable(f"{what} ({start!r}) comes from {producer.op_type} node {producer.name!r}, not from a "
                             f"Quant node (directly or through {', '.join(sorted(SHAPE_OPS))}): the arrays multiply "
                             "codes, so both operands need a quantizer")  # fmt: skip
        path.insert(0, producer)
        tensor = producer.input[0]


def _minifloat_bits(model: ModelWrapper, node: onnx.NodeProto) -> str:
    """'e4m3' from a FloatQuant's constant exponent and mantissa widths (inputs 2 and 3)."""
    widths = [model.get_initializer(name) for name in node.input[2:4]]
    if len(widths) < 2 or any(w is None for w in widths):
        return "exponent and mantissa widths computed in the graph"
    return f"e{int(np.asarray(widths[0]).reshape(-1)[0])}m{int(np.asarray(widths[1]).reshape(-1)[0])}"


def _follow(x: np.ndarray, path: tuple[onnx.NodeProto, ...], context: Context) -> np.ndarray:
    """Apply the shape-only ops of `path` to `x` (shaped like their first input), as the graph did."""
    for node in path:
        if node.op_type == "Transpose":
            perm = _attributes(node).get("perm")
            x = np.transpose(x, perm)
        else:  # Reshape, Flatten, Squeeze, Unsqueeze, Identity: the same elements in the output's shape
            x = np.reshape(x, np.shape(context[node.output[0]]))
    return x
