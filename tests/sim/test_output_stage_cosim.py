# amaranth: UnusedElaboratable=no
"""hw.OutputStage (bias, integer requantization, activation, rounding to INT codes) in Verilator
against numerics.requantize, over every accumulator value of narrow lanes and on and next to every
rounding boundary of wide ones.

Lanes of different configurations sit side by side in one design and replay their cases from a
`$readmemh` file at one beat per cycle (sim's stream player), so thousands of cases cost one build.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amaranth import Module

import hw
import numerics
from sim._player import play, read_lanes, unit_bank, write_beats


@dataclass(frozen=True)
class Lane:
    fmt: str
    acc_width: int
    shift: int
    multiplier_bits: int
    bias_width: int = 12
    zero_point: int = 0
    activation: str = "identity"
    clamp: tuple[int, int] | None = None

    def stage(self) -> hw.OutputStage:
        return hw.OutputStage(self.acc_width, self.fmt, self.shift, bias_width=self.bias_width,
                              multiplier_bits=self.multiplier_bits, zero_point=self.zero_point,
                              activation=self.activation, clamp=self.clamp)  # fmt: skip

    @property
    def widths(self) -> tuple[int, int, int]:
        return self.acc_width, self.bias_width, self.multiplier_bits


LANES = [
    Lane("int8", 10, 0, 3),  # exhaustive: every accumulator, multipliers 0..7
    Lane("int8", 10, 4, 3, activation="relu"),
    Lane("uint8", 10, 3, 4, zero_point=37),
    Lane("int4", 9, 2, 3, activation="clamp", clamp=(-3, 5)),
    Lane("uint8", 10, 6, 5, zero_point=128, activation="relu"),
    Lane("int8", 24, 17, 31, bias_width=20),  # wide: boundaries and random
    Lane("uint8", 24, 20, 31, bias_width=20, zero_point=12, activation="relu"),
    Lane("int16", 32, 9, 16, bias_width=24, activation="clamp", clamp=(-1000, 30000)),
]


def stage_bank(lanes: list[Lane]) -> Any:
    """Every lane's (acc, bias, multiplier) in one beat; every code in one result beat."""

    def build(m: Module, i: int, fields: list) -> object:
        m.submodules[f"lane{i}"] = stage = lanes[i].stage()
        m.d.comb += [stage.acc.eq(fields[0]), stage.bias.eq(fields[1]), stage.multiplier.eq(fields[2])]
        return stage.code

    return unit_bank([(lane.widths, numerics.get(lane.fmt).bits) for lane in lanes], build)


def cases(lane: Lane, rng: np.random.Generator) -> np.ndarray:
    """(acc, bias, multiplier) rows: every accumulator for narrow lanes; otherwise the values on
    and one either side of every half-way point around the output range, extremes and random."""
    acc_lim, bias_lim = 1 << (lane.acc_width - 1), 1 << (lane.bias_width - 1)
    mult_max = (1 << lane.multiplier_bits) - 1
    if lane.acc_width <= 10:
        acc = np.repeat(np.arange(-acc_lim, acc_lim), 3)
        mult = np.tile([1, mult_max, rng.integers(0, mult_max + 1)], 2 * acc_lim)
        bias = rng.integers(-bias_lim, bias_lim, acc.size)
        return np.stack([acc, bias, mult], axis=1)
    rows = []
    for multiplier in (1, 1 << (lane.shift - 1), mult_max, *rng.integers(1, mult_max + 1, 5)):
        halves = (2 * np.arange(-300, 300) + 1) * (1 << (lane.shift - 1))
        base = np.rint(halves / multiplier).astype(np.int64)
        for nudge in (-1, 0, 1):
            bias = rng.integers(-bias_lim // 4, bias_lim // 4, base.size)
            acc = np.clip(base + nudge - bias, -acc_lim, acc_lim - 1)
            rows.append(np.stack([acc, bias, np.full(base.size, multiplier)], axis=1))
    extremes = np.array([[-acc_lim, -bias_lim, mult_max], [acc_lim - 1, bias_lim - 1, mult_max], [0, 0, 0],
                         [acc_lim - 1, 0, 1], [-acc_lim, 0, 1]])  # fmt: skip
    random = np.stack([rng.integers(-acc_lim, acc_lim, 2000), rng.integers(-bias_lim, bias_lim, 2000),
                       rng.integers(0, mult_max + 1, 2000)], axis=1)  # fmt: skip
    return np.concatenate([*rows, extremes, random])


def test_output_stage_matches_numerics_bit_for_bit(tmp_path: Path) -> None:
    rng = np.random.default_rng(16)
    lane_cases = [cases(lane, rng) for lane in LANES]
    beats = max(len(c) for c in lane_cases)
    fields: list[tuple[np.ndarray, int]] = []
    for lane, rows in zip(LANES, lane_cases, strict=True):
        padded = np.concatenate([rows, np.zeros((beats - len(rows), 3), np.int64)])
        fields += [(padded[:, column], width) for column, width in enumerate(lane.widths)]
    write_beats(tmp_path / "in.hex", fields)
    bank = stage_bank(LANES)
    build_root = Path(os.environ["BITFAB_CACHE"]) / "verilator"
    *_, count, out_hex = play(bank, [("word", bank.in_width, tmp_path / "in.hex", beats)], bank.out_width, beats,
                              None, beats + 100, build_root, tmp_path)  # fmt: skip
    assert count == beats
    outputs = read_lanes(out_hex, 1, tuple((f"lane{i}", numerics.get(lane.fmt).bits, False)
                                            for i, lane in enumerate(LANES)))  # fmt: skip
    for i, (lane, rows) in enumerate(zip(LANES, lane_cases, strict=True)):
        want = numerics.requantize(rows[:, 0], rows[:, 1], rows[:, 2], lane.shift, lane.fmt, lane.zero_point,
                                   lane.activation, lane.clamp)  # type: ignore[arg-type]  # fmt: skip
        got = outputs[f"lane{i}"][: len(rows), 0].astype(np.int64)
        bad = np.flatnonzero(got != want)
        assert bad.size == 0, (f"{lane}: {bad.size} of {len(rows)} differ, first (acc, bias, multiplier) = "
                               f"{rows[bad[0]].tolist()}: got {got[bad[0]]}, numerics {want[bad[0]]}")  # fmt: skip
    assert len(lane_cases[0]) == 3 * 1024  # the narrow lanes saw every accumulator value


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fmt": "fp8_e4m3"}, "the output stage rounds to integer formats, got fp8_e4m3"),
        ({"activation": "gelu"}, "activation must be one of identity, relu, clamp, got 'gelu'"),
        ({"activation": "clamp"}, "activation 'clamp' takes clamp=(low, high) integer bounds, and only it does"),
        ({"zero_point": -1, "fmt": "uint8"}, "zero_point -1 is outside uint8's range 0..255"),
        ({"shift": -2}, "widths must be >= 1 and shift >= 0, got acc_width=16, bias_width=32, multiplier_bits=31, "
                        "shift=-2"),
    ],
)  # fmt: skip
def test_output_stage_configuration_errors(options: dict, message: str) -> None:
    arguments = {"acc_width": 16, "fmt": "int8", "shift": 4, **options}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        hw.OutputStage(**arguments)
