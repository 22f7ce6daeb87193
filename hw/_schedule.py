"""How a GEMM maps onto a systolic array: the operand beats it consumes, the result beats it
produces, and the exact number of cycles it takes (the analytic cycle model).

Beat order (the array's stream contract):
- output-stationary: folds (m-tile outer, n-tile inner); per fold K beats on both streams,
  a-beat k = A[m-tile rows, k] (R lanes), b-beat k = B[k, n-tile cols] (C lanes); R result beats
  per fold, beat i = C[m-tile row i, n-tile cols].
- weight-stationary: folds (n-tile outer, k-tile inner); per fold R weight beats
  (b-beat r = B[k-tile row r, n-tile cols]) and M activation beats (a-beat m = A[m, k-tile]);
  after an n-tile's last k-fold, M result beats (beat m = C[m, n-tile cols]).
Ragged edges are padded with code 0 (the value 0 in every element format), whose products
vanish, so padding never changes a result.

Cycles count from the cycle the first operand beat is accepted to the cycle the last result beat
is valid, both included, with every stream always valid/ready.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from ._array_config import SIZE_BITS, ArrayConfig


def _ceil_div(x: int, y: int) -> int:
    return -(-x // y)


def check_gemm(config: ArrayConfig, m: int, k: int, n: int) -> None:
    """Reject a GEMM this array cannot run, naming the limit."""
    for name, value in (("M", m), ("K", k), ("N", n)):
        if not 1 <= value < 1 << SIZE_BITS:
            raise ValueError(f"GEMM {name} must be between 1 and {(1 << SIZE_BITS) - 1}, got {value}")
    if k > config.k_max:
        raise ValueError(f"K={k} exceeds this array's k_max={config.k_max} (the accumulator is sized for it)")
    if config.dataflow == "ws" and m > config.m_max:
        raise ValueError(f"M={m} exceeds this weight-stationary array's m_max={config.m_max} (its output buffer depth)")


def folds(config: ArrayConfig, m: int, k: int, n: int) -> int:
    r, c = config.rows, config.cols
    if config.dataflow == "os":
        return _ceil_div(m, r) * _ceil_div(n, c)
    return _ceil_div(k, r) * _ceil_div(n, c)


def cycles(config: ArrayConfig, m: int, k: int, n: int) -> int:
    """Exact RTL cycles for an M x K @ K x N GEMM (see the module docstring for what is counted)."""
    check_gemm(config, m, k, n)
    r, c, p, f = config.rows, config.cols, config.pipeline, folds(config, m, k, n)
    if config.dataflow == "os":
        # Folds start every K + R + C - 2 cycles (plus the wait before a short last MX block, where a
        # row shares its block adder); the last one then drains R rows from its shadow registers.
        # A fold starts only once the fold two before it has drained (hw/_array_os.py): with
        # K + W + C < pipeline + 5 (W: that MX wait) it holds pairs of folds one `span` apart.
        period = k + r + c - 2 + config.final_block_wait(k)
        span = period + r + p + 3  # a fold's first beat to its last result beat
        return (f - 1) // 2 * max(span, 2 * period) + (f - 1) % 2 * period + span
    if config.double_buffer:
        # The next fold's weights load into the second bank while the current fold streams.
        return (f - 1) * max(m, r) + m + r + c + p + 2
    # Serialized folds: load R weight rows, stream M rows, wait for the wave to leave the array.
    return f * (m + 2 * r + c - 2) + p + 4


def scalesim_cycles(dataflow: str, m: int, k: int, n: int, rows: int, cols: int) -> int:
    """SCALE-Sim 3.0.0's stall-free total cycles (SCALE-Sim 3.0.0's closed forms; its -1 is SCALE-Sim issue #125)."""
    if dataflow == "os":
        return _ceil_div(m, rows) * _ceil_div(n, cols) * (k + rows + cols - 2) - 1
    if dataflow == "ws":
        return _ceil_div(k, rows) * _ceil_div(n, cols) * (m + 2 * rows + cols - 2) - 1
    if dataflow == "is":
        return _ceil_div(k, rows) * _ceil_div(m, cols) * (n + 2 * rows + cols - 2) - 1
    raise ValueError(f"dataflow must be 'os', 'ws' or 'is', got {dataflow!r}")


