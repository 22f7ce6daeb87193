"""Any Brevitas model with every quantized layer's product accumulated by numerics in a chosen
accumulator (a W-bit wrapping register, say): the predictions a whole network makes on hardware
with that accumulator, each layer fed by the previous one's wrapped output.

The products are `numerics.matmul` over the codes the layer's own quantizers produce (read as in
`capture`), times the tensor / channel / row scales, plus the layer's bias; `numerics` is the
golden model the co-simulated arrays equal bit for bit (verdict (a) of bitfab/byom.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

import numerics

from ._discover import _bias, _fold, _kind, _quant_weight, _structure_reason, forward, gemm_layouts, quant_modules
from ._operand import Unmappable, read


def forward_accumulating(model: nn.Module, inputs: np.ndarray, accumulator: numerics.Accumulator) -> np.ndarray:
    """The model's output with each quantized linear / convolution layer's product accumulated in
    `accumulator` (the rest of the model as usual). Layers with zero points or block formats are
    refused: their products are not a plain matmul of the codes."""
    hooks = []
    for name, module in quant_modules(model).items():
        if reason := _structure_reason(module):
            raise Unmappable(f"layer {name!r}: {reason}")

        def replace(layer: nn.Module, args: tuple[Any, ...], out: Any, name: str = name) -> Any:
            values = _layer_output(layer, name, args[0], out, accumulator)
            return out.set(value=values) if hasattr(out, "set") else values

        hooks.append(module.register_forward_hook(replace))
    try:
        return np.asarray(forward(model, inputs))
    finally:
        for hook in hooks:
            hook.remove()


def _layer_output(module: nn.Module, name: str, x: Any, out: Any, accumulator: numerics.Accumulator) -> torch.Tensor:
    quant_input = module.input_quant(x) if module.input_quant.is_quant_enabled else x
    quant_weight = _quant_weight(module, quant_input)
    kind = _kind(module)
    rows, columns = gemm_layouts(module, kind)
    a = read(quant_input, rows, 1, f"layer {name!r} input")
    b = read(quant_weight, columns, 0, f"layer {name!r} weight")
    for operand in (a, b):
        if operand.zero_point or not isinstance(operand.format, numerics.ElementFormat):
            raise Unmappable(f"layer {name!r}: {operand.description}: only element formats without a zero point "
                             "are accumulated here")  # fmt: skip
    result = numerics.matmul(a.codes, b.codes, a.format, b.format, accumulator)
    with np.errstate(invalid="ignore", over="ignore"):
        values = result.to_float64() * a.scale * b.scale
    bias, _, _ = _bias(module, quant_input, quant_weight, a, b)
    if bias is not None:
        values = values + bias.astype(np.float64)
    reference = out.value if hasattr(out, "value") else out
    folded = _fold(kind, tuple(reference.shape))(values)
    return torch.from_numpy(np.ascontiguousarray(folded, dtype=np.float32))
