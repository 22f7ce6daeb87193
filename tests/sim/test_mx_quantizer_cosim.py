# amaranth: UnusedElaboratable=no
"""hw.MXQuantizer in Verilator against numerics' MX encode, every scale and element code.

Units of several formats, block sizes and input scalings sit side by side in one design and replay
their blocks at one beat per cycle (sim's stream player), so all cases cost one build. Each unit
sees random blocks at every input magnitude and, for every binade the amax can take, blocks built
on the element grid at that block's scale: grid points, exact ties, the values next to both, the
range above the element's max (saturation), tiny elements (subnormals and underflow to zero), and
the negative extreme. Two units' scalings reach E8M0's lowest and highest exponents.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from amaranth import Cat, Module

import hw
import numerics
from numerics._block import element_emax
from sim._player import play, read_lanes, unit_bank, write_beats


@dataclass(frozen=True)
class Unit:
    fmt: str
    in_width: int
    lsb_exponent: int
    block: int = 32
    reaches: tuple[str, ...] = ("saturated",)  # coverage() counts that must not be zero

    def quantizer(self) -> hw.MXQuantizer:
        return hw.MXQuantizer(self.fmt, self.in_width, self.lsb_exponent, block=self.block)

    @property
    def reference(self) -> numerics.BlockFormat:
        fmt = numerics.get(self.fmt)
        assert isinstance(fmt, numerics.BlockFormat)
        return replace(fmt, block_size=self.block)

    @property
    def bits(self) -> int:
        return self.reference.element.bits

    def encode(self, rows: np.ndarray) -> numerics.BlockEncoded:
        return self.reference.encode(np.ldexp(rows.astype(np.float64), self.lsb_exponent), axis=-1)


SMALL = ("saturated", "to zero")  # input wide enough to reach below half the element's smallest value
UNITS = [
    Unit("mxfp8_e4m3", 20, -8, 8, SMALL),
    Unit("mxfp8_e4m3", 12, 0),  # the format's own block of 32
    Unit("mxfp8_e4m3", 24, -140, 4, (*SMALL, "low clamp")),  # shared = top - 148: amax < 2**-119 takes 2**-127
    Unit("mxfp8_e4m3", 16, 125, 4, ("saturated", "high clamp")),  # shared = top + 117: amax >= 2**136 takes 2**127
    Unit("mxfp8_e5m2", 20, -10, 4),
    Unit("mxfp6_e2m3", 12, -2, 4, SMALL),
    Unit("mxfp4", 12, -4, 4, SMALL),
    Unit("mxint8", 16, -3, 8, SMALL),
]


def grid_candidates(unit: Unit, amax: int, rng: np.random.Generator) -> np.ndarray:
    """Magnitudes <= |amax| on and around the element grid at the scale an amax block gets:
    grid points and midpoints (ties), each with its neighbours, plus 1..3 (the smallest inputs)."""
    fmt = unit.reference
    element = fmt.element
    grid = np.unique(np.abs(element.decode(np.arange(1 << element.bits))))
    grid = grid[np.isfinite(grid)] * 2.0**fmt.element_exponent
    step = grid[-1] - grid[-2]  # the top binade's spacing, continued to 2**(emax + 1): the saturating range
    top = 2.0 ** (element_emax(element, fmt.element_exponent) + 1)
    grid = np.concatenate([grid, np.arange(grid[-1] + step, top + step / 2, step)])
    points = np.concatenate([grid, (grid[1:] + grid[:-1]) / 2])
    block = np.zeros((1, unit.block), np.int64)
    block[0, 0] = amax
    shared = int(unit.encode(block).scales.ravel()[0]) - 127
    units = np.ldexp(points, shared - unit.lsb_exponent)  # in units of 2**lsb_exponent
    exact = units[(units == np.floor(units)) & (units <= abs(amax))].astype(np.int64)
    near = np.concatenate([exact - 1, exact, exact + 1, [1, 2, 3]])
    limit = min(abs(amax), (1 << (unit.in_width - 1)) - 1)
    near = near[(near >= 0) & (near <= limit)]
    return near * rng.choice([-1, 1], near.size)


def blocks(unit: Unit, rng: np.random.Generator) -> np.ndarray:
    """(n, block) input integers, every case family of the module docstring."""
    width, n = unit.in_width, unit.block
    low, high = -(1 << (width - 1)), 1 << (width - 1)
    tops = np.repeat(np.arange(width), 24)
    same_binade = rng.integers(low, high, (tops.size, n)) >> (width - 1 - tops)[:, None]
    spread = rng.integers(low, high, (tops.size, n)) >> rng.integers(0, width, (tops.size, n))
    one = np.zeros((tops.size, n), np.int64)  # one nonzero element
    one[np.arange(tops.size), rng.integers(0, n, tops.size)] = same_binade[:, 0] | 1
    rows = [np.zeros((1, n), np.int64), np.full((1, n), low), same_binade, spread, one]
    powers = 1 << np.arange(width - 1)
    positive = np.concatenate([powers, powers - 1, powers + 1, 2 * powers - 1])  # at and next to 2**k
    positive = positive[positive > 0]
    amaxes = np.concatenate([positive * rng.choice([-1, 1], positive.size), [low]])
    for amax in amaxes:
        others = grid_candidates(unit, int(amax), rng)
        if others.size == 0 or n == 1:
            continue
        others = np.resize(rng.permutation(others), (-(-others.size // (n - 1)), n - 1))
        rows.append(rng.permuted(np.concatenate([np.full((len(others), 1), amax), others], axis=1), axis=1))
        # amax alone with small random company (amax exactly at / next to a power of two)
        company = rng.integers(-abs(amax) + 1, abs(amax), (4, n - 1)) >> rng.integers(0, width, (4, 1))
        rows.append(np.concatenate([np.full((4, 1), amax), company], axis=1))
    return np.concatenate(rows).astype(np.int64)


def quantizer_bank(units: list[Unit]) -> Any:
    def build(m: Module, i: int, fields: list) -> object:
        m.submodules[f"unit{i}"] = quantizer = units[i].quantizer()
        m.d.comb += [quantizer.values[j].eq(field) for j, field in enumerate(fields)]
        return Cat(quantizer.scale, quantizer.elements.as_value())

    return unit_bank([((unit.in_width,) * unit.block, 8 + unit.bits * unit.block) for unit in units], build)


def coverage(unit: Unit, rows: np.ndarray, scales: np.ndarray) -> dict[str, int]:
    """Blocks clamped to E8M0's lowest / highest exponent; elements beyond the element's max
    (saturated) or at most half its smallest nonzero magnitude (rounded to zero)."""
    fmt = unit.reference
    scaled = np.ldexp(rows.astype(np.float64), unit.lsb_exponent - fmt.element_exponent - (scales[:, None] - 127))
    element = fmt.element
    smallest = element.min_subnormal if isinstance(element, numerics.Minifloat) else 1.0
    return {"low clamp": int(np.count_nonzero((rows != 0).any(axis=1) & (scales == 0))),
            "high clamp": int(np.count_nonzero(scales == 254)),
            "saturated": int(np.count_nonzero(np.abs(scaled) > element.max)),
            "to zero": int(np.count_nonzero((rows != 0) & (np.abs(scaled) <= smallest / 2)))}  # fmt: skip


def test_mx_quantizer_matches_numerics_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(32)
    unit_rows = [blocks(unit, rng) for unit in UNITS]
    beats = max(len(rows) for rows in unit_rows)
    fields = [(np.concatenate([rows, np.zeros((beats - len(rows), unit.block), np.int64)]), unit.in_width)
              for unit, rows in zip(UNITS, unit_rows, strict=True)]  # fmt: skip
    write_beats(tmp_path / "in.hex", fields)
    bank = quantizer_bank(UNITS)
    build_root = Path(os.environ["BITFAB_CACHE"]) / "verilator"
    *_, count, out_hex = play(bank, [("word", bank.in_width, tmp_path / "in.hex", beats)], bank.out_width, beats,
                              None, beats + 100, build_root, tmp_path)  # fmt: skip
    assert count == beats
    layout = [
        ((f"scale{i}", 8, False), (f"elements{i}", unit.bits * unit.block, False)) for i, unit in enumerate(UNITS)
    ]
    outputs = read_lanes(out_hex, 1, tuple(field for pair in layout for field in pair))
    for i, (unit, rows) in enumerate(zip(UNITS, unit_rows, strict=True)):
        want = unit.encode(rows)
        words, mask = outputs[f"elements{i}"][: len(rows), 0], (1 << unit.bits) - 1
        elements = np.stack([(words >> (unit.bits * j)) & mask for j in range(unit.block)], axis=1)
        got = np.concatenate([outputs[f"scale{i}"][: len(rows)], elements], axis=1).astype(np.int64)
        expected = np.concatenate([want.scales.reshape(-1, 1), want.elements.reshape(len(rows), unit.block)], axis=1)
        bad = np.flatnonzero((got != expected).any(axis=1))
        first = bad[0] if bad.size else 0
        assert bad.size == 0, (
            f"{unit}: {bad.size} of {len(rows)} blocks differ; first {rows[first].tolist()}: got (scale, elements) "
            f"{got[first].tolist()}, numerics {expected[first].tolist()}"
        )
        seen = coverage(unit, rows, want.scales.ravel().astype(np.int64))
        assert all(seen[name] > 0 for name in unit.reaches), (unit, seen)
