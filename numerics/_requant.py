"""A layer's output stage in integer arithmetic: an exact accumulator to the next layer's codes.

    code = clamp(round((acc + bias) * multiplier / 2**shift) + zero_point)

per output channel (the last axis): `bias` in accumulator units, `multiplier` a non-negative
integer, one `shift` for the layer; the rounding is to nearest, ties to even (as Brevitas'
torch.round), once; the clamp is the activation's (ReLU: codes >= zero_point; a clamp / HardTanh:
given code bounds) and the format's range (saturation). With power-of-two scales
(scale_in * scale_w / scale_out = 2**-k per channel) the multipliers are powers of two and the
stage is exactly Brevitas' requantization; other ratios take the nearest `bits`-bit multiplier
(gemmlowp / TFLite integer-only style, one rounding instead of their two), so they deviate from a
float requantization by the multiplier's relative error. `hw.OutputStage` is its hardware twin.

The same exact value (acc + bias) * multiplier / 2**shift may instead round to a minifloat (no
zero point; a clamp's bounds are values of the format, ReLU's is +0; overflow saturates) or to
an MX block format along the channels (`requantize_mx`: the OCP shared scale of each block of
channels from its amax, then the elements; ReLU before the amax). `hw.RequantArray` computes all
three behind its result lanes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from . import _kernels as k
from ._block import BlockEncoded, BlockFormat
from ._int import IntFormat
from ._minifloat import Minifloat
from ._registry import get

Activation = Literal["identity", "relu", "clamp"]
_ACTIVATIONS = ("identity", "relu", "clamp")
_EXACT_BITS = 62  # (acc + bias) * multiplier + zero_point * 2**shift must fit an int64
_FLOAT_EXACT_BITS = 53  # (acc + bias) * multiplier as a float64, exactly, for minifloat and MX outputs


def quantized_multiplier(ratio: Any, bits: int = 31) -> tuple[np.ndarray, int]:
    """(multipliers, shift) with multiplier / 2**shift the nearest to each positive `ratio` on one
    layer-wide shift, the largest multiplier below 2**bits. Exact for power-of-two ratios whose
    exponents span fewer than `bits` bits; a channel 2**k below the largest ratio keeps k fewer
    multiplier bits (one shift serves the layer, so a lane needs no per-channel shifter)."""
    ratios = np.atleast_1d(np.asarray(ratio, dtype=np.float64))
    if not 2 <= bits <= 48:
        raise ValueError(f"bits must be between 2 and 48, got {bits}")
    if not (np.isfinite(ratios).all() and (ratios > 0).all()):
        raise ValueError(f"requantization ratios must be positive and finite, got {ratios[~(ratios > 0)][:3]}")
    shift = bits - 1 - math.floor(math.log2(float(ratios.max())))
    multipliers = np.rint(np.ldexp(ratios, shift)).astype(np.int64)
    if shift < 0:
        raise ValueError(f"a ratio of {ratios.max():g} needs a negative shift; the output stage shifts right only")
    return multipliers, shift


def stage_bounds(fmt: IntFormat | str, zero_point: int, activation: str,
                 clamp: tuple[int, int] | None) -> tuple[IntFormat, int, int]:  # fmt: skip
    """The output format and the (low, high) integer codes an output stage clamps to: the format's
    range, narrowed by ReLU (>= zero point) or a clamp's bounds. Checks the stage's settings."""
    out = get(fmt) if isinstance(fmt, str) else fmt
    if not isinstance(out, IntFormat):
        raise ValueError(f"the output stage rounds to integer formats, got {getattr(out, 'name', out)}")
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
    if (activation == "clamp") != (clamp is not None):
        raise ValueError("activation 'clamp' takes clamp=(low, high) integer bounds, and only it does")
    if not out.min_int <= zero_point <= out.max_int:
        raise ValueError(f"zero_point {zero_point} is outside {out.name}'s range {out.min_int}..{out.max_int}")
    if activation == "relu":
        return out, zero_point, out.max_int
    if clamp is not None:
        return out, max(out.min_int, clamp[0]), min(out.max_int, clamp[1])
    return out, out.min_int, out.max_int


def requantize(acc: Any, bias: Any, multiplier: Any, shift: int, fmt: IntFormat | str, zero_point: int = 0,
               activation: Activation = "identity", clamp: tuple[int, int] | None = None) -> np.ndarray:  # fmt: skip
    """The codes of `fmt` (see the module docstring) for integer accumulators `acc` (..., channels);
    `bias` and `multiplier` broadcast along the last axis. `clamp` gives the (low, high) integer
    bounds of activation "clamp"."""
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    out, low, high = stage_bounds(fmt, zero_point, activation, clamp)
    product = _exact_product(acc, bias, multiplier)
    largest = int(np.abs(product).max(initial=0)) + abs(zero_point) * 2**shift + 2**shift
    if largest >= 2**_EXACT_BITS:
        raise ValueError(f"(acc + bias) * multiplier reaches {largest:.3e}; the exact golden model holds < 2**62")
    total = product + (zero_point << shift)
    if shift:
        floor = total >> shift
        remainder = total - (floor << shift)
        half = 1 << (shift - 1)
        rounded = floor + ((remainder > half) | ((remainder == half) & (floor % 2 == 1)))
    else:
        rounded = total
    return out.encode(np.clip(rounded, low, high).astype(np.float64))


def _exact_values(acc: Any, bias: Any, multiplier: Any, shift: int) -> np.ndarray:
    """(acc + bias) * multiplier / 2**shift as float64, exactly (checked)."""
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    total = _exact_product(acc, bias, multiplier)
    if np.abs(total).max(initial=0) >= 2**_FLOAT_EXACT_BITS:
        raise ValueError(f"(acc + bias) * multiplier reaches {float(np.abs(total).max()):.3e}; an MX output stage's "
                         "golden model holds < 2**53 (exact in float64)")  # fmt: skip
    return np.ldexp(total.astype(np.float64), -shift)


def minifloat_bounds(fmt: Minifloat, activation: str, clamp: tuple[float, float] | None) -> tuple[float, float]:
    """The (low, high) values a minifloat output stage clamps to: the format's range, narrowed by
    ReLU (+0) or a clamp's bounds, which must be values of the format."""
    if activation not in _ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(_ACTIVATIONS)}, got {activation!r}")
    if (activation == "clamp") != (clamp is not None):
        raise ValueError("activation 'clamp' takes clamp=(low, high) bounds, and only it does")
    if activation == "relu":
        return 0.0, float(fmt.max)
    if clamp is None:
        return -float(fmt.max), float(fmt.max)
    for bound in clamp:
        if not (np.isfinite(bound) and float(fmt.decode(fmt.encode(float(bound), saturate=True))) == bound):
            raise ValueError(f"a clamp bound of a {fmt.name} output must be a finite value of the format, got {bound}")
    return max(float(clamp[0]), -float(fmt.max)), min(float(clamp[1]), float(fmt.max))