@dataclass(frozen=True)
class GemmBeats:
    a: np.ndarray  # (beats, R) codes
    b: np.ndarray  # (beats, C) codes
    results: int  # result beats the array will produce
    a_scales: np.ndarray | None = None  # MX: (beats,) E8M0 scale of the a-row's block
    b_scales: np.ndarray | None = None  # MX: (beats, C) E8M0 scales of the b-columns' block


def mx_operands(config: ArrayConfig, a: object, b: object) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Element codes (M, K), (K, N) and per-element block scales of MX encodings of A (blocks
    along axis -1) and B (blocks along axis 0)."""
    from numerics import BlockEncoded

    block = config.block
    if not (isinstance(a, BlockEncoded) and isinstance(b, BlockEncoded)) or a.format != block or b.format != block:
        raise ValueError(f"this array takes {block.name if block else '?'} encodings of A and B (BlockEncoded)")
    if a.elements.ndim != 3 or b.elements.ndim != 3 or a.axis != 1 or b.axis != 0:
        raise ValueError("MX operands must be 2-D with blocks along K: A encoded on axis -1, B on axis 0")
    k = a.length
    size = block.block_size
    a_codes = a.elements.reshape(a.elements.shape[0], -1)[:, :k]
    b_codes = b.elements.reshape(b.elements.shape[0], -1)[:, :k].T
    a_scales = np.repeat(a.scales, size, axis=1)[:, :k]
    b_scales = np.repeat(b.scales, size, axis=1)[:, :k].T
    return a_codes, b_codes, a_scales, b_scales


def _padded(codes: np.ndarray, rows: int, cols: int, fill: int = 0) -> np.ndarray:
    """Codes padded to (rows, cols) with `fill`: the code of zero (the zero point's, if any)."""
    out = np.full((rows, cols), fill, dtype=np.uint64)
    out[: codes.shape[0], : codes.shape[1]] = codes
    return out


def _code_of(stream: Any, zero_point: int) -> int:
    """The stream code of the value zero: the zero point's code (0 without one)."""
    return 0 if stream is None else int(stream.encode(np.array(float(zero_point))))


def datapath_codes(config: ArrayConfig, a: Any, b: Any) -> tuple[Any, Any]:
    """Stream codes as the datapath's codes (code - zero point, one bit wider) where the array
    subtracts a zero point; unchanged otherwise. For golden models of what the array computes."""

    def convert(stream: Any, zero_point: int, datapath: Any, codes: Any) -> Any:
        if stream is None:
            return codes
        return datapath.encode(np.asarray(stream.decode(codes), dtype=np.float64) - zero_point)

    return (convert(config.a_stream, config.a_zero_point, config.a_format, a),
            convert(config.b_stream, config.b_zero_point, config.b_format, b))  # fmt: skip


def gemm_beats(config: ArrayConfig, a_codes: np.ndarray, b_codes: np.ndarray) -> GemmBeats:
    """The operand streams for A (M x K codes) @ B (K x N codes), in the array's beat order
    (MX arrays: the two MX encodings)."""
    if config.block is not None:
        return _mx_beats(config, *mx_operands(config, a_codes, b_codes))
    a_codes, b_codes = lane_codes(config, a_codes, b_codes)
    if a_codes.ndim != 2 or b_codes.ndim != 2 or a_codes.shape[1] != b_codes.shape[0]:
        shapes = f"{a_codes.shape} and {b_codes.shape}"
        raise ValueError(f"gemm operands must be (M, K) and (K, N) codes, got shapes {shapes}")
    (m, k), n = a_codes.shape, b_codes.shape[1]
    check_gemm(config, m, k, n)
    r, c = config.rows, config.cols
    a_zero, b_zero = (_code_of(stream, zp) for stream, zp in ((config.a_stream, config.a_zero_point),
                                                              (config.b_stream, config.b_zero_point)))  # fmt: skip
    if config.dataflow == "os":
        mt, nt = _ceil_div(m, r), _ceil_div(n, c)
        a = _padded(a_codes, mt * r, k, a_zero).reshape(mt, r, k).transpose(0, 2, 1)  # (mt, k, r)
        b = _padded(b_codes, k, nt * c, b_zero).reshape(k, nt, c).transpose(1, 0, 2)  # (nt, k, c)
        a_beats = np.broadcast_to(a[:, None], (mt, nt, k, r)).reshape(-1, r)
        b_beats = np.broadcast_to(b[None], (mt, nt, k, c)).reshape(-1, c)
        return GemmBeats(a_beats, b_beats, mt * nt * r)
    kt, nt = _ceil_div(k, r), _ceil_div(n, c)
    a = _padded(a_codes, m, kt * r, a_zero).reshape(m, kt, r).transpose(1, 0, 2)  # (kt, m, r)
    b = _padded(b_codes, kt * r, nt * c, b_zero).reshape(kt, r, nt, c).transpose(2, 0, 1, 3)  # (nt, kt, r, c)
    a_beats = np.broadcast_to(a[None], (nt, kt, m, r)).reshape(-1, r)
    return GemmBeats(a_beats, b.reshape(-1, c), nt * m)


def lane_codes(config: ArrayConfig, a: object, b: object) -> tuple[np.ndarray, np.ndarray]:
    """(M, K) and (K, N) code matrices; OliVe encodings must pair the lanes of their stream:
    A along K (weight-stationary) or M (output-stationary), B along N."""
    a_axis = 1 if config.dataflow == "ws" else 0
    return _ovp_codes(config.a_ovp, a, a_axis, "A"), _ovp_codes(config.b_ovp, b, 1, "B")


def _ovp_codes(fmt: object, enc: object, axis: int, role: str) -> np.ndarray:
    from numerics import OVPEncoded

    if fmt is None:
        return np.asarray(enc)
    same_pairs = isinstance(enc, OVPEncoded) and (enc.format.element_bits, enc.format.both_outliers) == (
        fmt.element_bits,  # type: ignore[attr-defined]
        fmt.both_outliers,  # type: ignore[attr-defined]
    )  # the scales (per tensor, channel or row) are applied outside the array
    if not same_pairs or len(enc.shape) != 2:  # type: ignore[attr-defined]
        raise ValueError(f"{role} must be a 2-D {getattr(fmt, 'name', fmt)} encoding (OVPEncoded)")
    names = ("M", "K") if role == "A" else ("K", "N")
    if enc.axis != axis or enc.shape[axis] % 2:
        raise ValueError(f"{role} must pair its elements along {names[axis]} (axis {axis}) with an even length there, "
                         f"got axis {enc.axis} and shape {enc.shape}")  # fmt: skip
    pairs = enc.codes.reshape(*enc.codes.shape[:-2], -1)  # (other axis, paired axis)
    return pairs if axis == 1 else pairs.T


def _mx_beats(config: ArrayConfig, a: np.ndarray, b: np.ndarray, a_scale: np.ndarray, b_scale: np.ndarray) -> GemmBeats:
    """Beats with the block scales beside the codes. Weight-stationary: a k-fold lies inside one
    block, so an a-beat carries one scale (its first k's); output-stationary: one per lane."""
    codes = gemm_beats(replace(config, block=None), a, b)
    if config.dataflow == "ws":  # padding rows of a k-fold carry the fold's scale
        k_padded = _ceil_div(a.shape[1], config.rows) * config.rows
        b_scale = np.pad(b_scale, ((0, k_padded - b_scale.shape[0]), (0, 0)), mode="edge")
        a_scale = np.pad(a_scale, ((0, 0), (0, k_padded - a_scale.shape[1])), mode="edge")
    scales = gemm_beats(replace(config, block=None), a_scale, b_scale)
    a_scales = scales.a[:, 0].copy() if config.dataflow == "ws" else scales.a
    return GemmBeats(codes.a, codes.b, codes.results, a_scales, scales.b)


def result_matrix(config: ArrayConfig, beats: np.ndarray, m: int, n: int) -> np.ndarray:
    """Reassemble (beats, C) result lanes into the M x N result (any trailing lane fields kept)."""
    r, c = config.rows, config.cols
    nt = _ceil_div(n, c)
    rest = beats.shape[2:]
    if config.dataflow == "os":
        mt = _ceil_div(m, r)
        tiles = beats.reshape(mt, nt, r, c, *rest).swapaxes(1, 2).reshape(mt * r, nt * c, *rest)
    else:
        tiles = beats.reshape(nt, m, c, *rest).swapaxes(0, 1).reshape(m, nt * c, *rest)
    return tiles[:m, :n]
