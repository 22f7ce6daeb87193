"""Exact dot products and matrix products over codes: the golden model of every PE and array.

Operands are lowered to (significand, exponent); the accumulator spec says what the running sum
is. Results come back as an `ExactResult` (the accumulator's contents, exactly) or, with
`out_format`, rounded once to codes of that format.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import _kernels as k
from ._accumulate import fixed_accumulate, float_accumulate
from ._accumulators import Accumulator, ExactAccumulator, FixedAccumulator, FloatAccumulator, QuireAccumulator
from ._exact import ExactResult, limb_bits_for, limb_product, to_limbs
from ._format import ElementFormat
from ._registry import get
from ._rounding import Rounding

_MAX_OPERAND_SIGNIFICAND_BITS = 40


class _Operand:
    """Lowered view of one operand, with its special values set aside."""

    def __init__(self, codes: Any, fmt: ElementFormat, role: str) -> None:
        if fmt.significand_bits > _MAX_OPERAND_SIGNIFICAND_BITS:
            raise ValueError(
                f"{role} format {fmt.name} has {fmt.significand_bits}-bit significands; "
                f"dot products take formats of <= {_MAX_OPERAND_SIGNIFICAND_BITS}"
            )
        self.fmt = fmt
        self.codes = fmt.check_codes(codes)
        cls, neg, sig, exp = fmt.split(self.codes)
        self.special = cls >= k.INF
        self.sig = np.where(self.special, 0, np.where(neg, -sig, sig))
        self.exp = np.where(self.special, fmt.lsb_exponent, exp)
        # Stand-ins whose float product and sum classify each output: NaN, +-Inf, or finite.
        proxy = np.sign(self.sig).astype(np.float64)
        proxy[cls == k.INF] = np.where(neg[cls == k.INF], -np.inf, np.inf)
        proxy[cls == k.NAN] = np.nan
        self.proxy = proxy


def _specials(a: _Operand, b: _Operand, contract: Any) -> np.ndarray:
    if not (a.special.any() or b.special.any()):
        return np.zeros(contract(a.proxy, b.proxy).shape)
    with np.errstate(invalid="ignore"):
        total = contract(a.proxy, b.proxy)
    return np.where(np.isfinite(total), 0.0, total)


def _exact(a: _Operand, b: _Operand, contract: Any, k_terms: int) -> ExactResult:
    limb_bits = limb_bits_for(k_terms)
    a_limbs = to_limbs(a.sig, a.exp, a.fmt.lsb_exponent, limb_bits)
    b_limbs = to_limbs(b.sig, b.exp, b.fmt.lsb_exponent, limb_bits)
    limbs = limb_product(a_limbs, b_limbs, contract, limb_bits)
    return ExactResult(limbs, limb_bits, a.fmt.lsb_exponent + b.fmt.lsb_exponent, _specials(a, b, contract))


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


def _accumulate(a: _Operand, b_rows: _Operand, acc: Accumulator, matrix: bool) -> ExactResult:
    """a: (..., K); b_rows: (..., K) (for matrix products b is transposed to (N, K))."""
    k_terms = a.sig.shape[-1]
    if matrix:
        contract = lambda x, y: x @ y.T  # noqa: E731
    else:
        contract = lambda x, y: (x * y).sum(axis=-1)  # noqa: E731
    if isinstance(acc, ExactAccumulator):
        return _exact(a, b_rows, contract, k_terms)
    if isinstance(acc, QuireAccumulator):
        for op in (a, b_rows):
            if op.fmt != acc.posit:
                raise ValueError(
                    f"the quire of {acc.posit.name} accumulates {acc.posit.name} products, got {op.fmt.name}"
                )
        result = _exact(a, b_rows, contract, k_terms)
        overflow = ~result.fits(acc.width)
        if overflow.any():
            result = ExactResult(
                result.limbs, result.limb_bits, result.lsb_exponent, np.where(overflow, np.nan, result.special)
            )
        return result
    ia, ib, out_shape = _pairs(a.sig.shape[:-1], b_rows.sig.shape[:-1], matrix)
    if isinstance(acc, FixedAccumulator):
        for op in (a, b_rows):
            if op.special.any():
                raise ValueError(
                    f"a fixed-point accumulator cannot take Inf/NaN operands ({op.fmt.name} codes hold some)"
                )
        lsb = a.fmt.lsb_exponent + b_rows.fmt.lsb_exponent if acc.lsb_exponent is None else acc.lsb_exponent
        out = np.empty(ia.size, np.int64)
        fixed_accumulate(
            _rows(a.sig),
            _rows(a.exp),
            _rows(b_rows.sig),
            _rows(b_rows.exp),
            ia,
            ib,
            lsb,
            acc.width,
            acc.overflow == "saturate",
            out,
        )
        return ExactResult.from_int64(out.reshape(out_shape), lsb)
    if isinstance(acc, FloatAccumulator):
        if a.fmt.significand_bits + b_rows.fmt.significand_bits > 53:
            raise ValueError(
                f"FloatAccumulator needs products exact in float64: {a.fmt.name} x {b_rows.fmt.name} has "
                f"{a.fmt.significand_bits + b_rows.fmt.significand_bits} significand bits (> 53)"
            )
        out = np.empty(ia.size, np.float64)
        float_accumulate(
            _rows(a.fmt.decode(a.codes)),
            _rows(b_rows.fmt.decode(b_rows.codes)),
            ia,
            ib,
            acc.order == "pairwise",
            acc.format.params(not (acc.format.has_inf or acc.format.has_nan)),
            out,
        )
        return _from_float(out.reshape(out_shape), acc.format.lsb_exponent)
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
    limbs = to_limbs(sig, exps, lsb, 20)
    return ExactResult(_move_limb_axis(limbs), 20, lsb, np.where(finite, 0.0, values))


def _move_limb_axis(limbs: np.ndarray) -> np.ndarray:
    from ._exact import normalize

    return normalize(np.moveaxis(limbs, 0, -1).copy(), 20)


def _finish(
    result: ExactResult, out_format: ElementFormat | str | None, rounding: Rounding | str, saturate: bool | None
) -> Any:
    if out_format is None:
        return result
    return result.round_to(get(out_format), rounding=rounding, saturate=saturate)


def matmul(
    a: Any,
    b: Any,
    a_format: ElementFormat | str,
    b_format: ElementFormat | str,
    accumulator: Accumulator | None = None,
    out_format: ElementFormat | str | None = None,
    rounding: Rounding | str = Rounding.NEAREST_EVEN,
    saturate: bool | None = None,
) -> Any:
    """(M, K) @ (K, N) over codes; 1-D operands act as a row or column vector.

    Returns an `ExactResult` (the accumulator contents) or, with `out_format`, codes of it.
    """
    a_fmt, b_fmt = get(a_format), get(b_format)
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.ndim not in (1, 2) or b_arr.ndim not in (1, 2):
        raise ValueError(f"matmul takes 1-D or 2-D code arrays, got shapes {a_arr.shape} and {b_arr.shape}")
    a2 = a_arr.reshape(1, -1) if a_arr.ndim == 1 else a_arr
    b2 = b_arr.reshape(-1, 1) if b_arr.ndim == 1 else b_arr
    if a2.shape[1] != b2.shape[0]:
        raise ValueError(
            f"matmul: a has shape {a_arr.shape} and b has shape {b_arr.shape}: inner dimensions "
            f"{a2.shape[1]} and {b2.shape[0]} differ"
        )
    result = _accumulate(_Operand(a2, a_fmt, "a"), _Operand(b2.T, b_fmt, "b"), accumulator or ExactAccumulator(), True)
    if a_arr.ndim == 1 or b_arr.ndim == 1:
        keep = [s for s, flag in ((a2.shape[0], a_arr.ndim == 2), (b2.shape[1], b_arr.ndim == 2)) if flag]
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
    a_format: ElementFormat | str,
    b_format: ElementFormat | str,
    accumulator: Accumulator | None = None,
    out_format: ElementFormat | str | None = None,
    rounding: Rounding | str = Rounding.NEAREST_EVEN,
    saturate: bool | None = None,
) -> Any:
    """Dot products over the last axis of a and b (leading axes broadcast)."""
    a_fmt, b_fmt = get(a_format), get(b_format)
    a_arr, b_arr = np.asarray(a), np.asarray(b)
    if a_arr.ndim == 0 or b_arr.ndim == 0 or a_arr.shape[-1] != b_arr.shape[-1]:
        raise ValueError(f"dot: a has shape {a_arr.shape} and b has shape {b_arr.shape}; the last axes must match")
    try:
        np.broadcast_shapes(a_arr.shape[:-1], b_arr.shape[:-1])
    except ValueError:
        raise ValueError(f"dot: leading shapes {a_arr.shape[:-1]} and {b_arr.shape[:-1]} do not broadcast") from None
    result = _accumulate(
        _Operand(a_arr, a_fmt, "a"), _Operand(b_arr, b_fmt, "b"), accumulator or ExactAccumulator(), False
    )
    return _finish(result, out_format, rounding, saturate)
