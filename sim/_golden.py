"""Expected MAC register contents from numerics, and the co-simulation check built on them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

import hw
import numerics

from ._runner import run


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
        flags.append(hardware_flags(nan, pos, neg))  # the sticky flags read the same way as the PE's
    segment_totals = numerics.dot(a_codes.reshape(-1, segment), b_codes.reshape(-1, segment), a_fmt, b_fmt, accumulator)
    assert [int(v) for v in segment_totals.integers()] == values[segment - 1 :: segment]
    return values, flags


def hardware_flags(nan: int, pos: int, neg: int) -> tuple[bool, bool, bool]:
    """The PE's sticky flags read as numerics' special value: NaN, +Inf, -Inf."""
    is_nan = bool(nan) or (bool(pos) and bool(neg))
    return is_nan, bool(pos) and not is_nan, bool(neg) and not is_nan


@dataclass(frozen=True)
class MacReport:
    """Outcome of a MAC co-simulation: counts, and the first mismatch described in full."""

    format_pair: str
    cycles: int
    checked: int
    mismatches: int
    first_mismatch: str | None

    @property
    def passed(self) -> bool:
        return self.mismatches == 0


def check_mac(pe: hw.MacPE, a: np.ndarray, b: np.ndarray, build_root: Path, work: Path, segment: int = 16,
              waves: bool = False) -> MacReport:  # fmt: skip
    """Drive the operand codes through `pe` in Verilator (clearing every `segment` cycles) and
    compare every cycle's accumulator and flags with numerics."""
    n = a.size
    if n % segment:
        raise ValueError(f"the stream length {n} must be a multiple of the segment {segment}")
    clear = (np.arange(n) % segment == 0).astype(np.uint8)
    stimulus = {"a": a, "b": b, "en": np.ones(n, np.uint8), "clear": clear}
    out = run(pe, "sim.tb_mac", stimulus, build_root, work, waves=waves, parameters={"latency": pe.latency})
    first = pe.latency - 1
    acc = [int(v) for v in out["acc"][first : first + n]]
    flags = [hardware_flags(*f) for f in out["flags"][first : first + n]]
    values, expected_flags = expected_mac(a, b, segment, pe.a_format, pe.b_format, pe.accumulator, pe.acc_width)
    bad = [i for i in range(n) if acc[i] != values[i] or flags[i] != expected_flags[i]]
    if not out["valid"][first : first + n].all():
        bad = bad or [int(np.flatnonzero(out["valid"][first : first + n] == 0)[0])]
    described = None
    if bad:
        i = bad[0]
        described = (
            f"cycle {i}: a={int(a[i]):#x} ({pe.a_format.decode(a[i : i + 1])[0]}), b={int(b[i]):#x} "
            f"({pe.b_format.decode(b[i : i + 1])[0]}): acc {acc[i]} flags {flags[i]}, expected {values[i]} "
            f"flags {expected_flags[i]} (units of 2**{pe.lsb_exponent})"
        )
    return MacReport(f"{pe.a_format.name} x {pe.b_format.name}", n + pe.latency, n, len(bad), described)


def operand_pairs(
    pe: hw.MacPE, exhaustive: bool, random_pairs: int, seed: int = 0, segment: int = 16
) -> tuple[np.ndarray, np.ndarray]:
    """Every (a, b) code pair, or `random_pairs` random ones; padded to a whole number of segments."""
    if exhaustive:
        a_codes, b_codes = np.meshgrid(
            np.arange(1 << pe.a_format.bits), np.arange(1 << pe.b_format.bits), indexing="ij"
        )
        a, b = a_codes.reshape(-1), b_codes.reshape(-1)
    else:
        rng = np.random.default_rng(seed)
        a, b = (
            rng.integers(0, 1 << pe.a_format.bits, random_pairs),
            rng.integers(0, 1 << pe.b_format.bits, random_pairs),
        )
    if isinstance(pe.accumulator, numerics.FixedAccumulator):  # a fixed-point register has no NaN or Inf
        a = np.where(np.isfinite(pe.a_format.decode(a)), a, 0)
        b = np.where(np.isfinite(pe.b_format.decode(b)), b, 0)
    pad = (-a.size) % segment
    return np.concatenate([a, a[:pad]]), np.concatenate([b, b[:pad]])
