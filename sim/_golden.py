"""Expected MAC register contents from numerics, and the co-simulation check built on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import hw
import numerics

from ._mac_player import play_mac
from ._mac_stream import MacStream, mac_stream

Accumulator = numerics.ExactAccumulator | numerics.FixedAccumulator | numerics.FloatAccumulator


def expected_mac(
    stream: MacStream, a_fmt: numerics.ElementFormat, b_fmt: numerics.ElementFormat, accumulator: Accumulator,
    width: int,
) -> tuple[list[int], list[tuple[bool, bool, bool]]]:  # fmt: skip
    """Register value (units of its lsb; a float accumulator: its format code) and (nan, +inf,
    -inf) after each cycle of `stream`.

    A cycle with `clear` starts a new sum with its product (none when `en` is low); one with
    neither `en` nor `clear` holds. Per-cycle values are running sums of numerics' exact
    per-product results; every segment's final value must also equal numerics.dot over its
    enabled products with the same accumulator, so the golden model is numerics itself (asserted).
    A float accumulator's value after each cycle is numerics.dot itself, over the segment's
    enabled products so far (`expected_float_mac`).
    """
    if isinstance(accumulator, numerics.FloatAccumulator):
        return expected_float_mac(stream, a_fmt, b_fmt, accumulator)
    products = numerics.dot(stream.a[:, None], stream.b[:, None], a_fmt, b_fmt)
    terms, special = products.integers(), products.special
    saturate = isinstance(accumulator, numerics.FixedAccumulator) and accumulator.overflow == "saturate"
    wrap = isinstance(accumulator, numerics.FixedAccumulator) and not saturate
    shift = 0
    if isinstance(accumulator, numerics.FixedAccumulator) and accumulator.lsb_exponent is not None:
        shift = accumulator.lsb_exponent - (a_fmt.lsb_exponent + b_fmt.lsb_exponent)
    high, low = (1 << (width - 1)) - 1, -(1 << (width - 1))
    values, flags = [], []
    total, nan, pos, neg = 0, False, False, False
    for i, (enabled, cleared) in enumerate(zip(stream.en.tolist(), stream.clear.tolist(), strict=True)):
        if cleared:
            total, nan, pos, neg = 0, False, False, False
        if enabled:
            total += int(terms[i]) >> shift
            if saturate:
                total = min(max(total, low), high)
            if wrap:
                total = ((total - low) % (1 << width)) + low
            s = float(special[i])
            nan |= bool(np.isnan(s))
            pos |= s == np.inf
            neg |= s == -np.inf
        values.append(total)
        flags.append(hardware_flags(nan, pos, neg))  # the sticky flags read the same way as the PE's
    _check_segments(stream, a_fmt, b_fmt, accumulator, values)
    return values, flags


def expected_float_mac(
    stream: MacStream, a_fmt: numerics.ElementFormat, b_fmt: numerics.ElementFormat,
    accumulator: numerics.FloatAccumulator,
) -> tuple[list[int], list[tuple[bool, bool, bool]]]:  # fmt: skip
    """The float accumulator's code and (NaN, +Inf, -Inf) after each cycle: for the cycles that
    follow the L-th enabled product of their segment, numerics.dot over those L products, one dot
    per prefix length L over all segments at once (a running float sum has no shortcut: with a
    window even adding +0 changes it). Codes as numerics rounds: +0 for zero, the format's NaN."""
    fmt = accumulator.format
    en = stream.en.astype(np.int64)
    segment = np.cumsum(stream.clear) - 1
    done = np.cumsum(en)  # enabled products up to and including each cycle
    first = (done - en)[np.flatnonzero(stream.clear)]  # index of each segment's first product
    position = done - first[segment]  # the segment's products so far
    enabled = en == 1
    a_on, b_on = stream.a[enabled], stream.b[enabled]
    codes = np.zeros(len(stream), np.int64)
    for length in np.unique(position[position > 0]).tolist():
        cycles = np.flatnonzero(position == length)
        segments, which = np.unique(segment[cycles], return_inverse=True)
        rows = first[segments][:, None] + np.arange(length)
        result = numerics.dot(a_on[rows], b_on[rows], a_fmt, b_fmt, accumulator)
        codes[cycles] = result.round_to(fmt).reshape(-1)[which]
    values = fmt.decode(codes)
    flags = [(bool(n), bool(p), bool(q)) for n, p, q in zip(np.isnan(values), values == np.inf, values == -np.inf,
                                                             strict=True)]  # fmt: skip
    return [int(c) for c in codes], flags


