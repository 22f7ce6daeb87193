"""Operand streams for MAC co-simulation that hit the corners a fixed order misses.

A fixed order (every pair in code order, a clear every 16 cycles, `en` always high) lets a bug
hide: NaN codes always sit at a segment's end, so a flag that is not sticky passes; no segment
reaches the accumulator's top bit, so a register one bit too narrow passes. So the stream here
- shuffles the pairs (seeded), so every code lands at segment starts, middles and ends;
- puts every NaN/Inf code at the start, middle and end of a segment of its own, and once on a
  disabled cycle (the flag must not rise);
- interleaves disabled cycles (random codes, `en` low) and clears at random places, some on
  disabled cycles, with at most `k_terms` enabled products between clears (the accumulator is
  sized for k_terms);
- ends with segments of k_terms largest-magnitude products of each sign: the register's extremes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import numerics

IDLE_SHARE = 8  # one disabled cycle per this many products
CLEAR_EVERY = 12  # mean cycles between random clears
SPECIAL_SEGMENT = 8  # length of the segments that carry a NaN/Inf code
MAX_EXTREME_TERMS = 4096  # the extreme segments cover k_terms up to this many products


@dataclass(frozen=True)
class MacStream:
    """Per-cycle inputs of a MAC PE: operand codes, `en` and `clear` (0/1)."""

    a: np.ndarray
    b: np.ndarray
    en: np.ndarray
    clear: np.ndarray

    def __post_init__(self) -> None:
        if not len(self.a) == len(self.b) == len(self.en) == len(self.clear):
            raise ValueError("a, b, en and clear must have one entry per cycle")
        if len(self.clear) and not self.clear[0]:
            raise ValueError("a stream must clear on its first cycle")

    def __len__(self) -> int:
        return len(self.a)

    @property
    def macs(self) -> int:
        return int(np.count_nonzero(self.en))

    @classmethod
    def segmented(cls, a: np.ndarray, b: np.ndarray, segment: int) -> MacStream:
        """Every cycle enabled, a clear every `segment` cycles (the simplest stream)."""
        n = len(a)
        return cls(np.asarray(a), np.asarray(b), np.ones(n, np.uint8), (np.arange(n) % segment == 0).astype(np.uint8))

    @classmethod
    def concat(cls, streams: list[MacStream]) -> MacStream:
        return cls(*(np.concatenate([getattr(s, f) for s in streams]) for f in ("a", "b", "en", "clear")))


def mac_stream(a_fmt: numerics.ElementFormat, b_fmt: numerics.ElementFormat, k_terms: int, finite_only: bool,
               exhaustive: bool, random_pairs: int, seed: int = 0) -> MacStream:  # fmt: skip
    """Every (a, b) code pair, or `random_pairs` random ones, as a corner-hitting stream (module
    docstring). `finite_only` (a fixed-point register, which has no NaN or Inf) replaces
    non-finite codes by code 0 and leaves out the special segments."""
    rng = np.random.default_rng(seed)
    a_codes, b_codes = np.arange(1 << a_fmt.bits), np.arange(1 << b_fmt.bits)
    if exhaustive:
        a, b = (g.reshape(-1) for g in np.meshgrid(a_codes, b_codes, indexing="ij"))
        order = rng.permutation(a.size)
        a, b = a[order], b[order]
    else:
        a, b = rng.integers(0, a_codes.size, random_pairs), rng.integers(0, b_codes.size, random_pairs)
    a_finite, b_finite = np.isfinite(a_fmt.decode(a_codes)), np.isfinite(b_fmt.decode(b_codes))
    if finite_only:
        a, b = np.where(a_finite[a], a, 0), np.where(b_finite[b], b, 0)
    parts = [_body(a, b, a_codes[a_finite] if finite_only else a_codes,
                   b_codes[b_finite] if finite_only else b_codes, k_terms, rng)]  # fmt: skip
    if not finite_only:
        parts += _special_segments(a_fmt, b_fmt, a_codes[a_finite], b_codes[b_finite], rng)
    parts += _extreme_segments(a_fmt, b_fmt, k_terms)
    return MacStream.concat(parts)


def _body(a: np.ndarray, b: np.ndarray, a_pool: np.ndarray, b_pool: np.ndarray, k_terms: int,
          rng: np.random.Generator) -> MacStream:  # fmt: skip
    """The pairs, each enabled once, with disabled cycles and random clears in between."""
    n = a.size
    cycles = n + n // IDLE_SHARE
    en = np.ones(cycles, np.uint8)
    en[rng.choice(cycles, cycles - n, replace=False)] = 0
    a_all, b_all = rng.choice(a_pool, cycles), rng.choice(b_pool, cycles)
    a_all[en == 1], b_all[en == 1] = a, b
    clear = (rng.random(cycles) < 1 / CLEAR_EVERY).astype(np.uint8)
    term = np.cumsum(en) - 1
    clear[(en == 1) & (term % k_terms == 0)] = 1  # never more than k_terms products between clears
    clear[0] = 1
    return MacStream(a_all, b_all, en, clear)


def special_codes(fmt: numerics.ElementFormat) -> np.ndarray:
    """The first and last code of each kind of special value (NaN, +Inf, -Inf) of `fmt`."""
    values = fmt.decode(np.arange(1 << fmt.bits))
    picked: list[int] = []
    for kind in (np.isnan(values), values == np.inf, values == -np.inf):
        found = np.flatnonzero(kind)
        picked += sorted({int(found[0]), int(found[-1])}) if found.size else []
    return np.array(picked, dtype=np.int64)


def _special_segments(a_fmt: numerics.ElementFormat, b_fmt: numerics.ElementFormat, a_finite: np.ndarray,
                      b_finite: np.ndarray, rng: np.random.Generator) -> list[MacStream]:  # fmt: skip
    """Each special code of a (then b) at a segment's start, middle and end next to finite
    partners, and once on a disabled cycle mid-segment."""
    out: list[MacStream] = []
    length = SPECIAL_SEGMENT
    for side, fmt in ((0, a_fmt), (1, b_fmt)):
        for code in special_codes(fmt):
            for position, enabled in ((0, 1), (length // 2, 1), (length - 1, 1), (length // 2, 0)):
                a, b = rng.choice(a_finite, length), rng.choice(b_finite, length)
                (a, b)[side][position] = code
                en = np.ones(length, np.uint8)
                en[position] = enabled
                clear = np.zeros(length, np.uint8)
                clear[0] = 1
                out.append(MacStream(a, b, en, clear))
    return out


def extreme_pairs(a_fmt: numerics.ElementFormat, b_fmt: numerics.ElementFormat) -> list[tuple[int, int]]:
    """Code pairs of the largest positive and the most negative finite product."""
    a_codes, b_codes = np.arange(1 << a_fmt.bits), np.arange(1 << b_fmt.bits)
    a_values, b_values = a_fmt.decode(a_codes), b_fmt.decode(b_codes)
    a_ok, b_ok = np.isfinite(a_values), np.isfinite(b_values)
    a_ends = [int(a_codes[a_ok][np.argmax(a_values[a_ok])]), int(a_codes[a_ok][np.argmin(a_values[a_ok])])]
    b_ends = [int(b_codes[b_ok][np.argmax(b_values[b_ok])]), int(b_codes[b_ok][np.argmin(b_values[b_ok])])]
    pairs = [(x, y) for x in a_ends for y in b_ends]
    products = [float(a_values[x]) * float(b_values[y]) for x, y in pairs]
    return [pairs[int(np.argmax(products))], pairs[int(np.argmin(products))]]


def _extreme_segments(a_fmt: numerics.ElementFormat, b_fmt: numerics.ElementFormat, k_terms: int) -> list[MacStream]:
    """k_terms copies of each extreme product, from a clear: the register's largest magnitudes."""
    terms = min(k_terms, MAX_EXTREME_TERMS)
    clear = np.zeros(terms, np.uint8)
    clear[0] = 1
    return [MacStream(np.full(terms, x), np.full(terms, y), np.ones(terms, np.uint8), clear)
            for x, y in extreme_pairs(a_fmt, b_fmt)]  # fmt: skip
