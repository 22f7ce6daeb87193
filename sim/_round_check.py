"""Co-simulation of hw.OutputRounder: every rounding boundary of a format, played at Verilator speed.

A bank of rounders (lanes: one format at several accumulator widths, lsbs and overflow policies)
shares one Verilator build. A harness plays accumulator values from a `$readmemh` file at one beat
per cycle and writes the codes back, so thousands of values cost no cocotb awaits. The expected
codes are numerics' own `encode` of each exact accumulator value (acc * 2**lsb), not the rounder's
amaranth model.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from amaranth import Module, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import hw
import numerics

from ._player import read_lanes

if TYPE_CHECKING:
    from collections.abc import Sequence

FLAGS = ("nan", "pos_inf", "neg_inf")
FLAG_COMBOS = np.array([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0), (1, 0, 1)], np.uint8)  # NaN wins over Inf
DONT_CARE = -1  # numerics defines no result (NaN into a format without NaN, Inf into a wrapping integer)
INT8 = numerics.get("int8")
# Amaranth's conversion time grows fast with a posit rounder's width (~15 s at 108 bits, minutes at 400).
MAX_LANE_WIDTH = 128
EXHAUSTIVE_WIDTH = 12  # registers this narrow play every value
_SOURCE_DIGEST = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:16]


@dataclass(frozen=True, kw_only=True)
class RounderLane:
    """One rounder configuration; saturate None is the format's default (as numerics and hw both read it)."""

    fmt: numerics.ElementFormat
    acc_width: int
    lsb_exponent: int
    saturate: bool | None = None
    origin: str = ""  # where the accumulator comes from, for reports

    def describe(self) -> str:
        policy = "" if self.saturate is None else f", saturate={self.saturate}"
        return f"{self.fmt.name} from {self.origin} acc {self.acc_width} bits @ 2**{self.lsb_exponent}{policy}"


def _mac_accumulator(a: str | numerics.ElementFormat, b: str | numerics.ElementFormat) -> tuple[int, int]:
    """(acc_width, lsb_exponent) of hw.MacPE's exact accumulator for a x b (k_terms 1024)."""
    pe = hw.MacPE(a, b)
    pe._MustUse__silence = True  # type: ignore[attr-defined]  # only its parameters are wanted
    return pe.acc_width, pe.lsb_exponent


def rounder_lanes(fmt: numerics.ElementFormat, macs: Sequence[str | numerics.ElementFormat] | None = None,
              max_width: int = MAX_LANE_WIDTH) -> list[RounderLane]:  # fmt: skip
    """The accumulators a rounder to `fmt` sees: the MACs of a x a for a in `macs` (default fmt and
    int8), as generated (their extremes included); a fine one whose lsb sits 2 bits below every tie
    (so tie +- 1 lsb is a sticky bit either side) unless a MAC's register already is one; the finest
    again with the other overflow policy where numerics has one; for integers a coarse one (lsb 2).
    A MAC register wider than `max_width` is left out; a fine one becomes two: |x| < 2, |x| >= 1."""
    lanes = []
    for a in (fmt, INT8) if macs is None else macs:
        width, lsb = _mac_accumulator(a, a)
        if width <= max_width:
            origin = f"MacPE {numerics.get(a).name}^2"
            lanes.append(RounderLane(fmt=fmt, acc_width=width, lsb_exponent=lsb, origin=origin))
    targets = rounding_targets(fmt)
    fine = [_fine(fmt, targets, "fine")]
    covering = [lane for lane in lanes if _covers(lane, fine[0])]
    if covering:
        fine = covering[:1]
    elif fine[0].acc_width > max_width:
        fine = [_fine(fmt, [t for t in targets if abs(t) < 2], "fine, |x| < 2"),
                _fine(fmt, [t for t in targets if abs(t) >= 1], "fine, |x| >= 1")]  # fmt: skip
    for lane in fine:
        if lane not in lanes:
            lanes.append(lane)
        if isinstance(fmt, numerics.IntFormat):
            lanes.append(replace(lane, saturate=False, origin=f"{lane.origin}, wrapping"))
        elif isinstance(fmt, numerics.Minifloat) and (fmt.has_inf or fmt.has_nan):
            lanes.append(replace(lane, saturate=True, origin=f"{lane.origin}, saturating"))
    if isinstance(fmt, numerics.IntFormat):  # a shift left in the integer path (the MACs' lsb is 0)
        lanes.append(RounderLane(fmt=fmt, acc_width=20, lsb_exponent=2, origin="coarse"))
    unique = {(lane.acc_width, lane.lsb_exponent, lane.saturate): lane for lane in reversed(lanes)}
    return list(reversed(unique.values()))


