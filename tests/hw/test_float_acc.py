# amaranth: UnusedElaboratable=no
"""hw.float_add, the float accumulator's one addition, and the blocked add of arrays (a block or
fold sum rounded to the format, then added: the lean IEEE datapath or the general one), against an
exact Fraction reference.

Many float_add units (one per accumulator variant and addend layout) sit side by side in one
design per accumulator format, replayed in Verilator by sim's stream player from a `$readmemh`
memory: thousands of adversarial (acc code, addend) pairs per unit in a second. The reference below rounds Fractions
with Python integers and reads codes from the format's fields: it shares no code with the
hardware nor with numerics' kernels.
"""

from __future__ import annotations

import math
import os
import random
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from amaranth import Module, Signal

import hw
import numerics
from hw._array_parts import add_rounded
from numerics import FloatAccumulator, Minifloat, Specials
from sim._player import play as sim_play
from sim._player import read_lanes, unit_bank, write_beats
from tests.numerics.reference import lead_exponent, round_fraction

NAN = float("nan")


# -- the reference ---------------------------------------------------------------------------------
def max_finite(fmt: Minifloat) -> Fraction:
    field, mantissa = (1 << fmt.exp_bits) - 1, (1 << fmt.man_bits) - 1
    if fmt.specials is Specials.IEEE:
        field -= 1
    elif fmt.specials is Specials.FN:
        mantissa -= 1
    return Fraction((1 << fmt.man_bits) + mantissa) * Fraction(2) ** (field - fmt._bias - fmt.man_bits)


def value_of(code: int, fmt: Minifloat) -> Fraction | float:
    """A code's value from its fields: sign, exponent field, mantissa."""
    m, e = fmt.man_bits, fmt.exp_bits
    negative = code >> (fmt.bits - 1) & 1
    field, mantissa = code >> m & ((1 << e) - 1), code & ((1 << m) - 1)
    if fmt.specials is Specials.IEEE and field == (1 << e) - 1:
        return NAN if mantissa else (-math.inf if negative else math.inf)
    if fmt.specials is Specials.FN and field == (1 << e) - 1 and mantissa == (1 << m) - 1:
        return NAN
    if fmt.specials is Specials.FNUZ and code == 1 << (fmt.bits - 1):
        return NAN
    significand = mantissa + (1 << m if field else 0)
    value = Fraction(significand) * Fraction(2) ** (max(field, 1) - fmt._bias - m)
    return -value if negative else value


def code_of(value: Fraction | float, fmt: Minifloat) -> int:
    """The code of a representable value, NaN or Inf (numerics' canonical NaN, +0 for zero; Inf
    in a format without it: NaN, or the largest finite where it has no NaN either)."""
    m, e, sign = fmt.man_bits, fmt.exp_bits, 1 << (fmt.bits - 1)
    nan = {Specials.IEEE: ((1 << e) - 1) << m | 1 << (m - 1), Specials.FN: (1 << (e + m)) - 1, Specials.FNUZ: sign}
    if isinstance(value, float) and math.isnan(value):
        return nan[fmt.specials]
    if isinstance(value, float):  # +-Inf
        if fmt.specials is Specials.IEEE:
            return (sign if value < 0 else 0) | ((1 << e) - 1) << m
        if fmt.specials is not Specials.FINITE:
            return nan[fmt.specials]
        value = max_finite(fmt) if value > 0 else -max_finite(fmt)
    if value == 0:
        return 0
    magnitude = abs(value)
    lead = math.floor(math.log2(magnitude))
    lead += (Fraction(2) ** (lead + 1) <= magnitude) - (Fraction(2) ** lead > magnitude)
    field = max(lead - fmt.emin + 1, 0)
    significand = magnitude / Fraction(2) ** (max(lead, fmt.emin) - m)
    assert significand.denominator == 1, f"{value} is not a {fmt.name} value"
    return (sign if value < 0 else 0) | (field << m) + int(significand) - (1 << m if field else 0)


def cut(x: Fraction, quantum: Fraction, nearest_even: bool) -> Fraction:
    steps, rest = divmod(abs(x), quantum)
    if nearest_even and (rest > quantum / 2 or (rest == quantum / 2 and steps % 2)):
        steps += 1
    return steps * quantum if x >= 0 else -steps * quantum