def requantize_minifloat(acc: Any, bias: Any, multiplier: Any, shift: int, fmt: Minifloat | str,
                         activation: Activation = "identity",
                         clamp: tuple[float, float] | None = None) -> np.ndarray:  # fmt: skip
    """Codes of minifloat `fmt` for (acc + bias) * multiplier / 2**shift, clamped to the activation's
    bounds, rounded once to nearest even, saturating. Exact for products below 2**62: the product is
    rounded as an exact significand and exponent (`round_parts`), then clamped in the format's
    value order (the bounds are values of the format, so clamping after the rounding equals
    clamping before it; a bound of +0 takes -0 to +0)."""
    out = get(fmt) if isinstance(fmt, str) else fmt
    if not isinstance(out, Minifloat):
        raise ValueError(f"requantize_minifloat rounds to minifloat formats, got {getattr(out, 'name', out)}")
    if shift < 0:
        raise ValueError(f"shift must be >= 0, got {shift}")
    low, high = minifloat_bounds(out, activation, clamp)
    total = _exact_product(acc, bias, multiplier)
    magnitude = np.abs(total)
    lengths = _bit_lengths(magnitude)
    lift = np.where(magnitude == 0, 0, 62 - lengths)  # the top bit at 61
    codes = out.round_parts(np.where(magnitude == 0, k.ZERO, k.FINITE), total < 0, magnitude << lift, -shift - lift,
                            61, np.zeros(total.shape, np.bool_), saturate=True)  # fmt: skip
    values = out.decode(codes)
    below = (values < low) | ((values == 0) & np.signbit(values) & (low == 0) & (not np.signbit(low)))  # -0 < +0
    clamped = np.where(below, low, np.where(values > high, high, values))
    changed = below | (values > high)
    return np.where(changed, out.encode(clamped, saturate=True), codes).astype(codes.dtype)


def _exact_product(acc: Any, bias: Any, multiplier: Any) -> np.ndarray:
    """(acc + bias) * multiplier as int64, checked to stay below 2**62."""
    values = np.asarray(acc, dtype=np.int64) + np.asarray(bias, dtype=np.int64)
    scale = np.asarray(multiplier, dtype=np.int64)
    if (scale < 0).any():
        raise ValueError(f"multipliers must be >= 0, got {scale[scale < 0][:3]}")
    largest = int(np.abs(values).max(initial=0)) * int(scale.max(initial=0))
    if largest >= 2**_EXACT_BITS:
        raise ValueError(f"(acc + bias) * multiplier reaches {largest:.3e}; the exact golden model holds < 2**62")
    return values * scale