def rounder_formats(max_bits: int = 8) -> list[numerics.ElementFormat]:
    """Every registered element format of <= max_bits bits that hw.OutputRounder rounds to."""
    found = []
    for name in numerics.formats():
        fmt = numerics.get(name)
        if isinstance(fmt, numerics.IntFormat | numerics.Minifloat | numerics.Posit) and fmt.bits <= max_bits:
            try:
                hw.OutputRounder(2, 0, fmt)._MustUse__silence = True  # type: ignore[attr-defined]  # a probe
            except ValueError:
                continue
            found.append(fmt)
    return found


def _covers(lane: RounderLane, fine: RounderLane) -> bool:
    """Whether `lane` holds every value `fine` holds, at least as finely."""
    return (
        lane.lsb_exponent <= fine.lsb_exponent
        and lane.acc_width + lane.lsb_exponent >= fine.acc_width + fine.lsb_exponent
    )


def _fine(fmt: numerics.ElementFormat, targets: list[Fraction], origin: str) -> RounderLane:
    """A register that holds every target with 2 bits below its finest tie, and a binade above."""
    lsb = min(_lowest_bit(t) for t in targets if t != 0) - 2
    top = math.ceil(max(abs(t) for t in targets)).bit_length() + 1
    return RounderLane(fmt=fmt, acc_width=top - lsb + 1, lsb_exponent=lsb, origin=origin)


def _lowest_bit(t: Fraction) -> int:
    """The exponent of the lowest set bit of a dyadic rational."""
    num, den = abs(t.numerator), t.denominator
    return (num & -num).bit_length() - 1 - (den.bit_length() - 1)


def rounding_targets(fmt: numerics.ElementFormat) -> list[Fraction]:
    """Every finite value, the values just beyond the largest (overflow), and every tie: the midpoint
    of each pair of neighbours, and for posits the ties of the bit string (the odd codes of
    posit<n + 1, es>: geometric midpoints in the regime and exponent)."""
    grid = sorted({Fraction(float(v)) for v in fmt.values() if np.isfinite(v)})
    top = grid[-1]
    if isinstance(fmt, numerics.Minifloat):
        ulp = Fraction(2) ** (math.frexp(float(top))[1] - 1 - fmt.man_bits)
        beyond = [top + ulp, top + 2 * ulp]
    else:
        beyond = [top + 1, top + 2]  # integers; posits saturate whatever lies beyond
    beyond += [top * 2, top * 4, top * 16]
    grid = sorted({*grid, *beyond, *(-b for b in beyond)})
    ties = [(a + b) / 2 for a, b in itertools.pairwise(grid)]
    if isinstance(fmt, numerics.Posit):
        wider = numerics.Posit(fmt.n + 1, fmt.es)
        odd = wider.decode(np.arange(1, 1 << (fmt.n + 1), 2))
        ties += [Fraction(float(v)) for v in odd if np.isfinite(v)]
    return sorted({*grid, *ties})


