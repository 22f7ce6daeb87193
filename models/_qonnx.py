"""QONNX files (the FINN / hls4ml interchange format, as `brevitas.export.export_qonnx` writes them):
their quantized matrix products found, described and captured as operands, and the graph run
with a layer's output substituted (hardware in the loop).

A `MatMul`, `Gemm` or `Conv` node maps when both of its inputs carry a known integer grid: the
output of a QONNX `Quant` (or `BipolarQuant`) node, reached directly or through shape-only ops
(Transpose, Reshape, Flatten, Squeeze, Unsqueeze, Identity), or a tensor annotated with a QONNX
integer datatype (scale 1). The grid is read back from the node's own output, `output / scale`,
and checked to reproduce that output exactly in float32, so the captured operands are the ones
the graph multiplied whatever the node's rounding mode. Formats, scale factoring and refusals
follow models/_operand.py: scales are factored out per tensor, per row of A or per column of B;
a scale varying along K, a fractional zero point, a bit width above 16 or a minifloat
(`FloatQuant`) operand is refused with `Unmappable` and the reason. Convolutions use the im2col
layout of models/_discover.py (one row per output position, K ordered (kernel position, input
channel)), so a QONNX capture and a Brevitas capture of the same layer line up.

This module loads and cleans the file, reads the operands and biases from a run of the graph and
runs it with substitutes; models/_qonnx_graph.py holds the graph's structure (which node is which
layer, layouts, refusals from structure, tracing an operand to its quantizer).
"""

from __future__ import annotations

import copy
import warnings
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

import numerics

