"""Scaled integer quantization: per-tensor, per-channel or per-group scales, optional zero point."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._fast import absmax_rows, int_dequantize, int_from_scaled_rne
from ._format import as_float_array
from ._int import IntFormat
from ._registry import get
from ._rounding import Rounding, as_rounding


@dataclass(frozen=True)
class IntQuantized:
    """Integer codes plus the scale and zero point that map them back to real values.

    `scale` and `zero_point` broadcast against `grouped(values)`: for per-group quantization the
    group axis is split into (groups, group_size); otherwise against the input's own shape.
    """

    codes: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    format: IntFormat
    group_axis: int | None = None
    group_size: int | None = None

    def integers(self) -> np.ndarray:
        """The signed integer values of the codes (int64)."""
        sig, _ = self.format.lower(self.codes)
        return sig

    def grouped(self, values: np.ndarray) -> np.ndarray:
        if self.group_size is None or self.group_axis is None:
            return values
        return _split_groups(values, self.group_axis, self.group_size)

    def dequantize(self) -> np.ndarray:
        """(integer - zero_point) * scale in float64, in the input's shape."""
        grouped_shape = self.grouped(self.codes).shape
        inner = _leading_layout(grouped_shape, self.scale.shape)
        if inner is not None and self.zero_point.shape == self.scale.shape:
            out = np.empty(self.codes.size, np.float64)
            int_dequantize(
                np.ascontiguousarray(self.codes).reshape(-1), np.ascontiguousarray(self.scale, np.float64).reshape(-1),
                np.ascontiguousarray(self.zero_point, np.int64).reshape(-1), inner, self.format.width,
                self.format.signed, out,
            )  # fmt: skip
            return out.reshape(self.codes.shape)
        ints = self.grouped(self.integers())
        values = (ints - self.zero_point) * self.scale
        return values.reshape(self.codes.shape)


def _leading_layout(shape: tuple[int, ...], scale_shape: tuple[int, ...]) -> int | None:
    """If the scale varies along leading axes only, the run of elements sharing one scale."""
    padded = (1,) * (len(shape) - len(scale_shape)) + tuple(scale_shape)
    leading = len(padded)
    while leading > 0 and padded[leading - 1] == 1:
        leading -= 1
    if tuple(padded[:leading]) != tuple(shape[:leading]):
        return None
    return max(int(np.prod(shape[leading:], dtype=np.int64)), 1)