def accumulator_values(lane: RounderLane, rng: np.random.Generator, random_count: int = 1000) -> list[int]:
    """Accumulator integers around every target (floor/ceil of target / 2**lsb, +- 1: the value or
    tie itself and one lsb either side), powers of two and their neighbours up to the register's
    extremes, zero, and random values of every magnitude; every value of a narrow register."""
    low, high = -(1 << (lane.acc_width - 1)), (1 << (lane.acc_width - 1)) - 1
    if lane.acc_width <= EXHAUSTIVE_WIDTH:
        return list(range(low, high + 1))
    unit = Fraction(2) ** lane.lsb_exponent
    values = {0, 1, -1, 2, -2, low, low + 1, high, high - 1}
    for target in rounding_targets(lane.fmt):
        units = target / unit
        below = units.numerator // units.denominator
        values.update((below - 1, below, below + 1, below + 2))
    for k in range(lane.acc_width - 1):
        values.update((1 << k) + d for d in (-1, 0, 1))
        values.update(-(1 << k) + d for d in (-1, 0, 1))
    for bits in rng.integers(1, lane.acc_width, random_count):
        rest = int.from_bytes(rng.bytes(int(bits) // 8 + 1), "little") & ((1 << int(bits - 1)) - 1)
        magnitude = (1 << int(bits - 1)) | rest
        values.add(-magnitude if rng.random() < 0.5 else magnitude)
    return sorted(v for v in values if low <= v <= high)


def exact_float(acc: int, lsb_exponent: int) -> float:
    """acc * 2**lsb as a float64 that rounds like the exact value: exact up to 53 significant bits,
    else truncated to 53 bits with the sticky bit ORed into the last (round to odd), which makes a
    later nearest-even rounding to a format of <= 51 bits equal to the rounding of the exact value."""
    magnitude = abs(acc)
    extra = max(magnitude.bit_length() - 53, 0)
    kept = magnitude >> extra
    if magnitude & ((1 << extra) - 1):
        kept |= 1
    value = math.ldexp(kept, extra + lsb_exponent)
    return -value if acc < 0 else value


def expected_codes(lane: RounderLane, accs: list[int], flags: np.ndarray) -> np.ndarray:
    """numerics' encode of each exact value (NaN / +-Inf where the flags say so); DONT_CARE where
    numerics defines no result."""
    fmt = lane.fmt
    x = np.array([exact_float(a, lane.lsb_exponent) for a in accs])
    x = np.where(flags[:, 1], np.inf, np.where(flags[:, 2], -np.inf, x))
    x = np.where(flags[:, 0], np.nan, x)
    defined = np.ones(len(x), bool)
    if not fmt.has_nan:
        defined &= ~np.isnan(x)
    if isinstance(fmt, numerics.IntFormat) and lane.saturate is False:
        defined &= ~np.isinf(x)
    codes = np.full(len(x), DONT_CARE, np.int64)
    codes[defined] = fmt.encode(x[defined], saturate=lane.saturate)
    return codes


class RounderBank(wiring.Component):
    """One hw.OutputRounder per lane. Ports: nan, pos_inf, neg_inf : In(1) (shared);
    acc_<i> : In(signed(lanes[i].acc_width)); code_<i> : Out(lanes[i].fmt.bits)."""

    def __init__(self, lanes: list[RounderLane]) -> None:
        self.lanes = list(lanes)
        # sim._runner keys the build by this (and hw's sources) instead of converting a wide bank
        # twice; this module's own digest keeps an edited bank from reusing a stale build.
        self.config = (tuple(self.lanes), _SOURCE_DIGEST)
        members: dict[str, object] = {flag: In(1) for flag in FLAGS}
        for i, lane in enumerate(self.lanes):
            members |= {f"acc_{i}": In(signed(lane.acc_width)), f"code_{i}": Out(lane.fmt.bits)}
        super().__init__(members)  # type: ignore[arg-type]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for i, lane in enumerate(self.lanes):
            rounder = hw.OutputRounder(lane.acc_width, lane.lsb_exponent, lane.fmt, lane.saturate)
            m.submodules[f"rounder_{i}"] = rounder
            m.d.comb += rounder.acc.eq(getattr(self, f"acc_{i}"))
            m.d.comb += [getattr(rounder, flag).eq(getattr(self, flag)) for flag in FLAGS]
            m.d.comb += getattr(self, f"code_{i}").eq(rounder.code)
        return m


def harness_verilog(bank: RounderBank, depth: int) -> str:
    """Plays beat i (flags in bits 0-2, then acc_0, acc_1, ...) from IN_HEX into the bank in cycle
    i and records the codes (code_0 in the low bits); after N beats writes them to OUT_HEX, then
    raises `done`."""
    in_width = len(FLAGS) + sum(lane.acc_width for lane in bank.lanes)
    out_width = sum(lane.fmt.bits for lane in bank.lanes)
    ports, offset, out_offset = [f".{flag}(beat[{bit}])" for bit, flag in enumerate(FLAGS)], len(FLAGS), 0
    for i, lane in enumerate(bank.lanes):
        ports.append(f".acc_{i}(beat[{offset + lane.acc_width - 1}:{offset}])")
        ports.append(f".code_{i}(codes[{out_offset + lane.fmt.bits - 1}:{out_offset}])")
        offset, out_offset = offset + lane.acc_width, out_offset + lane.fmt.bits
    index_bits = max(depth - 1, 1).bit_length()
    connections = ",\n      ".join(ports)
    return f"""// Generated by bitfab sim: plays accumulator values into a bank of output rounders.
module harness(input wire clk, input wire rst, output reg done, output reg [31:0] count);
  reg [{in_width - 1}:0] in_mem [0:{depth - 1}];
  reg [{out_width - 1}:0] out_mem [0:{depth - 1}];
  reg [31:0] n;
  reg [1023:0] path;
  initial begin
    if ($value$plusargs("IN_HEX=%s", path)) $readmemh(path, in_mem);
    if (!$value$plusargs("N=%d", n)) n = 0;
  end
  wire [{in_width - 1}:0] beat = in_mem[count[{index_bits - 1}:0]];
  wire [{out_width - 1}:0] codes;
  top dut(
      {connections});
  always @(posedge clk) begin
    if (rst) begin
      count <= 0; done <= 0;
    end else if (count < n) begin
      out_mem[count[{index_bits - 1}:0]] <= codes;
      count <= count + 1;
    end else if (!done) begin
      if ($value$plusargs("OUT_HEX=%s", path)) $writememh(path, out_mem, 0, n - 1);
      done <= 1;
    end
  end
endmodule
"""


@dataclass(frozen=True, kw_only=True)
class RoundReport:
    """Outcome of one bank run: per lane the values checked; mismatches over all lanes."""

    lanes: tuple[str, ...]
    counts: tuple[int, ...]  # distinct accumulator values per lane (each also under every flag combination)
    beats: int
    mismatches: int
    first_mismatch: str | None
    seconds: float  # the simulation run, build included unless cached

    @property
    def passed(self) -> bool:
        return self.mismatches == 0


def cosim_rounders(lanes: list[RounderLane], build_root: Path, work: Path, seed: int = 0) -> RoundReport:
    """Round every lane's accumulator values in Verilator and compare with numerics."""
    from ._runner import run

    build_root, work = Path(build_root).absolute(), Path(work).absolute()
    rng = np.random.default_rng(seed)
    per_lane = [accumulator_values(lane, rng) for lane in lanes]
    plain = max(len(values) for values in per_lane)
    flags = np.concatenate([np.zeros((plain, 3), np.uint8), np.repeat(FLAG_COMBOS, 4, axis=0)])
    beats = len(flags)
    # Shorter lanes repeat their values; under each flag combination a lane sends four of its values.
    accs = [[values[i % len(values)] for i in range(plain)] + [values[j] for j in (0, -1, len(values) // 2, 1)]
            * len(FLAG_COMBOS) for values in per_lane]  # fmt: skip
    bank = RounderBank(lanes)
    words = [int(f[0]) | int(f[1]) << 1 | int(f[2]) << 2 for f in flags]
    offset = len(FLAGS)
    for lane, column in zip(lanes, accs, strict=True):
        mask = (1 << lane.acc_width) - 1
        words = [w | ((a & mask) << offset) for w, a in zip(words, column, strict=True)]
        offset += lane.acc_width
    work.mkdir(parents=True, exist_ok=True)
    in_hex, out_hex = work / "acc.hex", work / "codes.hex"
    in_hex.write_text("".join(f"{w:x}\n" for w in words))
    out_hex.unlink(missing_ok=True)
    depth = 1 << max(beats - 1, 1).bit_length()
    started = time.perf_counter()
    plusargs = [f"+IN_HEX={in_hex}", f"+OUT_HEX={out_hex}", f"+N={beats}"]
    run(bank, "sim.tb_round", {}, build_root, work, harness=("harness", harness_verilog(bank, depth)),
        parameters={"max_cycles": beats + 100}, plusargs=plusargs)  # fmt: skip
    seconds = time.perf_counter() - started
    fields = tuple((f"code_{i}", lane.fmt.bits, False) for i, lane in enumerate(lanes))
    got = read_lanes(out_hex, 1, fields)
    counts, mismatches, first = [], 0, None
    for i, (lane, column) in enumerate(zip(lanes, accs, strict=True)):
        want = expected_codes(lane, column, flags)
        have = got[f"code_{i}"][:, 0].astype(np.int64)
        if len(have) != beats:
            raise AssertionError(f"the harness wrote {len(have)} codes, expected {beats}")
        bad = np.flatnonzero((want != DONT_CARE) & (have != want))
        counts.append(len(per_lane[i]))
        mismatches += len(bad)
        if len(bad) and first is None:
            j = int(bad[0])
            value = exact_float(column[j], lane.lsb_exponent)
            first = (f"{lane.describe()}: acc {column[j]} (= {value!r}) flags {tuple(int(f) for f in flags[j])}: "
                     f"got {int(have[j]):#x}, numerics {int(want[j]):#x}")  # fmt: skip
    return RoundReport(lanes=tuple(lane.describe() for lane in lanes), counts=tuple(counts), beats=beats,
                       mismatches=mismatches, first_mismatch=first, seconds=seconds)  # fmt: skip