def _bit_lengths(magnitude: np.ndarray) -> np.ndarray:
    """Bit lengths of non-negative int64 values (< 2**62), exactly (float64's log2 rounds near powers of two)."""
    lengths = np.zeros(magnitude.shape, np.int64)
    rest = magnitude.copy()
    for step in (32, 16, 8, 4, 2, 1):
        big = rest >= (np.int64(1) << step)
        lengths += np.where(big, step, 0)
        rest = np.where(big, rest >> step, rest)
    return lengths + (rest > 0)


def requantize_mx(acc: Any, bias: Any, multiplier: Any, shift: int, fmt: BlockFormat | str,
                  activation: Activation = "identity") -> BlockEncoded:  # fmt: skip
    """MX blocks along the last axis (the channels) of (acc + bias) * multiplier / 2**shift, after
    ReLU if asked: each block's shared scale from its amax, then its elements (`fmt.encode`)."""
    out = get(fmt) if isinstance(fmt, str) else fmt
    if not isinstance(out, BlockFormat):
        raise ValueError(f"requantize_mx rounds to block formats, got {getattr(out, 'name', out)}")
    if activation not in ("identity", "relu"):
        raise ValueError(f"an MX output stage takes activation 'identity' or 'relu', got {activation!r}")
    values = _exact_values(acc, bias, multiplier, shift)
    return out.encode(np.maximum(values, 0.0) if activation == "relu" else values, axis=-1)


@dataclass(frozen=True, eq=False)
class Requantization:
    """One layer's output stage (see `requantize`): per-channel `bias` (accumulator units) and
    `multiplier`, the layer's `shift`, and the codes it produces in `format`: an INT format
    (`requantize`), a minifloat (`requantize_minifloat`: no zero point, `clamp` bounds are values)
    or an MX block format (`requantize_mx`, blocks along the channels: `blocks`)."""

    bias: np.ndarray  # (N,) int64
    multiplier: np.ndarray  # (N,) int64
    shift: int
    format: str
    zero_point: int = 0
    activation: Activation = "identity"
    clamp: tuple[float, float] | None = None

    @property
    def output_format(self) -> IntFormat | Minifloat | BlockFormat:
        out = get(self.format)
        if not isinstance(out, IntFormat | Minifloat | BlockFormat):
            raise ValueError(f"the output stage rounds to INT, minifloat or MX formats, got {self.format}")
        if not isinstance(out, IntFormat) and self.zero_point:
            raise ValueError(f"a {self.format} output has no zero point, got {self.zero_point}")
        return out

    def codes(self, acc: Any) -> np.ndarray:
        """The format's codes for accumulators `acc` (..., N); MX outputs: see `blocks`."""
        out = self.output_format
        if isinstance(out, BlockFormat):
            raise ValueError(f"{self.format} is a block format: its codes come from Requantization.blocks")
        if isinstance(out, Minifloat):
            return requantize_minifloat(acc, self.bias, self.multiplier, self.shift, out, self.activation, self.clamp)
        clamp = None if self.clamp is None else (int(self.clamp[0]), int(self.clamp[1]))
        return requantize(acc, self.bias, self.multiplier, self.shift, out, self.zero_point, self.activation, clamp)

    def blocks(self, acc: Any) -> BlockEncoded:
        """An MX output's blocks along the channels of accumulators `acc` (..., N)."""
        out = self.output_format
        if not isinstance(out, BlockFormat):
            raise ValueError(f"{self.format} is not a block format: its codes come from Requantization.codes")
        return requantize_mx(acc, self.bias, self.multiplier, self.shift, out, self.activation)

    def integers(self, acc: Any) -> np.ndarray:
        """An INT output's codes as the integers they stand for (int64; zero point included)."""
        out = self.output_format
        if not isinstance(out, IntFormat):
            raise ValueError(f"{self.format} codes are not integers: use Requantization.codes or blocks")
        return out.decode(self.codes(acc)).astype(np.int64)

    def bounds(self) -> tuple[int, int]:
        """The (low, high) the stage clamps to: integers for an INT output (the format's range and
        the activation's), codes of the bound values for a minifloat output."""
        out = self.output_format
        if isinstance(out, Minifloat):
            low, high = minifloat_bounds(out, self.activation, self.clamp)
            return int(out.encode(low, saturate=True)), int(out.encode(high, saturate=True))
        if isinstance(out, BlockFormat):
            raise ValueError(f"an MX output ({self.format}) has no code bounds: its activation is identity or relu")
        clamp = None if self.clamp is None else (int(self.clamp[0]), int(self.clamp[1]))
        return stage_bounds(out, self.zero_point, self.activation, clamp)[1:]