from ._discover import LayerInfo, Product
from ._operand import Operand, Unmappable, _factor, _granularity, _integer, _power_of_two
from ._qonnx_graph import (
    MATRIX_OPS,
    QUANTIZERS,
    Context,
    _attributes,
    _fold,
    _follow,
    _Layer,
    _layer,
    _Layout,
    _node_names,
    _Source,
    _trace,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from qonnx.analysis import topology
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_node, execute_onnx
    from qonnx.transformation.change_batchsize import ChangeBatchSize
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (
        GiveUniqueParameterTensors,
        RemoveStaticGraphInputs,
        RemoveUnusedTensors,
        SortGraph,
    )
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
    from qonnx.util.basic import get_preferred_qonnx_opset, get_sanitize_quant_tensors, sanitize_quant_values

MAX_OPERAND_BITS = 16


class QonnxModel:
    """A QONNX file, cleaned up (shapes inferred, constants folded, Quant nodes kept), ready to run."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._model = _load(self.path)
        graph = self._model.graph
        if len(graph.input) != 1 or len(graph.output) != 1:
            raise ValueError(f"{self.path}: the graph has {len(graph.input)} inputs and {len(graph.output)} outputs; "
                             "one of each is supported")  # fmt: skip
        self._input, self._output = graph.input[0].name, graph.output[0].name
        self._layers = {name: _layer(self._model, node, name) for node, name in _node_names(self._model)
                        if node.op_type in MATRIX_OPS}  # fmt: skip
        self._by_batch: dict[int, ModelWrapper] = {}

    def layers(self) -> list[str]:
        """Names of the graph's MatMul, Gemm and Conv nodes, in graph order."""
        return list(self._layers)

    def describe(self, example: np.ndarray) -> list[LayerInfo]:
        """Every MatMul / Gemm / Conv node: GEMM shape per sample, operand formats read from the
        graph run on `example[:1]`, bias, and for a node that cannot map, the reason."""
        return [self._describe_one(name, example[:1]) for name in self._layers]

    def capture(self, layer: str, inputs: np.ndarray) -> Product:
        """Run `inputs` through the graph and return node `layer` (a name from `layers`) as a Product."""
        spec = self._spec(layer)
        if spec.reason:
            raise Unmappable(f"layer {layer!r}: {spec.reason}")
        for tensor, part in ((spec.a, "input"), (spec.b, "weight")):  # refuse before running the graph
            _trace(self._model, tensor, f"layer {layer!r} {part}")
        model = self._prepared(inputs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # qonnx warns when it sanitizes integer-annotated tensors
            context = execute_onnx(model, {self._input: _float32(inputs)}, return_full_exec_context=True)
        a = _operand(model, context, spec.a, spec.rows, 1, f"layer {layer!r} input")
        b = _operand(model, context, spec.b, spec.columns, 0, f"layer {layer!r} weight")
        n = int(b.values.shape[1])
        bias, bias_codes, bias_description = _bias(model, context, spec.bias, a, b, n, layer)
        output = np.asarray(context[spec.output], dtype=np.float32)
        channels_last = output if spec.kind in ("linear", "matmul") else np.moveaxis(output, 1, -1)
        shape = tuple(output.shape)
        return Product(layer, spec.kind, a, b, bias, bias_codes, bias_description, channels_last.reshape(-1, n),
                       shape, _fold(spec.kind, shape))  # fmt: skip

    def forward(self, inputs: np.ndarray, replace: dict[str, np.ndarray] | None = None) -> np.ndarray:
        """The graph's output for `inputs`. `replace` maps layer names to their outputs in the layer's
        output layout (`product.fold(result)`): those nodes are not run, their given outputs feed the
        rest of the graph (for a MatMul followed by its bias Add, the given output replaces the Add's)."""
        model = self._prepared(inputs)
        substitutes = {self._spec(name).output: self._substitute(model, name, value)
                       for name, value in (replace or {}).items()}  # fmt: skip
        context = _run(model, self._input, _float32(inputs), substitutes)
        return np.asarray(context[self._output], dtype=np.float32).copy()

    def _spec(self, layer: str) -> _Layer:
        if layer not in self._layers:
            names = ", ".join(self._layers) or "none: the graph has no MatMul, Gemm or Conv node"
            raise ValueError(f"layer {layer!r} is not a MatMul/Gemm/Conv node of {self.path}; available: {names}")
        return self._layers[layer]

    def _substitute(self, model: ModelWrapper, layer: str, value: np.ndarray) -> np.ndarray:
        tensor = self._spec(layer).output
        expected = tuple(model.get_tensor_shape(tensor))
        array = _float32(value)
        if array.shape != expected:
            raise ValueError(f"replacement for layer {layer!r} has shape {array.shape}; its output {tensor!r} "
                             f"is {expected} (give product.fold(result))")  # fmt: skip
        return array

    def _prepared(self, inputs: np.ndarray) -> ModelWrapper:
        """The model with its batch size set to the inputs' (the export fixed it, Reshape targets included)."""
        expected = tuple(self._model.get_tensor_shape(self._input))
        shape = tuple(np.shape(inputs))
        if len(shape) != len(expected) or shape[1:] != expected[1:]:
            raise ValueError(f"inputs of shape {shape} do not fit the graph input {self._input!r} {expected} "
                             "(only the batch size may differ)")  # fmt: skip
        if shape[0] == expected[0]:
            return self._model
        if shape[0] not in self._by_batch:
            resized = ModelWrapper(copy.deepcopy(self._model.model))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                resized = resized.transform(ChangeBatchSize(shape[0])).transform(InferShapes())
            self._by_batch[shape[0]] = resized
        return self._by_batch[shape[0]]

    def _describe_one(self, name: str, example: np.ndarray) -> LayerInfo:
        spec = self._layers[name]
        try:
            product = self.capture(name, example)
        except Unmappable as error:
            return LayerInfo(name, spec.kind, None, "-", "-", "-", str(error))
        return replace(LayerInfo.of(product), name=name)


def _load(path: Path) -> ModelWrapper:
    if not path.is_file():
        raise ValueError(f"{path}: no such file (expected a QONNX .onnx file)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = ModelWrapper(str(path))
    except Exception as error:  # onnx raises protobuf's DecodeError, or others, for a file that is not ONNX
        raise ValueError(f"{path} is not an ONNX model: {error}") from None
    if not model.graph.node or not model.graph.input:
        raise ValueError(f"{path} is not an ONNX model with a graph (no nodes or no inputs)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = _clean(model)
            if not model.analysis(topology.nodes_topologically_sorted)["nodes_topologically_sorted"]:
                model = model.transform(SortGraph())
    except Exception as error:
        raise ValueError(f"{path}: qonnx could not clean up the graph: {error}") from None
    return model


def _clean(model: ModelWrapper) -> ModelWrapper:
    """qonnx's cleanup_model less its renaming passes, so that layers keep the file's node names:
    shapes inferred, constant subgraphs folded, quantizer nodes kept (they carry the formats)."""
    for node in model.graph.node:
        if node.op_type in QUANTIZERS:  # older exporters left the QONNX ops in other domains
            node.domain = "qonnx.custom_op.general"
    keep = ["Quant", "IntQuant", "BipolarQuant", "FloatQuant", "Trunc", "QuantizeLinear", "DequantizeLinear"]
    for transformation in (InferShapes(), GiveUniqueParameterTensors(), FoldConstants(exclude_op_types=keep),
                           FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs(),
                           InferShapes()):  # fmt: skip
        model = model.transform(transformation)
    return model


def _float32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x, dtype=np.float32))


# --- operands ------------------------------------------------------------------------------------


def _quantizer(model: ModelWrapper, context: Context, source: _Source,
               what: str) -> tuple[np.ndarray, numerics.IntFormat, str, str]:  # fmt: skip
    """(scale broadcast to the quantizer's output, element format, description, who) of an operand's quantizer."""
    shape = np.shape(context[source.tensor])
    if source.node is None:
        return np.ones(shape), *_datatype_format(source.datatype, what)
    node = source.node
    who = f"{node.op_type} node {node.name!r}"
    scale = np.broadcast_to(np.asarray(context[node.input[1]], dtype=np.float64), shape)
    if node.op_type == "BipolarQuant":
        return scale, numerics.IntFormat(2), "bipolar (±1) as int2", who
    attrs = _attributes(node)
    bits_value = float(np.asarray(context[node.input[3]]).reshape(-1)[0])
    signed, narrow = bool(attrs.get("signed", 1)), bool(attrs.get("narrow", 0))
    zero_point = np.broadcast_to(np.asarray(context[node.input[2]], dtype=np.float64), shape)
    where = f"{what} ({who})"
    if bits_value != round(bits_value) or not 1 <= bits_value <= MAX_OPERAND_BITS:
        raise Unmappable(f"{where}: bit width {bits_value:g}; operands of 1 to {MAX_OPERAND_BITS} whole bits map")
    bits = int(bits_value)
    if bits == 1 and signed:  # qonnx (like Brevitas' export) runs a signed 1-bit Quant as bipolar, ±1
        return scale, numerics.IntFormat(2), "bipolar (signed 1-bit, ±1) as int2", who
    # _operand._integer reads the bit width and sign off a QuantTensor; hand it the node's attributes.
    quant = SimpleNamespace(bit_width=torch.tensor(bits), signed_t=torch.tensor(signed))
    element, description = _integer(quant, torch.from_numpy(np.ascontiguousarray(zero_point)), where)
    rounding = str(attrs.get("rounding_mode", "ROUND")).upper()
    if narrow:
        description += " (narrow range)"
    if rounding not in ("ROUND", "HALF_EVEN"):
        description += f", rounding {rounding}"
    return scale, element, description, who


def _datatype_format(datatype: Any, what: str) -> tuple[numerics.IntFormat, str, str]:
    name, bits = datatype.name, int(datatype.bitwidth())
    who = f"QONNX datatype {name}"
    if name in ("BIPOLAR", "TERNARY"):  # {-1, +1} and {-1, 0, +1} are exact in int2
        return numerics.IntFormat(2), f"{name.lower()} as int2", who
    if bits > MAX_OPERAND_BITS:
        raise Unmappable(f"{what} ({who}): {bits} bits; operands of up to {MAX_OPERAND_BITS} bits map")
    signed = bool(datatype.signed())
    return numerics.IntFormat(bits, signed=signed), f"{'' if signed else 'u'}int{bits}", who


def _operand(model: ModelWrapper, context: Context, tensor: str, layout: _Layout, axis: int, what: str) -> Operand:
    """The operand the layer reads from `tensor`, in the product's layout (`axis` is K there)."""
    source = _trace(model, tensor, what)
    scale, element, description, who = _quantizer(model, context, source, what)
    where = f"{what} ({who})"
    scale = _follow(scale, source.path, context)  # the zero point only set the format: the grid has it removed
    values = np.asarray(context[tensor], dtype=np.float32)
    if not np.isfinite(values).all():
        raise Unmappable(f"{where} has Inf or NaN values: the graph's own run produced them")
    if not (np.isfinite(scale).all() and (scale > 0).all()):
        raise Unmappable(f"{where}: its scale is not positive and finite")
    grid = np.round(values.astype(np.float64) / scale)  # int - zero point, as the node computed it
    if not np.array_equal((grid * scale).astype(np.float32), values):
        raise Unmappable(f"{where}: its output is not (integer) * scale exactly in float32, so the grid cannot be "
                         "read back from it")  # fmt: skip
    laid_grid, laid_values = layout(grid), layout(values)
    factored = _factor(torch.from_numpy(np.ascontiguousarray(layout(scale, edge=True))), axis, where)
    codes = element.encode(laid_grid)
    if not np.array_equal(np.asarray(element.decode(codes), dtype=np.float64), laid_grid):
        raise Unmappable(f"{where}: grid values {laid_grid.min():g}..{laid_grid.max():g} exceed {element.name}")
    description = f"{description}, scale {_granularity(factored, axis)}"
    if _power_of_two(factored):
        description += " (power of two)"
    return Operand(element, codes, factored, laid_grid, laid_values.astype(np.float32), description)


def _bias(model: ModelWrapper, context: Context, tensor: str | None, a: Operand, b: Operand, n: int,
          layer: str) -> tuple[np.ndarray | None, np.ndarray | None, str]:  # fmt: skip
    """(float32 values (N,), integer codes or None, description) of the layer's bias."""
    if tensor is None:
        return None, None, "none"
    raw = np.asarray(context[tensor], dtype=np.float32)
    if raw.size not in (1, n) or (raw.size == n and raw.ndim and raw.shape[-1] != n):
        raise Unmappable(f"layer {layer!r}: a bias of shape {raw.shape} is not one value per output column ({n})")
    values = np.broadcast_to(raw.reshape(-1), (n,)).copy()
    try:
        source = _trace(model, tensor, f"layer {layer!r} bias")
    except Unmappable:
        return values, None, "float (added after the product)"
    if source.node is None or source.node.op_type not in ("Quant", "IntQuant"):
        return values, None, "float (added after the product)"
    node = source.node
    bits = int(float(np.asarray(context[node.input[3]]).reshape(-1)[0]))
    quant_shape = np.shape(context[source.tensor])
    scale = _follow(np.broadcast_to(np.asarray(context[node.input[1]], dtype=np.float64), quant_shape), source.path,
                    context)  # fmt: skip
    scale = np.broadcast_to(scale.reshape(-1), (n,))
    zero_point = np.asarray(context[node.input[2]], dtype=np.float64)
    product_scale = np.broadcast_to(np.float32(a.scale) * b.scale.astype(np.float32), (n,)).astype(np.float64)
    codes = np.round(values.astype(np.float64) / scale)
    exact = np.array_equal((codes * scale).astype(np.float32), values)
    if a.scale.ndim == 0 and not zero_point.any() and exact and np.array_equal(scale, product_scale):
        return values, codes.astype(np.int64), f"int{bits} in units of scale_in*scale_w (exact in the accumulator)"
    return values, None, f"int{bits} with its own scale (added as float after the product)"


# --- running the graph ---------------------------------------------------------------------------


def _run(model: ModelWrapper, input_name: str, inputs: np.ndarray, substitutes: dict[str, np.ndarray]) -> Context:
    """The full execution context; nodes whose output is in `substitutes` are not run, their
    given outputs are used instead. Mirrors qonnx's execute_onnx node by node."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # qonnx warns when it sanitizes integer-annotated tensors
        if not substitutes:
            return execute_onnx(model, {input_name: inputs}, return_full_exec_context=True)
        context = model.make_empty_exec_context()
        context[input_name] = inputs
        opsets = model.get_opset_imports()
        sanitize = get_sanitize_quant_tensors() != 0
        for node in model.graph.node:
            if node.output[0] in substitutes:  # computed elsewhere (the arrays): take their result
                context[node.output[0]] = substitutes[node.output[0]]
                continue
            if sanitize:
                context = sanitize_quant_values(model, node.input, context)
            execute_node(node, context, model.graph, opsets.get(node.domain, get_preferred_qonnx_opset()))
            if sanitize:
                context = sanitize_quant_values(model, node.output, context)
    return context
