"""Co-simulation of whole GEMMs on generated systolic arrays, checked against numerics.matmul."""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

import hw
import numerics

from ._golden import hardware_flags
from ._player import DEPTH_BITS, play, read_lanes, write_beats


@dataclass(frozen=True)
class GemmReport:
    """Outcome of one GEMM co-simulation: bit-exactness, cycles measured vs modelled."""

    design: str
    shape: tuple[int, int, int]
    cycles: int
    model_cycles: int
    mismatches: int
    first_mismatch: str | None
    seconds: float  # wall time of the simulation run (build excluded when cached)
    pe_count: int
    result: np.ndarray | None = None  # (M, N) hardware results, integers in units of 2**lsb_exponent
    lsb_exponent: int = 0
    float_format: numerics.Minifloat | None = None  # a float accumulator's: `result` holds its codes

    def values(self) -> np.ndarray:
        """The hardware results as float64 (each exact integer rounded once, then scaled exactly;
        a float accumulator's codes decoded)."""
        if self.result is None:
            raise ValueError("this report carries no results")
        if self.float_format is not None:
            return self.float_format.decode(np.asarray(self.result, dtype=np.uint64))
        return np.ldexp(np.asarray(self.result, dtype=np.float64), self.lsb_exponent)

    @property
    def passed(self) -> bool:
        return self.mismatches == 0 and self.cycles == self.model_cycles

    def failure(self) -> str | None:
        """Why the run did not pass, or None."""
        if self.mismatches:
            return f"{self.mismatches} mismatches; first: {self.first_mismatch}"
        if self.cycles != self.model_cycles:
            return f"GEMM {self.shape}: measured {self.cycles} cycles, the model says {self.model_cycles}"
        return None

    @property
    def macs(self) -> int:
        m, k, n = self.shape
        return m * k * n

    @property
    def utilization(self) -> float:
        """Useful MACs per PE-cycle."""
        return self.macs / (self.cycles * self.pe_count)