def _split_groups(values: np.ndarray, axis: int, group_size: int) -> np.ndarray:
    shape = list(values.shape)
    shape[axis : axis + 1] = [shape[axis] // group_size, group_size]
    return values.reshape(shape)


def _absmax(work: np.ndarray, reduce_axes: tuple[int, ...]) -> np.ndarray:
    """max |x| over reduce_axes (keepdims); one parallel pass when they are the trailing axes."""
    first = work.ndim - len(reduce_axes)
    if reduce_axes == tuple(range(first, work.ndim)) and first > 0 and work.size:
        rows = int(np.prod(work.shape[:first]))
        out = np.empty(rows, np.float64)
        absmax_rows(np.ascontiguousarray(work).reshape(rows, -1), out)
        return out.reshape(work.shape[:first] + (1,) * len(reduce_axes))
    # initial=0 changes no absmax (it is >= 0) and gives empty slices 0, so they get scale 1
    high = np.max(work, axis=reduce_axes, keepdims=True, initial=0.0)
    return np.maximum(high, -np.min(work, axis=reduce_axes, keepdims=True, initial=0.0))


def _fused_codes(
    work: np.ndarray, scale: np.ndarray, zero_point: np.ndarray, fmt: IntFormat, rounding: Rounding | str
) -> np.ndarray | None:
    """One parallel pass for the common layouts (scale varying along leading axes only, no zero
    point, nearest-even); None where the general path is needed."""
    if as_rounding(rounding) != Rounding.NEAREST_EVEN or np.any(zero_point) or fmt.width > 32:
        return None
    inner = _leading_layout(work.shape, scale.shape)
    if inner is None:
        return None
    flat = np.ascontiguousarray(work).reshape(-1)
    out = np.empty(flat.size, fmt.code_dtype)
    scales = np.ascontiguousarray(scale, dtype=np.float64).reshape(-1)
    int_from_scaled_rne(flat, scales, inner, fmt.min_int, fmt.max_int, fmt.width, out)
    return out


def quantize_int(
    x: Any,
    format: IntFormat | str = "int8",
    channel_axis: int | None = None,
    group_size: int | None = None,
    group_axis: int = -1,
    scale: Any = None,
    symmetric: bool = True,
    rounding: Rounding | str = Rounding.NEAREST_EVEN,
) -> IntQuantized:
    """Quantize x to a scaled integer format.

    Granularity: per tensor (default); per channel (`channel_axis`: one scale per index along
    it); per group (`group_size` consecutive elements along `group_axis` share a scale).
    Scale: from the data (symmetric: absmax / max_int, zero point 0; asymmetric: range /
    (max_int - min_int) with an integer zero point) or `scale` given (scalar or broadcastable
    to the scale shape). A group of zeros gets scale 1. x / scale is evaluated in float64,
    then rounded once to the integer grid with `rounding`, then saturated.
    """
    fmt = get(format)
    if not isinstance(fmt, IntFormat):
        raise ValueError(f"quantize_int needs an integer format, got {fmt.name}")
    values = as_float_array(x, "quantize_int").astype(np.float64)
    if not np.isfinite(values).all():
        raise ValueError("quantize_int: the input holds NaN or Inf; integer formats have neither")
    if channel_axis is not None and group_size is not None:
        raise ValueError("pass channel_axis or group_size, not both")
    grouped_axis: int | None = None
    if group_size is not None:
        if values.ndim == 0:
            raise ValueError("per-group quantization needs an array with at least one axis")
        grouped_axis = group_axis % values.ndim
        length = values.shape[grouped_axis]
        if group_size < 1 or length % group_size:
            raise ValueError(
                f"group_size must be a positive divisor of axis {group_axis} (length {length}), got {group_size}"
            )
        work = _split_groups(values, grouped_axis, group_size)
        reduce_axes: tuple[int, ...] = (grouped_axis + 1,)
    else:
        work = values
        if channel_axis is None:
            reduce_axes = tuple(range(values.ndim))
        else:
            if not -values.ndim <= channel_axis < values.ndim:
                raise ValueError(f"channel_axis must be in [{-values.ndim}, {values.ndim - 1}], got {channel_axis}")
            channel = channel_axis % values.ndim
            reduce_axes = tuple(a for a in range(values.ndim) if a != channel)
    lo, hi = fmt.min_int, fmt.max_int
    if scale is None:
        if symmetric:
            if not fmt.signed:
                raise ValueError(f"symmetric quantization needs a signed format, got {fmt.name}")
            absmax = _absmax(work, reduce_axes)
            scale_arr = absmax / hi
            zero_point = np.zeros_like(scale_arr)
        else:
            low = np.min(work, axis=reduce_axes, keepdims=True, initial=0.0)  # the range always holds 0
            high = np.max(work, axis=reduce_axes, keepdims=True, initial=0.0)
            scale_arr = (high - low) / (hi - lo)
            safe = np.where(scale_arr > 0, scale_arr, 1.0)
            zero_point = np.clip(np.round(lo - low / safe), lo, hi)
        scale_arr = np.where(scale_arr > 0, scale_arr, 1.0)
    else:
        scale_arr = np.asarray(scale, dtype=np.float64)
        if not (np.isfinite(scale_arr).all() and (scale_arr > 0).all()):
            raise ValueError("scale must be finite and positive")
        try:
            np.broadcast_shapes(scale_arr.shape, work.shape)
        except ValueError:
            raise ValueError(f"scale of shape {scale_arr.shape} does not broadcast to {work.shape}") from None
        zero_point = np.zeros_like(scale_arr)
    codes = _fused_codes(work, scale_arr, zero_point, fmt, rounding)
    if codes is None:
        unsaturated = IntFormat(32).encode(work / scale_arr, rounding=rounding)
        ints = IntFormat(32).lower(unsaturated)[0] + zero_point.astype(np.int64)
        codes = fmt.encode(np.clip(ints, lo, hi).astype(np.float64))
    return IntQuantized(
        codes.reshape(values.shape), scale_arr, zero_point.astype(np.int64), fmt, grouped_axis, group_size
    )


def quantize_ternary(x: Any, group_size: int | None = None, group_axis: int = -1) -> IntQuantized:
    """BitNet b1.58: scale = mean |x| (per tensor, or per group), codes = clip(round(x / scale), -1, 1).

    A group of zeros gets scale 1.
    """
    values = as_float_array(x, "quantize_ternary").astype(np.float64)
    if group_size is None:
        work, reduce_axes = values, tuple(range(values.ndim))
    else:
        if values.ndim == 0 or group_size < 1 or values.shape[group_axis % values.ndim] % group_size:
            length = values.shape[group_axis % values.ndim] if values.ndim else 0
            raise ValueError(
                f"group_size must be a positive divisor of axis {group_axis} (length {length}), got {group_size}"
            )
        work = _split_groups(values, group_axis % values.ndim, group_size)
        reduce_axes = (group_axis % values.ndim + 1,)
    count = int(np.prod([work.shape[a] for a in reduce_axes], dtype=np.int64))
    gamma = np.sum(np.abs(work), axis=reduce_axes, keepdims=True) / max(count, 1)  # np.mean, minus its empty warning
    gamma = np.where(gamma > 0, gamma, 1.0)
    return quantize_int(values, "ternary", group_size=group_size, group_axis=group_axis, scale=gamma)
