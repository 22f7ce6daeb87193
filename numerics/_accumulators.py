"""Accumulator specifications: what a dot product's running sum is, and how wide it must be."""

from __future__ import annotations

import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class FloatAccumulator:
    """A floating-point running sum in `format`, one rounding (nearest-even) per addition.

    order="sequential": acc = round(acc + a[k]*b[k]) for k ascending, the product exact (a
    fused multiply-add chain, as a MAC PE does). order="pairwise": each product rounded to
    `format`, then summed as a balanced binary tree over k (adjacent pairs, odd one carried).
    """

    format: Minifloat
    order: Literal["sequential", "pairwise"] = "sequential"

    def __post_init__(self) -> None:
        if not isinstance(self.format, Minifloat):
            raise TypeError(f"FloatAccumulator format must be a Minifloat, got {type(self.format).__name__}")
        if self.format.man_bits > 50:
            raise ValueError(f"FloatAccumulator format must have <= 50 mantissa bits, got {self.format.man_bits}")
        if self.order not in ("sequential", "pairwise"):
            raise ValueError(f"order must be 'sequential' or 'pairwise', got {self.order!r}")

    def required_width(self, a: ElementFormat, b: ElementFormat, k_terms: int) -> int:
        return self.format.bits


Accumulator = ExactAccumulator | FixedAccumulator | QuireAccumulator | FloatAccumulator


ACCUMULATOR_SYNTAX = "exact, int{W} (wrapping) or int{W}_sat (saturating), W in 2..63 (e.g. int32)"


def parse_accumulator(text: str) -> ExactAccumulator | FixedAccumulator:
    """The one text spelling of a hardware accumulator: `exact` (Kulisch), `int{W}` (a W-bit
    register that wraps) or `int{W}_sat` (that saturates), both at the exact product lsb."""
    if text == "exact":
        return ExactAccumulator()
    if (match := re.fullmatch(r"int(\d+)(_sat)?", text)) and 2 <= int(match[1]) <= 63:
        return FixedAccumulator(int(match[1]), overflow="saturate" if match[2] else "wrap")
    raise ValueError(f"accumulator must be {ACCUMULATOR_SYNTAX}, got {text!r}")


def accumulator_name(accumulator: ExactAccumulator | FixedAccumulator) -> str:
    """The inverse of `parse_accumulator` (accumulators at the exact product lsb only)."""
    if isinstance(accumulator, ExactAccumulator):
        return "exact"
    if isinstance(accumulator, FixedAccumulator) and accumulator.lsb_exponent is None:
        return f"int{accumulator.width}" + ("_sat" if accumulator.overflow == "saturate" else "")
    raise ValueError(f"{accumulator!r} has no text name (only exact and int{{W}}[_sat] at the product lsb do)")
