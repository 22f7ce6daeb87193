"""Independent exact oracles built on fractions.Fraction (slow, obviously correct, test-only)."""

from __future__ import annotations

import bisect
from fractions import Fraction
from typing import Any

import numpy as np

from numerics import Rounding


def posit_value(code: int, n: int, es: int) -> Fraction | None:
    """Decode a posit<n, es> code bit by bit (None for NaR)."""
    if code == 0:
        return Fraction(0)
    if code == 1 << (n - 1):
        return None
    negative = code >> (n - 1)
    if negative:
        code = (1 << n) - code
    bits = [(code >> i) & 1 for i in range(n - 2, -1, -1)]
    run = 1
    while run < len(bits) and bits[run] == bits[0]:
        run += 1
    regime = run - 1 if bits[0] else -run
    rest = bits[run + 1 :]
    exp_bits = (rest[:es] + [0] * es)[:es]
    exponent = int("".join(map(str, exp_bits)) or "0", 2)
    frac_bits = rest[es:]
    fraction = Fraction(int("".join(map(str, frac_bits)) or "0", 2), 1 << len(frac_bits))
    value = (1 + fraction) * Fraction(2) ** (regime * (1 << es) + exponent)
    return -value if negative else value


def round_to_grid(
    x: Fraction, grid: list[Fraction], even: list[bool], mode: Rounding, midpoints: list[Fraction] | None = None
) -> int:
    """Index into the sorted `grid` that x rounds to (no overflow handling: x within the grid).

    `even[i]` says whether grid[i] wins a tie; `midpoints[i]` (default arithmetic) separates
    grid[i] and grid[i + 1].
    """
    i = bisect.bisect_right(grid, x) - 1
    if i >= 0 and grid[i] == x:
        return i
    lo, hi = i, i + 1
    if mode is Rounding.TOWARD_NEGATIVE:
        return lo
    if mode is Rounding.TOWARD_POSITIVE:
        return hi
    if mode is Rounding.TOWARD_ZERO:
        return lo if x > 0 else hi
    mid = midpoints[lo] if midpoints is not None else (grid[lo] + grid[hi]) / 2
    if x < mid:
        return lo
    if x > mid:
        return hi
    if mode is Rounding.NEAREST_AWAY:
        return hi if x > 0 else lo
    return lo if even[lo] else hi


def as_fraction(values: np.ndarray) -> list[Fraction]:
    return [Fraction(float(v)) for v in np.asarray(values, dtype=np.float64).reshape(-1)]


def lead_exponent(x: Fraction) -> int:
    e = abs(x).numerator.bit_length() - abs(x).denominator.bit_length()
    return e if Fraction(2) ** e <= abs(x) else e - 1


def round_fraction(x: Fraction, fmt: Any, toward_zero: bool) -> Fraction | float:
    """x rounded to fmt with Python integers: nearest-even or toward zero; overflow as IEEE 754."""
    if x == 0:
        return Fraction(0)
    magnitude = abs(x)
    lead = lead_exponent(magnitude)
    quantum = Fraction(2) ** (max(lead, fmt.emin) - fmt.man_bits)
    steps, rest = divmod(magnitude, quantum)
    if not toward_zero and (rest > quantum / 2 or (rest == quantum / 2 and steps % 2 == 1)):
        steps += 1
    value = steps * quantum
    if value > Fraction(fmt.max):
        if toward_zero:
            value = Fraction(fmt.max)
        else:
            return float("inf") if x > 0 else float("-inf")
    return value if x > 0 else -value
