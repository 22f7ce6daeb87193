"""Exact dot products and matrix products over codes: the golden model of every PE and array.

Operands are lowered to (significand, exponent); the accumulator spec says what the running sum
is. Composite operands (block, pair, mixed formats) come as their `Encoded` bundles and lower
with every scale folded in. Results come back as an `ExactResult` (the accumulator's contents,
exactly) or, with `out_format`, rounded once to codes of that format.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from . import _kernels as k
from ._accumulate import fixed_accumulate, float_accumulate
from ._accumulators import Accumulator, ExactAccumulator, FixedAccumulator, FloatAccumulator, QuireAccumulator
from ._composite import CompositeFormat, Encoded
from ._exact import ExactResult, limb_bits_for, limb_product, normalize, to_limbs
from ._format import ElementFormat
from ._ovp import OVPFormat
from ._registry import Format, get
from ._rounding import Rounding, as_rounding

_MAX_OPERAND_SIGNIFICAND_BITS = 40


@dataclass
class _Operand:
    """Lowered view of one operand (reduction axis last), with special values set aside."""

    name: str
    fmt: Format
    sig: np.ndarray
    exp: np.ndarray
    lsb: int
    special: np.ndarray
    proxy: np.ndarray  # stand-ins whose float products classify outputs: NaN, +-Inf or finite
    values: np.ndarray
    block_size: int | None = None

    @classmethod
    def build(cls, data: Any, fmt: Format, role: str) -> _Operand:
        if isinstance(fmt, CompositeFormat):
            if not isinstance(data, Encoded) or getattr(data, "format", None) != fmt:
                raise TypeError(f"{role}: a {fmt.name} operand must be {fmt.name}.encode(...) output")
            sig, exp, special_values = data.lower_with_specials()
            if sig.size and int(np.abs(sig).max()).bit_length() > _MAX_OPERAND_SIGNIFICAND_BITS:
                raise ValueError(f"{role}: {fmt.name} significands with scales folded in exceed "
                                 f"{_MAX_OPERAND_SIGNIFICAND_BITS} bits")  # fmt: skip
            special = special_values != 0  # NaN (e.g. every element of a NaN-scale MX block) or +-Inf
            lsb = int(exp[~special].min()) if (~special).any() else 0
            proxy = np.where(special, special_values, np.sign(sig)).astype(np.float64)
            return cls(fmt.name, fmt, sig, np.where(special, lsb, exp), lsb, special, proxy, data.decode(),
                       getattr(fmt, "block_size", None))  # fmt: skip
        if fmt.significand_bits > _MAX_OPERAND_SIGNIFICAND_BITS:
            raise ValueError(
                f"{role} format {fmt.name} has {fmt.significand_bits}-bit significands; "
                f"dot products take formats of <= {_MAX_OPERAND_SIGNIFICAND_BITS}"
            )
        codes = fmt.check_codes(data)
        kind, neg, mag, exp = fmt.split(codes)
        special = kind >= k.INF
        sig = np.where(special, 0, np.where(neg, -mag, mag))
        proxy = np.sign(sig).astype(np.float64)
        proxy[kind == k.INF] = np.where(neg[kind == k.INF], -np.inf, np.inf)
        proxy[kind == k.NAN] = np.nan
        return cls(fmt.name, fmt, sig, np.where(special, fmt.lsb_exponent, exp), fmt.lsb_exponent, special, proxy,
                   fmt.decode(codes))  # fmt: skip

    _ARRAYS = ("sig", "exp", "special", "proxy", "values")

    def map(self, fn: Any, block_size: int | None = None) -> _Operand:
        """The same operand with fn(array, field name) applied to each per-element array."""
        arrays = {f: fn(getattr(self, f), f) for f in self._ARRAYS}
        return replace(self, **arrays, block_size=block_size or self.block_size)

    def transposed(self) -> _Operand:
        return self.map(lambda x, _: np.transpose(x))

    def reshaped(self, shape: tuple[int, ...]) -> _Operand:
        return self.map(lambda x, _: np.reshape(x, shape))

    def blocked(self, block_size: int) -> _Operand:
        """Split the last axis into (n_blocks, block_size), zero-padded (exponent padding: lsb)."""
        pad = (-self.sig.shape[-1]) % block_size
        fills = {"sig": 0, "exp": self.lsb, "special": False, "proxy": 0.0, "values": 0.0}

        def split(x: np.ndarray, field: str) -> np.ndarray:
            if pad:
                x = np.concatenate([x, np.full((*x.shape[:-1], pad), fills[field], x.dtype)], axis=-1)
            return x.reshape(*x.shape[:-1], -1, block_size)

        return self.map(split, block_size)


def _specials(a: _Operand, b: _Operand, contract: Any) -> np.ndarray:
    if not (a.special.any() or b.special.any()):
        return np.zeros(contract(a.proxy, b.proxy).shape)
    with np.errstate(invalid="ignore"):
        total = contract(a.proxy, b.proxy)
    return np.where(np.isfinite(total), 0.0, total)


def _exact(a: _Operand, b: _Operand, contract: Any, k_terms: int) -> ExactResult:
    limb_bits = limb_bits_for(k_terms)
    a_limbs = to_limbs(a.sig, a.exp, a.lsb, limb_bits)
    b_limbs = to_limbs(b.sig, b.exp, b.lsb, limb_bits)
    limbs = limb_product(a_limbs, b_limbs, contract, limb_bits)
    return ExactResult(limbs, limb_bits, a.lsb + b.lsb, _specials(a, b, contract))


def _pairs(
    a_shape: tuple[int, ...], b_shape: tuple[int, ...], matrix: bool
) -> tuple[np.ndarray, np.ndarray, tuple[int, ...]]:
    """Row indices into the (rows, K) operands for every output, and the output shape."""
    if matrix:
        m, n = a_shape[0], b_shape[0]
        ia, ib = np.meshgrid(np.arange(m), np.arange(n), indexing="ij")
        return ia.reshape(-1), ib.reshape(-1), (m, n)
    out_shape = np.broadcast_shapes(a_shape, b_shape)
    ia = np.broadcast_to(np.arange(int(np.prod(a_shape))).reshape(a_shape), out_shape)
    ib = np.broadcast_to(np.arange(int(np.prod(b_shape))).reshape(b_shape), out_shape)
    return ia.reshape(-1), ib.reshape(-1), out_shape


def _rows(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(-1, x.shape[-1]))


def _contraction(matrix: bool, blocked: bool = False) -> Any:
    if blocked:  # per block: (..., nb, bs) x (..., nb, bs) -> (..., nb)
        if matrix:
            return lambda x, y: np.einsum("mbk,nbk->mnb", x, y)
        return lambda x, y: (x * y).sum(axis=-1)
    if matrix:
        return lambda x, y: x @ y.T
    return lambda x, y: (x * y).sum(axis=-1)


def _float(a: _Operand, b: _Operand, acc: FloatAccumulator, matrix: bool) -> ExactResult:
    """Float accumulation (see `FloatAccumulator`): the addends are the exact products, or the
    exact sums of `block` products (MX: the scaled block dots) rounded to the format; they are
    added in k order or as a pairwise tree."""
    composite = a.block_size or b.block_size
    block = acc.block or (None if acc.order == "sequential" else composite)
    if acc.order == "blocked" and block is None:
        raise ValueError(f"order='blocked' needs a block size for element formats ({a.name} x {b.name}): "
                         "give FloatAccumulator(..., block=...)")  # fmt: skip
    mode = int(as_rounding(acc.rounding))
    saturate = not (acc.format.has_inf or acc.format.has_nan)
    params = acc.format.params(saturate)
    window, nearest_even_align = acc.window or 0, acc.align == "nearest_even"
    if block is not None:
        ab, bb = a.blocked(block), b.blocked(block)
        per_block = _exact(ab, bb, _contraction(matrix, blocked=True), block)
        codes = per_block.round_to(acc.format, rounding=acc.rounding, saturate=saturate).reshape(per_block.shape)
        terms = acc.format.decode(codes)
        rows = np.ascontiguousarray(terms.reshape(-1, terms.shape[-1]))
        out = np.empty(rows.shape[0])
        index = np.arange(rows.shape[0])
        float_accumulate(rows, np.ones((1, rows.shape[1])), index, np.zeros_like(index), acc.order == "pairwise",
                         params, mode, window, nearest_even_align, out)  # fmt: skip
        return _from_float(out.reshape(terms.shape[:-1]), acc.format.lsb_exponent)
    bits = _significand_bound(a) + _significand_bound(b)
    if bits > 53:
        raise ValueError(
            f"FloatAccumulator needs products exact in float64: {a.name} x {b.name} has "
            f"{bits} significand bits (> 53)" + ("; order='blocked' sums each block exactly first" if composite else "")
        )
    ia, ib, out_shape = _pairs(a.sig.shape[:-1], b.sig.shape[:-1], matrix)
    out = np.empty(ia.size, np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        float_accumulate(_rows(a.values), _rows(b.values), ia, ib, acc.order == "pairwise", params, mode, window,
                         nearest_even_align, out)  # fmt: skip
    return _from_float(out.reshape(out_shape), acc.format.lsb_exponent)


def _significand_bound(op: _Operand) -> int:
    """Bits of the largest significand the operand can hold (composites: of the lowered data)."""
    if isinstance(op.fmt, CompositeFormat):
        return int(np.abs(op.sig).max()).bit_length() if op.sig.size else 1
    return op.fmt.significand_bits  # type: ignore[union-attr]


def _accumulate(a: _Operand, b_rows: _Operand, acc: Accumulator, matrix: bool) -> ExactResult:
    """a: (..., K); b_rows: (..., K) (for matrix products b is transposed to (N, K))."""
    k_terms = a.sig.shape[-1]
    contract = _contraction(matrix)
    if isinstance(acc, ExactAccumulator):
        return _exact(a, b_rows, contract, k_terms)
    if isinstance(acc, QuireAccumulator):
        for op in (a, b_rows):
            if op.fmt != acc.posit:
                raise ValueError(f"the quire of {acc.posit.name} accumulates {acc.posit.name} products, got {op.name}")
        result = _exact(a, b_rows, contract, k_terms)
        overflow = ~result.fits(acc.width)
        if overflow.any():
            special = np.where(overflow, np.nan, result.special)
            result = ExactResult(result.limbs, result.limb_bits, result.lsb_exponent, special)
        return result
    if isinstance(acc, FloatAccumulator):
        return _float(a, b_rows, acc, matrix)
    composite = [op.name for op in (a, b_rows) if isinstance(op.fmt, CompositeFormat)]
    ia, ib, out_shape = _pairs(a.sig.shape[:-1], b_rows.sig.shape[:-1], matrix)
    if isinstance(acc, FixedAccumulator):
        for op in (a, b_rows):
            if op.special.any():
                raise ValueError(f"a fixed-point accumulator cannot take Inf/NaN operands ({op.name} codes hold some)")
        if composite and acc.lsb_exponent is None:
            raise ValueError(f"{composite[0]} has no fixed product lsb: give FixedAccumulator an lsb_exponent")
        lsb = a.lsb + b_rows.lsb if acc.lsb_exponent is None else acc.lsb_exponent
        out = np.empty(ia.size, np.int64)
        fixed_accumulate(_rows(a.sig), _rows(a.exp), _rows(b_rows.sig), _rows(b_rows.exp), ia, ib, lsb, acc.width,
                         acc.overflow == "saturate", out)  # fmt: skip
        return ExactResult.from_int64(out.reshape(out_shape), lsb)
    raise TypeError(
        "accumulator must be one of ExactAccumulator, FixedAccumulator, QuireAccumulator, FloatAccumulator; "
        f"got {acc!r}"
    )


def _from_float(values: np.ndarray, lsb: int) -> ExactResult:
    finite = np.isfinite(values)
    frac, exp = np.frexp(np.where(finite, values, 0.0))
    sig = (frac * 2.0**53).astype(np.int64)
    shift = lsb - (exp.astype(np.int64) - 53)
    sig = np.where(shift > 0, sig >> np.clip(shift, 0, 63), sig)  # the dropped bits are zeros
    exps = np.maximum(exp.astype(np.int64) - 53, lsb)
    limbs = np.moveaxis(to_limbs(sig, exps, lsb, 20), 0, -1)
    return ExactResult(normalize(limbs, 20), 20, lsb, np.where(finite, 0.0, values))


def _finish(
    result: ExactResult, out_format: Format | str | None, rounding: Rounding | str, saturate: bool | None
) -> Any:
    if out_format is None:
        return result
    fmt = get(out_format)
    if not isinstance(fmt, ElementFormat):
        raise ValueError(f"out_format must be an element format, got {fmt.name}")
    return result.round_to(fmt, rounding=rounding, saturate=saturate)


def _reduction_axis_check(data: Any, fmt: Format, axis: int, role: str, accumulator: Accumulator | None = None) -> None:
    # OliVe pairs share no scale: with an exact or fixed accumulator every element lowers on its
    # own, so pairs may run along any axis (an array pairs its lanes), as with a float accumulator
    # adding products one by one; blocked orders round block by block and need the blocks along
    # the reduction.
    if isinstance(fmt, OVPFormat) and not (isinstance(accumulator, FloatAccumulator)
                                           and accumulator.order != "sequential"):  # fmt: skip
        return
    if isinstance(fmt, CompositeFormat) and isinstance(data, Encoded):
        shape, enc_axis = getattr(data, "shape", None), getattr(data, "axis", None)
        if shape is not None and enc_axis is not None and enc_axis != axis % len(shape):
            raise ValueError(f"{role}: {fmt.name} blocks must run along the reduction axis {axis % len(shape)}, "
                             f"got axis {enc_axis}")  # fmt: skip


def _shape_of(data: Any) -> tuple[int, ...]:
    return tuple(data.shape) if hasattr(data, "shape") else np.shape(data)


def matmul(
    a: Any,
    b: Any,
    a_format: Format | str,
    b_format: Format | str,
    accumulator: Accumulator | None = None,
    out_format: Format | str | None = None,
    rounding: Rounding | str = Rounding.NEAREST_EVEN,
    saturate: bool | None = None,
) -> Any:
    """(M, K) @ (K, N) over codes (composite formats: their encodings, blocks along K); 1-D
    operands of element formats act as a row or column vector.

    Returns an `ExactResult` (the accumulator contents) or, with `out_format`, codes of it.
    """
    a_fmt, b_fmt = get(a_format), get(b_format)
    a_shape, b_shape = _shape_of(a), _shape_of(b)
    if len(a_shape) not in (1, 2) or len(b_shape) not in (1, 2):
        raise ValueError(f"matmul takes 1-D or 2-D operands, got shapes {a_shape} and {b_shape}")
    a2 = (1, a_shape[0]) if len(a_shape) == 1 else a_shape
    b2 = (b_shape[0], 1) if len(b_shape) == 1 else b_shape
    if a2[1] != b2[0]:
        raise ValueError(
            f"matmul: a has shape {a_shape} and b has shape {b_shape}: inner dimensions {a2[1]} and {b2[0]} differ"
        )
    _reduction_axis_check(a, a_fmt, -1, "a", accumulator)
    _reduction_axis_check(b, b_fmt, 0, "b", accumulator)
    a_op = _Operand.build(a, a_fmt, "a")
    b_op = _Operand.build(b, b_fmt, "b")
    if len(a_shape) == 1:
        a_op = a_op.reshaped(a2)
    if len(b_shape) == 1:
        b_op = b_op.reshaped(b2)
    result = _accumulate(a_op, b_op.transposed(), accumulator or ExactAccumulator(), True)
    if len(a_shape) == 1 or len(b_shape) == 1:
        keep = [s for s, flag in ((a2[0], len(a_shape) == 2), (b2[1], len(b_shape) == 2)) if flag]
        result = _reshape(result, tuple(keep))
    return _finish(result, out_format, rounding, saturate)


def _reshape(result: ExactResult, shape: tuple[int, ...]) -> ExactResult:
    return ExactResult(
        result.limbs.reshape(*shape, result.limbs.shape[-1]),
        result.limb_bits,
        result.lsb_exponent,
        result.special.reshape(shape),
    )


def dot(
    a: Any,
    b: Any,
    a_format: Format | str,
    b_format: Format | str,
    accumulator: Accumulator | None = None,
    out_format: Format | str | None = None,
    rounding: Rounding | str = Rounding.NEAREST_EVEN,
    saturate: bool | None = None,
) -> Any:
    """Dot products over the last axis of a and b (leading axes broadcast)."""
    a_fmt, b_fmt = get(a_format), get(b_format)
    a_shape, b_shape = _shape_of(a), _shape_of(b)
    if len(a_shape) == 0 or len(b_shape) == 0 or a_shape[-1] != b_shape[-1]:
        raise ValueError(f"dot: a has shape {a_shape} and b has shape {b_shape}; the last axes must match")
    try:
        np.broadcast_shapes(a_shape[:-1], b_shape[:-1])
    except ValueError:
        raise ValueError(f"dot: leading shapes {a_shape[:-1]} and {b_shape[:-1]} do not broadcast") from None
    _reduction_axis_check(a, a_fmt, -1, "a", accumulator)
    _reduction_axis_check(b, b_fmt, -1, "b", accumulator)
    a_op, b_op = _Operand.build(a, a_fmt, "a"), _Operand.build(b, b_fmt, "b")
    result = _accumulate(a_op, b_op, accumulator or ExactAccumulator(), False)
    return _finish(result, out_format, rounding, saturate)