def reference_add(acc: Fraction | float, term: Fraction | float, spec: FloatAccumulator) -> int:
    """The code of add(acc, term) as FloatAccumulator's docstring says it."""
    if isinstance(acc, float) or isinstance(term, float):
        return code_of(float(acc) + float(term), spec.format)  # NaN, Inf, Inf + -Inf = NaN
    if spec.window is not None and (acc != 0 or term != 0):
        top = max(lead_exponent(v) for v in (acc, term) if v != 0)
        quantum = Fraction(2) ** (top - spec.window + 1)
        acc, term = (cut(v, quantum, spec.align == "nearest_even") for v in (acc, term))
    return code_of(round_fraction(acc + term, spec.format, spec.rounding == "toward_zero"), spec.format)


# -- the hardware ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Unit:
    """One float_add: an accumulator and the addend's layout (value = sig * 2**(exp + exp_base))."""

    spec: FloatAccumulator
    sig_width: int
    exp_width: int
    exp_base: int
    blocked: bool = False  # the addend is first rounded to the format (an array's block or fold sum)

    def term_value(self, sig: int, exp: int) -> Fraction:
        return Fraction(sig) * Fraction(2) ** (exp + self.exp_base)


def add_bank(units: list[Unit]) -> Any:
    """Every unit's inputs packed in one beat (per unit: acc code, sig, exp, special = nan | inf << 1
    | neg << 2) and every unit's output code in one result beat, so sim's stream player replays the
    cases from a hex file at one beat per cycle."""

    def build(m: Module, i: int, fields: list) -> object:
        u = units[i]
        acc, sig, exp, special = fields
        term = hw.FloatTerm(sig.as_signed(), exp, u.exp_base, special[0], special[1], special[2])
        add = add_rounded if u.blocked else hw.float_add
        return add(m, f"unit{i}", acc, term, u.spec)

    widths = [((u.spec.format.bits, u.sig_width, u.exp_width, 3), u.spec.format.bits) for u in units]
    return unit_bank(widths, build)


Case = tuple[int, int, int, int]  # acc code, sig, exp, special (nan | inf << 1 | neg << 2)


def play(units: list[Unit], cases: list[list[Case]], work: Path) -> list[list[int]]:
    """Every unit's output code for each of its cases (units with fewer cases idle on zeros)."""
    bank = add_bank(units)
    beats = max(len(c) for c in cases)
    fields: list[tuple[np.ndarray, int]] = []
    for u, unit_cases in zip(units, cases, strict=True):
        columns = np.array(unit_cases + [(0, 0, 0, 0)] * (beats - len(unit_cases)), dtype=np.int64).T
        fields += zip(columns, (u.spec.format.bits, u.sig_width, u.exp_width, 3), strict=True)
    work.mkdir(parents=True, exist_ok=True)
    write_beats(work / "in.hex", fields)
    build_root = Path(os.environ["BITFAB_CACHE"]) / "verilator"
    *_, count, out_hex = sim_play(bank, [("word", bank.in_width, work / "in.hex", beats)], bank.out_width, beats, None,
                                  beats + 100, build_root, work)  # fmt: skip
    assert count == beats
    outputs = read_lanes(out_hex, 1, tuple((f"out{i}", u.spec.format.bits, False) for i, u in enumerate(units)))
    return [outputs[f"out{i}"][: len(c), 0].tolist() for i, c in enumerate(cases)]


# -- the cases ------------------------------------------------------------------------------------
def term_for(unit: Unit, value: Fraction) -> tuple[int, int] | None:
    """(sig, exp) with sig * 2**(exp + exp_base) == value, if the layout holds it."""
    if value == 0:
        return 0, 0
    numerator, denominator = value.numerator, value.denominator  # the denominator is a power of two
    zeros = (numerator & -numerator).bit_length() - 1
    odd, k = numerator >> zeros, zeros - (denominator.bit_length() - 1)  # value = odd * 2**k
    exp = min(k - unit.exp_base, (1 << unit.exp_width) - 1)
    if exp < 0:
        return None
    sig = odd << (k - unit.exp_base - exp)
    return (sig, exp) if -(1 << (unit.sig_width - 1)) <= sig < 1 << (unit.sig_width - 1) else None


