"""OliVe outlier-victim pairs (ISCA 2023): normal ints, and outliers that borrow their partner's slot.

Adjacent elements (2i, 2i+1) along the contiguous axis form a pair. A normal element is an int in
[-N, N] (N = 7 for 4 bits, 127 for 8). An outlier is stored as an "abfloat" (sign, 2 exponent
bits, b-3 mantissa bits; value (2**M + m) * 2**(e + 2) int units, (e, m) = (0, 0) excluded) and
its partner becomes the victim: the identifier code 100..0, read as 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numba as nb
import numpy as np

from ._composite import CompositeFormat, Encoded, unblock
from ._format import as_float_array

_fast = nb.njit(cache=True, nogil=True, parallel=True)


def abfloat_grid(bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(positive abfloat values ascending, their magnitude codes e << M | m)."""
    mant = bits - 3
    entries = sorted(((1 << mant) + m) << (e + 2) for e in range(4) for m in range(1 << mant) if (e, m) != (0, 0))
    codes = []
    for value in entries:
        for e in range(4):
            m = (value >> (e + 2)) - (1 << mant)
            if 0 <= m < (1 << mant) and ((1 << mant) + m) << (e + 2) == value:
                codes.append((e << mant) | m)
                break
    return np.array(entries, np.float64), np.array(codes, np.int64)


@_fast
def _encode_pairs(x, scale, out, normal_max, threshold, grid, grid_codes, bits, keep_larger, scan):  # type: ignore[no-untyped-def]  # fmt: skip
    """Pair codes of x / scale[p] for (P, 2) pairs x; `scan`: OliVe's grid scan (see OVPFormat.rounding)."""
    mask = (np.int64(1) << bits) - 1
    victim = np.int64(1) << (bits - 1)
    mids = (grid[1:] + grid[:-1]) / 2
    for p in nb.prange(x.shape[0]):
        a, b = np.float64(x[p, 0]) / scale[p], np.float64(x[p, 1]) / scale[p]
        # the threshold is the tie between N and the least abfloat: the scan ends on the outlier
        out_a = abs(a) >= threshold if scan else abs(a) > threshold
        out_b = abs(b) >= threshold if scan else abs(b) > threshold
        if out_a and out_b:
            if keep_larger and abs(b) > abs(a):
                out_a = False
            else:
                out_b = False
        codes = np.empty(2, np.int64)
        for slot in range(2):
            v = a if slot == 0 else b
            is_out = out_a if slot == 0 else out_b
            partner_out = out_b if slot == 0 else out_a
            if partner_out:
                codes[slot] = victim
            elif is_out:
                # nearest abfloat, ties toward +inf (OliVe's grid search), saturating at the top
                magnitude = abs(v)
                if v >= 0:
                    index = np.searchsorted(mids, magnitude, side="right")
                else:
                    index = np.searchsorted(mids, magnitude, side="left")
                codes[slot] = grid_codes[index] | (victim if v < 0 else 0)
            else:
                n = np.rint(v)
                if scan and v - n == 0.5:  # a tie that rint sent down to even: the scan keeps the upper
                    n += 1.0
                n = min(max(n, -normal_max), normal_max)
                codes[slot] = np.int64(n) & mask
        out[p, 0], out[p, 1] = codes[0], codes[1]


@nb.njit(cache=True, nogil=True)
def _element(c: int, partner: int, bits: int) -> tuple[int, int]:
    """OliVe's decoder for one slot: (int, exponent); a victim is 0, an outlier (2**M + m, e + 2)."""
    mant = bits - 3
    victim = np.int64(1) << (bits - 1)
    if c == victim:
        return 0, 0
    if partner == victim:
        magnitude = (np.int64(1) << mant) + (c & ((np.int64(1) << mant) - 1))
        return (-magnitude if c & victim else magnitude), ((c >> mant) & 3) + 2
    return (c - (np.int64(1) << bits) if c & victim else c), 0


@_fast
def _lower_pairs(codes, sig, exp, bits):  # type: ignore[no-untyped-def]
    for p in nb.prange(codes.shape[0]):
        c0, c1 = np.int64(codes[p, 0]), np.int64(codes[p, 1])
        sig[p, 0], exp[p, 0] = _element(c0, c1, bits)
        sig[p, 1], exp[p, 1] = _element(c1, c0, bits)