def _check_segments(
    stream: MacStream, a_fmt: numerics.ElementFormat, b_fmt: numerics.ElementFormat,
    accumulator: numerics.ExactAccumulator | numerics.FixedAccumulator, values: list[int],
) -> None:  # fmt: skip
    """Each segment's last value equals numerics.dot over its enabled products, in order (the
    disabled cycles and the padding carry code 0, the value 0 in every element format)."""
    starts = np.flatnonzero(stream.clear)
    segment = np.cumsum(stream.clear) - 1
    enabled = stream.en == 1
    before = np.cumsum(stream.en, dtype=np.int64) - stream.en  # enabled cycles before each cycle
    position = before - before[starts][segment]
    longest = int(position[enabled].max()) + 1 if enabled.any() else 1
    a_rows, b_rows = np.zeros((starts.size, longest), np.int64), np.zeros((starts.size, longest), np.int64)
    a_rows[segment[enabled], position[enabled]] = stream.a[enabled]
    b_rows[segment[enabled], position[enabled]] = stream.b[enabled]
    totals = numerics.dot(a_rows, b_rows, a_fmt, b_fmt, accumulator).integers()
    last = np.r_[starts[1:] - 1, len(stream) - 1]
    assert [int(v) for v in totals] == [values[i] for i in last], "the running sums disagree with numerics.dot"


def hardware_flags(nan: int, pos: int, neg: int) -> tuple[bool, bool, bool]:
    """The PE's sticky flags read as numerics' special value: NaN, +Inf, -Inf."""
    is_nan = bool(nan) or (bool(pos) and bool(neg))
    return is_nan, bool(pos) and not is_nan, bool(neg) and not is_nan


@dataclass(frozen=True)
class MacReport:
    """Outcome of a MAC co-simulation: counts, and the first mismatch described in full."""

    format_pair: str
    cycles: int
    checked: int  # cycles compared
    macs: int  # enabled products among them
    mismatches: int
    first_mismatch: str | None

    @property
    def passed(self) -> bool:
        return self.mismatches == 0


def check_mac(pe: hw.MacPE, stream: MacStream, build_root: Path, work: Path, waves: bool = False,
              golden: Accumulator | None = None) -> MacReport:  # fmt: skip
    """Drive `stream` through `pe` in Verilator and compare every cycle's accumulator, flags and
    `valid` (the cycle's `en`, `latency` cycles later) with numerics (a float accumulator: its
    code, equal to numerics' code of the running sum bit for bit). `golden` replaces the PE's own
    accumulator in the model, e.g. to show that the check tells two accumulators apart."""
    n = len(stream)
    golden = golden or pe.accumulator
    out = play_mac(pe, stream, pe.acc_width, True, pe.latency, build_root, work, waves)
    first = pe.latency - 1
    mask = (1 << pe.acc_width) - 1 if pe.is_float else -1  # a float accumulator's code is unsigned
    acc = [int(v) & mask for v in out["acc"][first : first + n]]
    flags = [hardware_flags(*f) for f in out["flags"][first : first + n]]
    valid = out["valid"][first : first + n]
    values, expected_flags = expected_mac(stream, pe.a_format, pe.b_format, golden, pe.acc_width)
    bad = [i for i in range(n) if acc[i] != values[i] or flags[i] != expected_flags[i] or valid[i] != stream.en[i]]
    described = None
    if bad:
        i = bad[0]
        a, b = stream.a[i : i + 1], stream.b[i : i + 1]
        got, want, unit = acc[i], values[i], f"units of 2**{pe.lsb_exponent}"
        if isinstance(golden, numerics.FloatAccumulator):
            fmt = golden.format
            got, want = (f"{c:#x} ({fmt.decode(np.array([c], np.uint64))[0]})" for c in (acc[i], values[i]))
            unit = f"{numerics.accumulator_name(golden)} codes"
        described = (
            f"cycle {i} (en={stream.en[i]}, clear={stream.clear[i]}): a={int(a[0]):#x} ({pe.a_format.decode(a)[0]}), "
            f"b={int(b[0]):#x} ({pe.b_format.decode(b)[0]}): acc {got} flags {flags[i]} valid {valid[i]}, "
            f"expected {want} flags {expected_flags[i]} valid {stream.en[i]} ({unit})"
        )
    return MacReport(f"{pe.a_format.name} x {pe.b_format.name}", n + pe.latency, n, stream.macs, len(bad), described)


def operand_stream(pe: hw.MacPE, exhaustive: bool, random_pairs: int, seed: int = 0) -> MacStream:
    """Every (a, b) code pair of `pe`, or `random_pairs` random ones, as a corner-hitting stream
    (sim/_mac_stream.py): shuffled, with disabled cycles, random clears, NaN/Inf codes at segment
    starts, middles and ends, and k_terms-long segments of the extreme products."""
    finite_only = isinstance(pe.accumulator, numerics.FixedAccumulator)  # a fixed-point register has no NaN or Inf
    return mac_stream(pe.a_format, pe.b_format, pe.k_terms, finite_only, exhaustive, random_pairs, seed)