def adversarial_cases(unit: Unit, rng: random.Random, count: int) -> list[Case]:
    """Random pairs, and addends placed where the sum sits on a rounding or window boundary,
    one step either side of it, cancels exactly or nearly, overflows or underflows."""
    fmt = unit.spec.format
    codes = list(range(1 << fmt.bits)) if fmt.bits <= 8 else None  # small formats: every code
    cases: list[Case] = []
    widest = unit.sig_width - 2  # significand bits a term can carry for sure

    def random_code() -> int:
        if codes is not None:
            return rng.choice(codes)
        kind = rng.random()
        if kind < 0.1:  # the ends of the range, zero, subnormals
            mag = rng.choice([0, 1, 2, (1 << fmt.man_bits) - 1, 1 << fmt.man_bits, code_of(max_finite(fmt), fmt),
                              code_of(max_finite(fmt), fmt) - 1])  # fmt: skip
        else:
            mag = rng.randrange(1 << (fmt.bits - 1))
        return mag | (rng.randrange(2) << (fmt.bits - 1))

    def add(code: int, value: Fraction) -> None:
        term = term_for(unit, value)
        if term is not None:
            cases.append((code, term[0], term[1], int(value < 0) << 2))

    while len(cases) < count:
        code = random_code()
        acc = value_of(code, fmt)
        if isinstance(acc, float):
            special = rng.choice([0, 1 << 1, 1 << 1 | 1 << 2, 1])
            cases.append((code, 0, rng.randrange(1 << unit.exp_width), special))
            continue
        choice = rng.random()
        lead = lead_exponent(acc) if acc else fmt.emin
        if choice < 0.15:  # anything the layout holds
            sig = rng.randrange(-(1 << (unit.sig_width - 1)), 1 << (unit.sig_width - 1)) >> rng.randrange(
                unit.sig_width
            )
            cases.append((code, sig, rng.randrange(1 << unit.exp_width), int(sig < 0) << 2))
        elif choice < 0.2:  # specials: NaN, +-Inf terms on finite accumulators
            cases.append((code, 0, 0, rng.choice([1, 1 << 1, 1 << 1 | 1 << 2, 1 | 1 << 2])))
        elif choice < 0.55:  # sums on and next to the format's rounding boundaries (or a window's)
            step = rng.choice([fmt.man_bits, unit.spec.window or fmt.man_bits + 1, fmt.man_bits + 1]) - 1
            quantum = Fraction(2) ** (max(lead + rng.choice([0, 0, -1, 1]), fmt.emin) - step)
            target = (Fraction(rng.randrange(-4, 5)) + Fraction(1, 2)) * quantum + acc
            nudge = Fraction(2) ** (lead_exponent(quantum) - rng.randrange(1, widest + 1))
            target += rng.choice([0, 0, nudge, -nudge])
            add(code, target - acc)
        elif choice < 0.7:  # cancellation: exact, to subnormals, to a few bits
            nudge = Fraction(rng.randrange(-3, 4)) * Fraction(2) ** (fmt.emin - fmt.man_bits - rng.randrange(3))
            add(code, -acc + rng.choice([0, nudge, nudge * 2 ** rng.randrange(fmt.man_bits + 3)]))
        elif choice < 0.9:  # odd significands at every alignment around acc
            bits = rng.randrange(1, widest + 1)
            sig = rng.randrange(1 << (bits - 1), 1 << bits) | 1
            shift = lead - bits + 1 + rng.randrange(-fmt.man_bits - 6, 4)
            add(code, (-1) ** rng.randrange(2) * Fraction(sig) * Fraction(2) ** shift)
        else:  # far away: huge gaps above and below, overflow
            shift = lead + rng.choice([-200, -60, -30, 30, 60, 200, 2**fmt.exp_bits])
            add(code, (-1) ** rng.randrange(2) * Fraction(2) ** shift * rng.choice([1, 3, 7]))
    return cases