def expected_gemm(config: hw.ArrayConfig, a_codes: np.ndarray, b_codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(M, N) accumulator integers in units of 2**config.lsb_exponent, and (M, N, 3) flags.
    (Element operands: codes; MX arrays: the two MX encodings.) A float accumulator gives its
    format's codes (`canonical_codes`), from numerics with the order the dataflow realises."""
    # OliVe operands keep their own format: the scale granularity (tensor, channel, row) is theirs
    a_fmt = config.block or (a_codes.format if config.a_ovp else config.a_format)  # type: ignore[attr-defined]
    b_fmt = config.block or (b_codes.format if config.b_ovp else config.b_format)  # type: ignore[attr-defined]
    a_codes, b_codes = hw.datapath_codes(config, a_codes, b_codes)  # zero points: code - zero point, as the edge does
    result = numerics.matmul(_grid(a_codes), _grid(b_codes), a_fmt, b_fmt, config.numerics_accumulator)
    special = np.asarray(result.special, dtype=np.float64)
    flags = np.stack([np.isnan(special), special == np.inf, special == -np.inf], axis=-1)
    if config.float_format is not None:
        return canonical_codes(config.float_format, result.round_to(config.float_format)), flags
    return in_units(result, config.lsb_exponent), flags


def canonical_codes(fmt: numerics.Minifloat, codes: np.ndarray) -> np.ndarray:
    """Codes with -0 as +0 and every NaN as the format's NaN code, for comparing float results
    (numerics' values carry neither the sign of a zero nor a NaN payload)."""
    codes = np.asarray(codes, dtype=np.uint64).copy()
    values = fmt.decode(codes)
    codes[values == 0] = 0
    codes[np.isnan(values)] = fmt.encode(np.array([np.nan]))[0]
    return codes


def in_units(result: numerics.ExactResult, lsb_exponent: int) -> np.ndarray:
    """The exact integers of `result` in units of 2**lsb_exponent (they must be whole there)."""
    integers = np.asarray(result.integers(), dtype=object)
    shift = result.lsb_exponent - lsb_exponent
    if shift >= 0:
        return integers * (1 << shift)
    if any(int(v) % (1 << -shift) for v in integers.flat):
        raise AssertionError(f"numerics results are not whole multiples of 2**{lsb_exponent}")
    return integers // (1 << -shift)


def _grid(operand: Any) -> Any:
    """An OliVe encoding with its fp32 scale set to 1.0: the array computes on the integer grid
    and the one scale per tensor/channel is applied outside it, once per result."""
    if isinstance(operand, numerics.OVPEncoded):
        return replace(operand, scale=np.full_like(operand.scale, 0x3F800000))
    return operand


def cosim_gemm(array: hw.SystolicArray, a_codes: np.ndarray, b_codes: np.ndarray, build_root: Path, work: Path,
               waves: bool = False, optimize: bool = False, stall_every: int = 0,
               gaps: tuple[int, int] = (0, 0)) -> GemmReport:  # fmt: skip
    """Run A @ B (codes) on `array` in Verilator; compare every result and the cycle count.

    `stall_every` N > 0 applies backpressure on `out` every N-th cycle, `gaps` (N_a, N_b) leave
    the a / b stream without a beat every N-th cycle (the results must not change; the cycle count
    then exceeds the stall-free model). `optimize` builds optimized C++ (2-3x the build time,
    ~1.7x faster simulation) for long GEMMs."""
    cfg = array.config
    build_root, work = Path(build_root).absolute(), Path(work).absolute()  # plusargs name files for the simulator
    beats = hw.gemm_beats(cfg, a_codes, b_codes)
    if cfg.block is None:
        a_el, b_el = hw.lane_codes(cfg, a_codes, b_codes)
    else:
        a_el, b_el, _, _ = hw.mx_operands(cfg, a_codes, b_codes)
    (m, k), n = a_el.shape, b_el.shape[1]
    model = hw.cycles(cfg, m, k, n)
    longest = max(len(beats.a), len(beats.b), beats.results)
    if longest > 1 << DEPTH_BITS:
        raise ValueError(f"this GEMM needs {longest} beats on one stream; the player holds at most {1 << DEPTH_BITS}")
    work.mkdir(parents=True, exist_ok=True)
    a_fields, b_fields = [(beats.a, cfg.a_code_format.bits)], [(beats.b, cfg.b_code_format.bits)]
    if beats.a_scales is not None and beats.b_scales is not None:  # MX: codes, then the block scales
        a_fields.append((beats.a_scales, 8))
        b_fields.append((beats.b_scales, 8))
    a_width = write_beats(work / "a.hex", a_fields)
    b_width = write_beats(work / "b.hex", b_fields)
    inputs = [("a", a_width, work / "a.hex", len(beats.a)), ("b", b_width, work / "b.hex", len(beats.b))]
    started = time.perf_counter()
    first, last, count, out_hex = play(array, inputs, cfg.cols * (cfg.acc_width + 3), beats.results, (m, k, n),
                                       4 * model + 1000, build_root, work, waves, optimize, stall_every,
                                       gaps)  # fmt: skip
    seconds = time.perf_counter() - started
    fmt = cfg.float_format
    lanes = read_lanes(out_hex, cfg.cols, (("acc", cfg.acc_width, fmt is None), ("nan", 1, False),
                                           ("pos_inf", 1, False), ("neg_inf", 1, False)))  # fmt: skip
    got = hw.result_matrix(cfg, lanes["acc"], m, n)
    if fmt is not None:
        got = canonical_codes(fmt, got.astype(np.uint64))
    got_flags = np.stack([hw.result_matrix(cfg, lanes[f], m, n) for f in ("nan", "pos_inf", "neg_inf")], axis=-1)
    want, want_flags = expected_gemm(cfg, a_codes, b_codes)
    got_flags = np.array([hardware_flags(*f) for f in got_flags.reshape(-1, 3)], dtype=bool).reshape(m, n, 3)
    bad = np.argwhere((got != want) | (got_flags != want_flags).any(axis=-1))
    described = None
    if count != beats.results:
        described = f"{count} result beats, expected {beats.results}"
    elif len(bad):
        i, j = (int(x) for x in bad[0])
        described = (f"C[{i}, {j}] = {_shown(cfg, got[i, j])} flags {tuple(got_flags[i, j])}, expected "
                     f"{_shown(cfg, want[i, j])} flags {tuple(want_flags[i, j])}; A[{i}, :16] = "
                     f"{a_el[i, :16].tolist()}, B[:16, {j}] = {b_el[:16, j].tolist()}")  # fmt: skip
    mismatches = len(bad) if count == beats.results else m * n
    return GemmReport(cfg.describe(), (m, k, n), last - first + 1, model, mismatches, described, seconds,
                      cfg.rows * cfg.cols, got, cfg.lsb_exponent, fmt)  # fmt: skip


def _shown(cfg: hw.ArrayConfig, value: Any) -> str:
    """A result for a message: a float code with its value, or an integer with its units."""
    fmt = cfg.float_format
    if fmt is None:
        return f"{value} (units of 2**{cfg.lsb_exponent})"
    number = float(fmt.decode(np.array([value], dtype=np.uint64))[0])
    return f"{number!r} ({fmt.name} code {int(value):#x})"


def write_bitserial_beats(path: Path, cfg: Any, beats: dict[str, np.ndarray]) -> int:
    """The bit-serial unit's beats, one hex word each, in its beat layout's field order."""
    order = [("a", cfg.a_format.bits), ("w", 4), ("selector", 2), ("scale", 16), ("mode", 2), ("term", 2),
             ("first", 1), ("last", 1), ("emit", 1)]  # fmt: skip
    return write_beats(path, [(beats[name], bits) for name, bits in order])


def cosim_bitserial(array: hw.BitSerialArray, a_codes: np.ndarray, weights: Any, w_format: str, build_root: Path,
                    work: Path, waves: bool = False, optimize: bool = False) -> GemmReport:  # fmt: skip
    """A @ W on the bit-serial unit: W is (K, N) int2..int8 / fp4_e2m1 codes or a BitMoD encoding
    along K. Results against numerics.matmul (exact, scales included); cycles against the model."""
    cfg = array.config
    build_root, work = Path(build_root).absolute(), Path(work).absolute()  # plusargs name files for the simulator
    a_codes = np.asarray(a_codes)
    plan = hw.plan_weights(cfg, weights, w_format)
    beats = hw.bitserial_beats(cfg, a_codes, plan)
    (m, k), n = a_codes.shape, plan.slices.shape[2]
    model = hw.bitserial_cycles(cfg, m, k, n, plan)
    results = -(-n // cfg.cols) * m
    work.mkdir(parents=True, exist_ok=True)
    width = write_bitserial_beats(work / "beats.hex", cfg, beats)
    started = time.perf_counter()
    first, last, count, out_hex = play(array, [("beat", width, work / "beats.hex", len(beats["a"]))],
                                       cfg.cols * cfg.acc_width, results, None, 4 * model + 1000, build_root, work,
                                       waves, optimize)  # fmt: skip
    seconds = time.perf_counter() - started
    lanes = read_lanes(out_hex, cfg.cols, (("acc", cfg.acc_width, True),))["acc"]
    got = lanes.reshape(-1, m, cfg.cols).transpose(1, 0, 2).reshape(m, -1)[:, :n]
    result = numerics.matmul(a_codes, weights, cfg.a_format, w_format)
    hw_lsb = cfg.a_format.lsb_exponent + plan.unit_exponent + cfg.lsb_exponent_offset
    want = in_units(result, hw_lsb)
    bad = np.argwhere(got != want) if count == results else np.zeros((0, 2), int)
    described = f"{count} result beats, expected {results}" if count != results else None
    if len(bad):
        i, j = (int(x) for x in bad[0])
        described = f"C[{i}, {j}] = {got[i, j]}, expected {want[i, j]} (units of 2**{hw_lsb})"
    mismatches = len(bad) if count == results else m * n
    design = f"bit-serial {cfg.cols} PEs x {cfg.lanes} lanes, {cfg.a_format.name} x {w_format}"
    return GemmReport(design, (m, k, n), last - first + 1, model, mismatches, described, seconds, cfg.cols * cfg.lanes,
                      got, hw_lsb)  # fmt: skip
