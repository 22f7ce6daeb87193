"""Expected MAC register contents from numerics (test-side golden model shared by hw and sim tests)."""

from __future__ import annotations

import numpy as np

import numerics


def expected_mac(
    a_codes: np.ndarray, b_codes: np.ndarray, segment: int, a_fmt: numerics.ElementFormat,
    b_fmt: numerics.ElementFormat, accumulator: numerics.ExactAccumulator | numerics.FixedAccumulator, width: int,
) -> tuple[list[int], list[tuple[bool, bool, bool]]]:  # fmt: skip
    """Register value (units of its lsb) and (nan, +inf, -inf) after each cycle of a stream that
    clears every `segment` cycles.

    Per-cycle values are running sums of numerics' exact per-product results; every segment's
    final value must also equal numerics.dot over the segment with the same accumulator, so the
    golden model is numerics itself (asserted here).
    """
    n = len(a_codes)
    assert n % segment == 0
    products = numerics.dot(a_codes[:, None], b_codes[:, None], a_fmt, b_fmt)
    terms, special = products.integers(), products.special
    saturate = isinstance(accumulator, numerics.FixedAccumulator) and accumulator.overflow == "saturate"
    wrap = isinstance(accumulator, numerics.FixedAccumulator) and not saturate
    shift = 0
    if isinstance(accumulator, numerics.FixedAccumulator) and accumulator.lsb_exponent is not None:
        shift = accumulator.lsb_exponent - (a_fmt.lsb_exponent + b_fmt.lsb_exponent)
    high, low = (1 << (width - 1)) - 1, -(1 << (width - 1))
    values, flags = [], []
    total, nan, pos, neg = 0, False, False, False
    for i in range(n):
        if i % segment == 0:
            total, nan, pos, neg = 0, False, False, False
        term = int(terms[i]) >> shift
        total += term
        if saturate:
            total = min(max(total, low), high)
        if wrap:
            total = ((total - low) % (1 << width)) + low
        s = float(special[i])
        nan |= bool(np.isnan(s))
        pos |= s == np.inf
        neg |= s == -np.inf
        values.append(total)
        flags.append((nan or (pos and neg), pos and not nan and not neg, neg and not nan and not pos))
    segment_totals = numerics.dot(a_codes.reshape(-1, segment), b_codes.reshape(-1, segment), a_fmt, b_fmt, accumulator)
    assert [int(v) for v in segment_totals.integers()] == values[segment - 1 :: segment]
    return values, flags


def hardware_flags(nan: int, pos: int, neg: int) -> tuple[bool, bool, bool]:
    """The PE's sticky flags read as numerics' special value: NaN, +Inf, -Inf."""
    is_nan = bool(nan) or (bool(pos) and bool(neg))
    return is_nan, bool(pos) and not is_nan, bool(neg) and not is_nan
