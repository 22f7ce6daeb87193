"""Brevitas quantizers for formats Brevitas lacks (OliVe outlier-victim pairs, posits), quantizing
through numerics itself.

Brevitas has no OVP quantizer, so the tensor quantizer of an ordinary Brevitas integer quantizer
is replaced by one that encodes with `numerics.OVPFormat` and returns the integer grid times the
float32 scale (a straight-through estimator for QAT). The Brevitas layer then sees an
`IntQuantTensor` whose integers are OliVe's decoded grid (normals, abfloat outliers, zeroed
victims): 8 bits hold the ovp4 grid (|v| <= 96), 12 bits the ovp8 grid (|v| <= 2016).

Weights: one MSE-searched scale per tensor, pairs along the output channels (the lanes of the
array's B stream). Activations: one MSE-searched scale per row (per sample / token, computed on
the fly, so nothing is calibrated), pairs along the features (the lanes of the A stream).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
from torch import nn

import numerics

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerTensorFloat

GRID_BITS = {4: 8, 8: 12}


class OVPTensorQuant(nn.Module):
    """(value, scale, zero point, bit width) of x in OliVe pairs, as a Brevitas tensor quantizer."""

    def __init__(self, ovp_format: str, per_row: bool) -> None:
        super().__init__()
        fmt = numerics.get(ovp_format)
        if not isinstance(fmt, numerics.OVPFormat):
            raise ValueError(f"{ovp_format!r} is not an OliVe format")
        self.format, self.per_row = fmt, per_row
        self.grid_bits = GRID_BITS[fmt.element_bits]

    def encode(self, x: np.ndarray) -> numerics.OVPEncoded:
        """Activations (..., K): pairs along K, scale per row; weights (N, K): pairs along N."""
        if self.per_row:
            rows = dataclasses.replace(self.format, channel_axis=0)  # keeps rounding and scale search
            return rows.encode(x.reshape(-1, x.shape[-1]), axis=1)
        return self.format.encode(x, axis=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        data = x.detach().double().cpu().numpy()
        encoded = self.encode(data)
        scale = np.asarray(numerics.get("fp32").decode(encoded.scale), np.float64)
        if self.per_row:
            scale = scale.reshape((*data.shape[:-1], 1))
        grid = encoded.decode().reshape(data.shape) / scale  # exact: a small integer times an fp32 scale
        scale_t = torch.from_numpy(scale.astype(np.float32)).to(x.device)
        quantized = torch.from_numpy(grid.astype(np.float32)).to(x.device) * scale_t
        value = x + (quantized - x).detach()
        return value, scale_t, torch.zeros((), device=x.device), torch.tensor(float(self.grid_bits))


class PositTensorQuant(nn.Module):
    """Posits around a power-of-two scale: the scale is 2**round(log2(rms)) per tensor (weights) or
    per row (activations, on the fly), so the bulk of the values sits near 1 where a posit is most
    precise; values are decode(encode(x / scale)) * scale, exact in float32 for 8-bit posits.
    Brevitas carries them in an IntQuantTensor: only `.value` and `.scale` mean anything (a posit
    grid is not an integer grid), which is all the layers and the extraction use."""

    def __init__(self, posit_format: str, per_row: bool) -> None:
        super().__init__()
        fmt = numerics.get(posit_format)
        if not isinstance(fmt, numerics.Posit):
            raise ValueError(f"{posit_format!r} is not a posit format")
        self.format, self.per_row = fmt, per_row

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        data = x.detach().double().cpu().numpy()
        rows = data.reshape(-1, data.shape[-1]) if self.per_row else data.reshape(1, -1)
        rms = np.sqrt(np.mean(rows**2, axis=1, keepdims=True))
        scale = np.exp2(np.round(np.log2(np.where(rms > 0, rms, 1.0))))
        grid = np.asarray(self.format.decode(self.format.encode(rows / scale)), np.float64).reshape(data.shape)
        scale = scale.reshape((*data.shape[:-1], 1)) if self.per_row else scale.reshape(())
        scale_t = torch.from_numpy(scale.astype(np.float32)).to(x.device)
        quantized = torch.from_numpy(grid.astype(np.float32)).to(x.device) * scale_t
        return x + (quantized - x).detach(), scale_t, torch.zeros((), device=x.device), torch.tensor(8.0)


def posit_quantizers(name: str) -> tuple[type, type]:
    """(weight quantizer, input quantizer) for a posit format (e.g. `posit8_2`)."""
    weight = Int8WeightPerTensorFloat.let(tensor_quant=PositTensorQuant, posit_format=name, per_row=False)
    act = Int8ActPerTensorFloat.let(tensor_quant=PositTensorQuant, posit_format=name, per_row=True)
    return weight, act


def ovp_quantizers(name: str) -> tuple[type, type]:
    """(weight quantizer, input quantizer) for `ovp4` / `ovp8`."""
    weight = Int8WeightPerTensorFloat.let(tensor_quant=OVPTensorQuant, ovp_format=name, per_row=False)
    act = Int8ActPerTensorFloat.let(tensor_quant=OVPTensorQuant, ovp_format=name, per_row=True)
    return weight, act
