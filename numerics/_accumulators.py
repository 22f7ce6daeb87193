"""Accumulator specifications: what a dot product's running sum is, and how wide it must be."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from fractions import Fraction
from typing import Literal

from ._format import ElementFormat
from ._minifloat import Minifloat
from ._posit import Posit


def integer_range(fmt: ElementFormat) -> tuple[int, int]:
    """(most negative, most positive) finite value any code decodes to, in units of
    2**fmt.lsb_exponent. A narrow integer's most negative code is never encoded but still decodes
    (-128 for int8_narrow; MXINT8's -2.0, which other producers emit): hardware takes every code."""
    unit = Fraction(2) ** fmt.lsb_exponent
    high = Fraction(fmt.max) / unit
    low_value = Fraction(getattr(fmt, "min_int", -fmt.max if _is_signed(fmt) else 0)) - int(getattr(fmt, "narrow", 0))
    return int(low_value / unit), int(high)


def _is_signed(fmt: ElementFormat) -> bool:
    return bool(getattr(fmt, "signed", True))


def exact_width(a: ElementFormat, b: ElementFormat, k_terms: int) -> int:
    """Two's complement bits that hold any sum of k_terms products a*b exactly (Kulisch)."""
    if k_terms < 1:
        raise ValueError(f"k_terms must be >= 1, got {k_terms}")
    a_low, a_high = integer_range(a)
    b_low, b_high = integer_range(b)
    products = (a_low * b_low, a_low * b_high, a_high * b_low, a_high * b_high)
    most_positive, most_negative = k_terms * max(products), k_terms * min(products)
    return max(most_positive.bit_length(), (-most_negative - 1).bit_length() if most_negative < 0 else 0) + 1


@dataclass(frozen=True)
class ExactAccumulator:
    """Kulisch accumulation: every product and every partial sum exact, at any width."""

    def required_width(self, a: ElementFormat, b: ElementFormat, k_terms: int) -> int:
        return exact_width(a, b, k_terms)


@dataclass(frozen=True)
class FixedAccumulator:
    """A two's complement register of `width` bits whose lsb weighs 2**lsb_exponent.

    Each product is aligned to the lsb by an arithmetic shift (bits below it are dropped,
    i.e. rounded toward -inf, as a hardware aligner does). `wrap` keeps the sum modulo
    2**width (order does not matter); `saturate` clamps after every addition, in k order.
    `lsb_exponent=None` means the exact product lsb, so no product bit is ever dropped.
    """

    width: int
    lsb_exponent: int | None = None
    overflow: Literal["wrap", "saturate"] = "wrap"

    def __post_init__(self) -> None:
        if not 2 <= self.width <= 63:
            raise ValueError(f"width must be in [2, 63] (use ExactAccumulator for wider), got {self.width}")
        if self.overflow not in ("wrap", "saturate"):
            raise ValueError(f"overflow must be 'wrap' or 'saturate', got {self.overflow!r}")

    def required_width(self, a: ElementFormat, b: ElementFormat, k_terms: int) -> int:
        return self.width


@dataclass(frozen=True)
class QuireAccumulator:
    """The posit quire of `posit`: exact within its width; a sum that overflows it is NaR."""

    posit: Posit

    @property
    def width(self) -> int:
        return self.posit.quire_bits

    @property
    def lsb_exponent(self) -> int:
        return 2 * self.posit.lsb_exponent

    def required_width(self, a: ElementFormat, b: ElementFormat, k_terms: int) -> int:
        return self.width


Order = Literal["sequential", "blocked", "pairwise"]
_ORDERS = ("sequential", "blocked", "pairwise")
_ADD_ROUNDINGS = ("nearest_even", "toward_zero")
_ALIGNS = ("truncate", "nearest_even")


@dataclass(frozen=True)
class FloatAccumulator:
    """A floating-point running sum in `format`, described by what the hardware does.

    One addition, add(acc, t), of the accumulator value acc and an exact addend t:
    - window=None (full alignment): the exact acc + t is rounded once to `format` (`rounding`).
    - window=N: E is the exponent of the leading bit of the larger of |acc|, |t|; both are cut to
      multiples of 2**(E - N + 1), the N bits from that leading bit down (`align`: "truncate"
      drops the bits below toward zero, as a shifter does; "nearest_even" rounds them), then the
      exact sum of the cut values is rounded once to `format`. This is the limited alignment of
      tensor cores (about 14 bits for FP8 on H800, DeepSeek-V3 report, 2024).
    - `rounding`: "nearest_even" or "toward_zero" (overflow: Inf, or the largest finite toward
      zero, as IEEE 754; a format without Inf follows its own encode rules). NaN and Inf
      propagate as IEEE: NaN in, NaN out; Inf + -Inf is NaN.

    The order says what the addends are; the running sum starts at +0:
    - "sequential": every product, exact, is added in k order (a fused multiply-add chain, as a
      MAC PE or an output-stationary PE does).
    - "blocked": the exact sum of each `block` consecutive products (MX: the scaled block dot,
      `block` defaults to the format's block size; a weight-stationary column: `block` = rows)
      is rounded to `format`, then added in k order.
    - "pairwise": the products (or, with `block`, the rounded block sums) are rounded to
      `format`, then summed as a balanced binary tree (adjacent pairs, odd one carried).
    """

    format: Minifloat
    order: Order = "sequential"
    block: int | None = None
    window: int | None = None
    align: Literal["truncate", "nearest_even"] = "truncate"
    rounding: Literal["nearest_even", "toward_zero"] = "nearest_even"

    def __post_init__(self) -> None:
        if not isinstance(self.format, Minifloat):
            raise TypeError(f"FloatAccumulator format must be a Minifloat, got {type(self.format).__name__}")
        if self.format.man_bits > 50:
            raise ValueError(f"FloatAccumulator format must have <= 50 mantissa bits, got {self.format.man_bits}")
        if not self.format.signed:
            raise ValueError(f"FloatAccumulator format must be signed, got {self.format.name}")
        if self.order not in _ORDERS:
            raise ValueError(f"order must be one of {', '.join(_ORDERS)}, got {self.order!r}")
        if self.block is not None and (isinstance(self.block, bool) or not isinstance(self.block, int)
                                       or self.block < 1):  # fmt: skip
            raise ValueError(f"block must be a positive number of products, got {self.block!r}")
        if self.block is not None and self.order == "sequential":
            raise ValueError("block applies to order='blocked' or 'pairwise'; 'sequential' adds every product")
        precision = self.format.man_bits + 1
        if self.window is not None and (isinstance(self.window, bool) or not isinstance(self.window, int)
                                        or not 2 <= self.window <= precision):  # fmt: skip
            raise ValueError(
                f"window must be between 2 and the accumulator's {precision} significand bits "
                f"({self.format.name}), got {self.window!r}"
            )
        if self.align not in _ALIGNS:
            raise ValueError(f"align must be one of {', '.join(_ALIGNS)}, got {self.align!r}")
        if self.rounding not in _ADD_ROUNDINGS:
            raise ValueError(f"rounding must be one of {', '.join(_ADD_ROUNDINGS)}, got {self.rounding!r}")

    def required_width(self, a: ElementFormat, b: ElementFormat, k_terms: int) -> int:
        return self.format.bits

    def with_order(self, order: Order, block: int | None = None) -> FloatAccumulator:
        """The same arithmetic with the addends a dataflow forms (see the class docstring)."""
        return replace(self, order=order, block=block)


Accumulator = ExactAccumulator | FixedAccumulator | QuireAccumulator | FloatAccumulator


ACCUMULATOR_SYNTAX = (
    "exact, int{W} (wrapping) or int{W}_sat (saturating), W in 2..63 (e.g. int32), or a float accumulator "
    "{F}[_w{N}[r]][_rz]: F a minifloat (fp32, bf16, fp16, fp8_e5m2, ...), _wN an alignment window of N bits "
    "(truncated; _wNr rounded to nearest even), _rz adds rounded toward zero (e.g. fp32, fp32_w14, bf16_rz)"
)


def parse_accumulator(text: str) -> ExactAccumulator | FixedAccumulator | FloatAccumulator:
    """The one text spelling of a hardware accumulator: `exact` (Kulisch), `int{W}` (a W-bit
    register that wraps) or `int{W}_sat` (that saturates), both at the exact product lsb, or a
    float accumulator `{F}[_w{N}[r]][_rz]` (sequential order: a dataflow sets its own, see
    `FloatAccumulator.with_order`)."""
    if text == "exact":
        return ExactAccumulator()
    if (match := re.fullmatch(r"int(\d+)(_sat)?", text)) and 2 <= int(match[1]) <= 63:
        return FixedAccumulator(int(match[1]), overflow="saturate" if match[2] else "wrap")
    if match := re.fullmatch(r"(.+?)(?:_w(\d+)(r?))?(_rz)?", text):
        from ._registry import get

        try:
            fmt = get(match[1])
        except (ValueError, KeyError):
            fmt = None
        if isinstance(fmt, Minifloat) and fmt.signed:
            window = int(match[2]) if match[2] else None
            try:
                return FloatAccumulator(fmt, window=window, align="nearest_even" if match[3] else "truncate",
                                        rounding="toward_zero" if match[4] else "nearest_even")  # fmt: skip
            except ValueError as error:
                raise ValueError(f"accumulator {text!r}: {error}") from None
    raise ValueError(f"accumulator must be {ACCUMULATOR_SYNTAX}, got {text!r}")


def accumulator_name(accumulator: ExactAccumulator | FixedAccumulator | FloatAccumulator) -> str:
    """The inverse of `parse_accumulator` (fixed accumulators at the exact product lsb only; a
    float accumulator's name leaves out its order, which the dataflow sets)."""
    if isinstance(accumulator, ExactAccumulator):
        return "exact"
    if isinstance(accumulator, FixedAccumulator) and accumulator.lsb_exponent is None:
        return f"int{accumulator.width}" + ("_sat" if accumulator.overflow == "saturate" else "")
    if isinstance(accumulator, FloatAccumulator):
        window = "" if accumulator.window is None else f"_w{accumulator.window}"
        window += "r" if window and accumulator.align == "nearest_even" else ""
        return accumulator.format.name + window + ("_rz" if accumulator.rounding == "toward_zero" else "")
    raise ValueError(f"{accumulator!r} has no text name (only exact, int{{W}}[_sat] at the product lsb and "
                     "float accumulators do)")  # fmt: skip