@_fast
def _decode_pairs(codes, scale, out, bits):  # type: ignore[no-untyped-def]
    """Values of (P, 2) pair codes times a per-pair scale."""
    for p in nb.prange(codes.shape[0]):
        c0, c1 = np.int64(codes[p, 0]), np.int64(codes[p, 1])
        s0, e0 = _element(c0, c1, bits)
        s1, e1 = _element(c1, c0, bits)
        out[p, 0] = np.float64(s0 << e0) * scale[p]
        out[p, 1] = np.float64(s1 << e1) * scale[p]


@dataclass(frozen=True)
class OVPFormat(CompositeFormat):
    """OliVe pairs of `element_bits` (4 or 8) with a float32 scale per tensor or per channel.

    `rounding`: "olive" (the reference's nearest-value scan over the normals then the outliers,
    both ascending, keeping the last minimum: ties go toward +inf, and |x / s| at the threshold
    becomes an outlier) or "nearest_even" (normal ties to even, the threshold stays normal).
    `scale_mode`: "mse" (least squared error among absmax / t, 48 t geometric from N to the top
    abfloat, on up to 65,536 pairs per scale); "olive" (the reference's search: least squared
    error among x_max * i / 100 / N, i in range(*search_percent, 2), x_max = max|mean +- 3 std|);
    "absmax" maps absmax to the top abfloat.
    `both_outliers`: "keep_first" (OliVe's reference) or "keep_larger".
    """

    element_bits: int = 4
    both_outliers: Literal["keep_first", "keep_larger"] = "keep_first"
    scale_mode: Literal["mse", "olive", "absmax"] = "mse"
    channel_axis: int | None = None
    name: str = field(default="", compare=False)
    rounding: Literal["olive", "nearest_even"] = "olive"
    search_percent: tuple[int, int] = (75, 150)  # the reference's defaults; its scripts pass (75, 250)

    def __post_init__(self) -> None:
        if self.element_bits not in (4, 8):
            raise ValueError(f"element_bits must be 4 or 8, got {self.element_bits}")
        if self.both_outliers not in ("keep_first", "keep_larger"):
            raise ValueError(f"both_outliers must be 'keep_first' or 'keep_larger', got {self.both_outliers!r}")
        if self.scale_mode not in ("mse", "olive", "absmax"):
            raise ValueError(f"scale_mode must be 'mse', 'olive' or 'absmax', got {self.scale_mode!r}")
        if self.rounding not in ("olive", "nearest_even"):
            raise ValueError(f"rounding must be 'olive' or 'nearest_even', got {self.rounding!r}")
        low_high = self.search_percent
        if not (isinstance(low_high, tuple) and len(low_high) == 2 and all(type(v) is int for v in low_high)
                and 0 < low_high[0] < low_high[1]):  # fmt: skip
            raise ValueError(f"search_percent must be a pair of ints 0 < low < high, got {low_high!r}")
        if not self.name:
            object.__setattr__(self, "name", f"ovp{self.element_bits}")

    @property
    def bits(self) -> float:
        return float(self.element_bits)

    @property
    def normal_max(self) -> int:
        return (1 << (self.element_bits - 1)) - 1

    @property
    def grid(self) -> tuple[np.ndarray, np.ndarray]:
        return abfloat_grid(self.element_bits)

    @property
    def threshold(self) -> float:
        """Midway between N and the least abfloat: beyond it (and at it, under rounding="olive") an
        element is an outlier."""
        return (self.normal_max + float(self.grid[0][0])) / 2

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "bits": self.bits, "element": f"int{self.element_bits}+abfloat",
                "block_size": 2, "scale": "fp32", "scale_rule": self.scale_mode,
                "rounding": self.rounding}  # fmt: skip

    def _pairs(self, x: np.ndarray, axis: int) -> tuple[np.ndarray, int]:
        from ._composite import blocks_view

        return blocks_view(x, axis, 2, "pad", self.name)

    def _codes(self, pairs: np.ndarray, scale: np.ndarray) -> np.ndarray:
        grid, grid_codes = self.grid
        flat = np.ascontiguousarray(pairs.reshape(-1, 2))
        per_pair = np.ascontiguousarray(np.broadcast_to(scale, pairs.shape[:-1]), dtype=np.float64).reshape(-1)
        out = np.empty(flat.shape, np.uint8)
        _encode_pairs(flat, per_pair, out, self.normal_max, self.threshold, grid, grid_codes, self.element_bits,
                      self.both_outliers == "keep_larger", self.rounding == "olive")  # fmt: skip
        return out.reshape(pairs.shape)

    def encode(self, x: Any, axis: int = -1, scale: Any = None) -> OVPEncoded:
        """Pairs along `axis`; `scale` (scalar or per channel) overrides the search."""
        from ._registry import get

        fp32 = get("fp32")
        values = as_float_array(x, self.name)
        if not np.isfinite(values).all():
            raise ValueError(f"{self.name}: the input holds NaN or Inf; OliVe pairs have neither")
        pairs, length = self._pairs(values, axis)  # (..., n_pairs, 2), axis moved last
        if self.channel_axis is None:
            reduce: tuple[int, ...] = tuple(range(pairs.ndim))
            keep_shape: tuple[int, ...] = ()
        else:
            moved_axes = [a for a in range(values.ndim) if a != axis % values.ndim]
            if self.channel_axis % values.ndim == axis % values.ndim:
                raise ValueError(f"{self.name}: channel_axis must differ from the pair axis {axis}")
            channel = moved_axes.index(self.channel_axis % values.ndim)
            reduce = tuple(a for a in range(pairs.ndim) if a != channel)
            keep_shape = (values.shape[self.channel_axis],)
        if scale is not None:
            raw = np.broadcast_to(np.asarray(scale, np.float64), keep_shape).copy()
            if not (np.isfinite(raw).all() and (raw > 0).all()):
                raise ValueError(f"{self.name}: scale must be finite and positive")
        else:
            absmax = np.abs(pairs).max(axis=reduce) if pairs.size else np.zeros(keep_shape)
            limit = float(np.finfo(np.float32).max) * float(self.grid[0][-1])
            if (np.asarray(absmax, np.float64) > limit).any():  # the fp32 scale of the largest value would be Inf
                raise ValueError(f"{self.name}: absmax {float(np.max(absmax)):g} is beyond what an fp32 scale maps to "
                                 f"the top value ({limit:g})")  # fmt: skip
            raw = np.where(absmax > 0, absmax, 1.0) / float(self.grid[0][-1])
            if self.scale_mode == "mse":
                raw = self._search(pairs, np.where(absmax > 0, absmax, 1.0), reduce, keep_shape)
            elif self.scale_mode == "olive":
                raw = self._olive_search(values, pairs, reduce, keep_shape)
        scale_codes = fp32.encode(np.maximum(raw, 2.0**-149))  # never scale 0: fp32's smallest subnormal at least
        scale_values = self._expand(fp32.decode(scale_codes), pairs.ndim, reduce)
        codes = self._codes(pairs, scale_values)
        return OVPEncoded(self, codes, scale_codes, values.shape, axis % values.ndim, length, reduce)

    @staticmethod
    def _expand(scale: np.ndarray, ndim: int, reduce: tuple[int, ...]) -> np.ndarray:
        """Scale broadcast against (..., n_pairs) (the pair slot axis is added by the caller)."""
        shape = [1] * (ndim - 1)
        kept = [a for a in range(ndim) if a not in reduce]
        for a in kept:
            shape[a] = scale.shape[0]
        return scale.reshape(shape) if kept else scale.reshape(shape or ())

    def _search(
        self, pairs: np.ndarray, absmax: np.ndarray, reduce: tuple[int, ...], keep: tuple[int, ...]
    ) -> np.ndarray:
        """Per scale group, the candidate absmax / t with the least squared error."""
        sample = pairs
        limit = 1 << 16
        if not keep and pairs.size > 2 * limit:  # per tensor: a deterministic stride sample
            flat = pairs.reshape(-1, 2)
            sample = flat[:: flat.shape[0] // limit + 1].reshape(1, -1, 2)
            reduce = (0, 1, 2)
        targets = np.geomspace(self.normal_max, float(self.grid[0][-1]), 48)
        return self._least_error(sample, absmax / targets.reshape(-1, *(1,) * len(keep)), reduce)

    def _olive_search(
        self, values: np.ndarray, pairs: np.ndarray, reduce: tuple[int, ...], keep: tuple[int, ...]
    ) -> np.ndarray:
        """OliVe's search_mse (olive_quantization/antquant/quant_modules.py): per scale group,
        x_max = max(|mean + 3 std|, |mean - 3 std|) (std with Bessel's correction, as torch's), then
        the first fp32 scale x_max * i / 100 / N (alpha maps to N) with the least squared error over
        the whole group. A group of one element takes std 0 (torch's unbiased std is NaN there)."""
        from ._registry import get

        fp32 = get("fp32")
        if self.channel_axis is None:
            groups = values.reshape(1, -1)
        else:
            groups = np.moveaxis(values, self.channel_axis, 0).reshape(values.shape[self.channel_axis], -1)
        groups = groups.astype(np.float64)
        count = groups.shape[1]
        mean = groups.sum(axis=1) / max(count, 1)
        std = np.sqrt(((groups - mean[:, None]) ** 2).sum(axis=1) / max(count - 1, 1))
        x_max = np.maximum(np.abs(mean + 3 * std), np.abs(mean - 3 * std))
        x_max = np.where(x_max > 0, x_max, 1.0).reshape(keep)
        percents = np.arange(*self.search_percent, 2).reshape(-1, *(1,) * len(keep))
        candidates = fp32.decode(fp32.encode(x_max * (percents * 0.01) / self.normal_max))
        return self._least_error(pairs, candidates, reduce)

    def _least_error(self, pairs: np.ndarray, candidates: np.ndarray, reduce: tuple[int, ...]) -> np.ndarray:
        """Per scale group, the first of the candidate scales (T, *group shape) with the least squared error."""
        best_err = np.full(candidates.shape[1:], np.inf)
        best = candidates[0]
        for candidate in candidates:
            expanded = self._expand(candidate, pairs.ndim, reduce)
            sig, exp = _lower(self._codes(pairs, expanded), self.element_bits)
            approx = np.ldexp(sig.astype(np.float64), exp.astype(np.int32)) * expanded[..., None]
            err = ((approx - pairs) ** 2).sum(axis=reduce)
            better = err < best_err
            best_err = np.where(better, err, best_err)
            best = np.where(better, candidate, best)
        return best


def _lower(codes: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    flat = np.ascontiguousarray(codes.reshape(-1, 2))
    sig = np.empty(flat.shape, np.int64)
    exp = np.empty(flat.shape, np.int64)
    _lower_pairs(flat, sig, exp, bits)
    return sig.reshape(codes.shape), exp.reshape(codes.shape)


@dataclass(frozen=True)
class OVPEncoded(Encoded):
    """Codes (..., n_pairs, 2) with the pair axis moved last, and fp32 scale codes (per tensor:
    shape (); per channel: one per index of `channel_axis`)."""

    format: OVPFormat
    codes: np.ndarray
    scale: np.ndarray
    shape: tuple[int, ...]
    axis: int
    length: int
    reduce: tuple[int, ...]

    def _scale_values(self) -> tuple[np.ndarray, np.ndarray]:
        from ._registry import get

        fp32 = get("fp32")
        sig, exp = fp32.lower(self.scale)
        ndim = self.codes.ndim
        return (
            OVPFormat._expand(sig, ndim, self.reduce)[..., None],
            OVPFormat._expand(exp, ndim, self.reduce)[..., None],
        )

    def lower(self) -> tuple[np.ndarray, np.ndarray]:
        """(int, exponent) per element as OliVe's decoder outputs (victims are 0), pair layout."""
        return _lower(self.codes, self.format.element_bits)

    def lower_full(self) -> tuple[np.ndarray, np.ndarray]:
        sig, exp = self.lower()
        scale_sig, scale_exp = self._scale_values()
        full_sig = np.broadcast_to(sig * scale_sig, self.codes.shape)
        full_exp = np.broadcast_to(exp + scale_exp, self.codes.shape)
        return unblock(full_sig, self.shape, self.axis, self.length), unblock(
            full_exp, self.shape, self.axis, self.length
        )

    def decode(self) -> np.ndarray:
        from ._registry import get

        scale = get("fp32").decode(self.scale)
        per_pair = np.broadcast_to(OVPFormat._expand(scale, self.codes.ndim, self.reduce), self.codes.shape[:-1])
        flat = np.ascontiguousarray(self.codes.reshape(-1, 2))
        out = np.empty(flat.shape, np.float64)
        _decode_pairs(flat, np.ascontiguousarray(per_pair).reshape(-1), out, self.format.element_bits)
        return unblock(out.reshape(self.codes.shape), self.shape, self.axis, self.length)