def units_for(name: str) -> list[Unit]:
    """The full-alignment adds in both roundings with a wide (the format's own product) and a
    narrow far-reaching addend, and windows 2..p (a spread for fp32/fp16) in both aligns."""
    fmt = numerics.get(name)
    assert isinstance(fmt, Minifloat)
    p = fmt.man_bits + 1
    product = (2 * p + 2, fmt.exp_bits + 1, 2 * fmt.lsb_exponent)
    narrow = (3, 11, -1100)
    units = [Unit(FloatAccumulator(fmt, rounding=r), *layout)
             for layout in (product, narrow) for r in ("nearest_even", "toward_zero")]  # fmt: skip
    # the blocked add: an MX block sum (wide, an E8M0 pair's exponent far below) rounded, then added
    # (the lean datapath for IEEE formats, hw/_float_compact.py; the general one for the others)
    block_sum = (2 * p + 12, 9, 2 * fmt.lsb_exponent - 254 - 2 * fmt.exp_bits)
    units += [
        Unit(FloatAccumulator(fmt, rounding=r), *block_sum, blocked=True) for r in ("nearest_even", "toward_zero")
    ]
    windows = range(2, p + 1) if p <= 8 else sorted({2, 3, p // 2, p - 1, p})
    for i, (window, align) in enumerate((w, a) for w in windows for a in ("truncate", "nearest_even")):
        rounding = ("nearest_even", "toward_zero")[i % 2]
        units.append(Unit(FloatAccumulator(fmt, window=window, align=align, rounding=rounding), *product))
    return units


@pytest.mark.parametrize("name", ["fp32", "fp16", "bf16", "fp8_e5m2", "fp8_e4m3", "fp8_e5m2fnuz"])
def test_float_add_matches_the_exact_reference(name: str, tmp_path: Path) -> None:
    units = units_for(name)
    rng = random.Random(name)
    cases = [adversarial_cases(u, rng, 3000) for u in units]
    results = play(units, cases, tmp_path)
    for unit, unit_cases, got in zip(units, cases, results, strict=True):
        fmt = unit.spec.format
        for (code, sig, exp, special), out in zip(unit_cases, got, strict=True):
            if special & 1:
                term: Fraction | float = NAN
            elif special & 2:
                term = -math.inf if special & 4 else math.inf
            else:
                term = unit.term_value(sig, exp)
                if unit.blocked:
                    term = value_of(code_of(round_fraction(term, fmt, unit.spec.rounding == "toward_zero"), fmt), fmt)
            want = reference_add(value_of(code, fmt), term, unit.spec)
            assert out == want, (
                f"{numerics.accumulator_name(unit.spec)}: add({code:#x} = {value_of(code, fmt)}, {term} = {sig} * "
                f"2**({exp} + {unit.exp_base})) gave {out:#x} = {value_of(out, fmt)}, expected {want:#x} = "
                f"{value_of(want, fmt)}"
            )


def test_the_reference_agrees_with_numerics_on_two_term_dots() -> None:
    """The Fraction reference and numerics.dot say the same on [x, y] . [1, 1] (x, y bf16 codes
    summed in an fp16 / windowed accumulator): the two golden models are one contract."""
    bf16, rng = numerics.get("bf16"), random.Random(5)
    x = [rng.randrange(1 << 16) for _ in range(3000)]
    y = [rng.randrange(1 << 16) for _ in range(3000)]
    one = code_of(Fraction(1), bf16)
    for spec in (FloatAccumulator(numerics.get("fp16")), numerics.parse_accumulator("fp16_w5r_rz")):
        assert isinstance(spec, FloatAccumulator)
        result = numerics.dot(np.array([x, y]).T, np.full((3000, 2), one), bf16, bf16, spec)
        expected = result.round_to(spec.format)
        for i in range(3000):
            first = reference_add(Fraction(0), value_of(x[i], bf16), spec)  # a clear adds to +0
            got = reference_add(value_of(first, spec.format), value_of(y[i], bf16), spec)
            assert got == expected[i], (numerics.accumulator_name(spec), hex(x[i]), hex(y[i]), hex(got))


def test_float_add_refuses_formats_without_zero() -> None:
    fmt = Minifloat(4, 3, subnormals=False)
    message = f"a hardware float accumulator needs a signed minifloat with subnormals (it must hold +0), got {fmt.name}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        hw.float_add(Module(), "x", Signal(8), None, FloatAccumulator(fmt))  # type: ignore[arg-type]
