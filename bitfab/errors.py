"""Quantization error statistics shared by `quantize`, `compare` and the demo."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

import numerics


@dataclass(frozen=True)
class ErrorStats:
    format: str
    bits: float
    mse: float
    sqnr_db: float
    max_abs_error: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Quantized:
    """One tensor in one format: the arrays that store it (codes, scales, ...) and its values."""

    format: numerics.ElementFormat | numerics.CompositeFormat
    arrays: dict[str, np.ndarray]
    values: np.ndarray


def default_scaling(fmt: numerics.ElementFormat) -> str:
    """absmax for integers and minifloats; none for posits, whose precision peaks around 1."""
    return "none" if isinstance(fmt, numerics.Posit) else "absmax"


def quantize_tensor(
    x: np.ndarray, fmt: numerics.ElementFormat | numerics.CompositeFormat, scaling: str = "auto"
) -> Quantized:
    """Element formats: a per-tensor scale (absmax maps the tensor's absmax to the format's max).
    Composite formats bring their own scales; their blocks or pairs run along the last axis."""
    if isinstance(fmt, numerics.CompositeFormat):
        encoded = fmt.encode(x, axis=-1)
        arrays = {f.name: getattr(encoded, f.name) for f in dataclasses.fields(encoded)}  # type: ignore[arg-type]
        arrays = {k: v for k, v in arrays.items() if isinstance(v, np.ndarray)}
        return Quantized(fmt, arrays, encoded.decode())
    if scaling == "auto":
        scaling = default_scaling(fmt)
    if scaling not in ("absmax", "none"):
        raise ValueError(f"scaling must be auto, absmax or none, got {scaling!r}")
    if fmt.name == "ternary" and scaling == "absmax":  # BitNet b1.58: absmean, not absmax
        q = numerics.quantize_ternary(x)
        return Quantized(fmt, _arrays(q.codes, q.scale, q.zero_point), q.dequantize())
    if isinstance(fmt, numerics.IntFormat):
        if scaling == "none":
            codes = fmt.encode(x)
            return Quantized(fmt, _arrays(codes, np.ones(()), np.zeros((), np.int64)), fmt.decode(codes))
        q = numerics.quantize_int(x, fmt, symmetric=fmt.signed)
        return Quantized(fmt, _arrays(q.codes, q.scale, q.zero_point), q.dequantize())
    absmax = float(np.max(np.abs(x))) if x.size else 0.0
    scale = absmax / fmt.max if scaling == "absmax" and absmax > 0 else 1.0
    codes = fmt.encode(x / scale, saturate=True) if _can_saturate(fmt) else fmt.encode(x / scale)
    return Quantized(fmt, _arrays(codes, np.array(scale), np.zeros((), np.int64)), fmt.decode(codes) * scale)


def _arrays(codes: np.ndarray, scale: np.ndarray, zero_point: np.ndarray) -> dict[str, np.ndarray]:
    return {"codes": codes, "scale": scale, "zero_point": zero_point}


def _can_saturate(fmt: numerics.ElementFormat) -> bool:
    return not isinstance(fmt, numerics.Posit)


def error_stats(x: np.ndarray, q: Quantized) -> ErrorStats:
    err = q.values - x
    signal = float(np.sum(x * x))
    noise = float(np.sum(err * err))
    sqnr = float("inf") if noise == 0 else (10 * np.log10(signal / noise) if signal > 0 else float("-inf"))
    return ErrorStats(
        format=q.format.name,
        bits=float(q.format.bits),
        mse=noise / max(x.size, 1),
        sqnr_db=sqnr,
        max_abs_error=float(np.max(np.abs(err))) if x.size else 0.0,
    )
