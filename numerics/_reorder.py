"""Channel reordering for block formats ("Accurate Block Quantization in LLMs with Outliers").

Outlier channels inflate the shared scale of every block they sit in. Sorting the reduction
channels by their calibration magnitude puts outliers together, so the other blocks keep fine
scales. The same permutation is applied to both matmul operands, which leaves the product
unchanged in exact arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._format import as_float_array


def outlier_permutation(calibration: Any, channel_axis: int = -1) -> np.ndarray:
    """A permutation of the channels along `channel_axis`, largest calibration absmax first
    (stable, so equal channels keep their order)."""
    values = as_float_array(calibration, "outlier_permutation")
    if values.ndim == 0:
        raise ValueError("outlier_permutation needs calibration data with a channel axis")
    axis = channel_axis % values.ndim
    reduce = tuple(a for a in range(values.ndim) if a != axis)
    magnitude = np.abs(values).max(axis=reduce, initial=0.0) if reduce else np.abs(values)  # empty in, empty out
    return np.argsort(-magnitude, kind="stable")


def permute_operands(a: Any, b: Any, permutation: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a[..., p], b[p, ...]): the reduction axis of a @ b reordered on both sides."""
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    p = np.asarray(permutation)
    if a_arr.shape[-1] != p.size or b_arr.shape[0] != p.size or not np.array_equal(np.sort(p), np.arange(p.size)):
        raise ValueError(
            f"permutation must reorder the {a_arr.shape[-1]} reduction channels of a and b "
            f"(shapes {a_arr.shape} and {b_arr.shape}), got one of length {p.size}"
        )
    return a_arr[..., p], b_arr[p, ...]
