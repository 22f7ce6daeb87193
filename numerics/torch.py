"""PyTorch bridge: fake-quantize tensors to any registered format with a straight-through
estimator. torch is imported lazily, so `import numerics` never pays for it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ._composite import CompositeFormat
from ._format import ElementFormat
from ._registry import get

if TYPE_CHECKING:
    import torch as torch_module


def quantize_array(values: np.ndarray, fmt: ElementFormat | CompositeFormat, axis: int, scale: Any) -> np.ndarray:
    """The forward pass on numpy data: composite formats bring their own scales along `axis`;
    element formats quantize `values / scale` and multiply back (scale 1 by default)."""
    if isinstance(fmt, CompositeFormat):
        return fmt.quantize(values, axis=axis)
    saturate = None if (fmt.has_inf or fmt.has_nan) else True
    if scale is None:
        return fmt.quantize(values, saturate=saturate)
    return fmt.quantize(values / scale, saturate=saturate) * scale


def fake_quantize(tensor: torch_module.Tensor, format: Any, axis: int = -1, scale: Any = None) -> torch_module.Tensor:
    """Quantize-dequantize `tensor` (CPU, any shape) to `format`; gradients pass straight through.

    The result has the input's dtype (values a format cannot hold exactly in that dtype, such as
    posit32 in float32, are rounded once more by the cast).
    """
    import torch

    fmt = get(format)
    if tensor.device.type != "cpu":
        raise ValueError(f"fake_quantize runs on CPU tensors, got a tensor on {tensor.device}")
    if not torch.is_floating_point(tensor):
        raise TypeError(f"fake_quantize needs a floating-point tensor, got {tensor.dtype}")
    scale_array = scale.detach().cpu().numpy() if isinstance(scale, torch.Tensor) else scale

    class _StraightThrough(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, x: torch.Tensor) -> torch.Tensor:
            values = x.detach().to(torch.float64).numpy()
            return torch.from_numpy(quantize_array(values, fmt, axis, scale_array)).to(x.dtype)

        @staticmethod
        def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
            return grad

    return _StraightThrough.apply(tensor)
