"""Co-simulation of a layer on the requantizing array (`hw.RequantArray`): A @ B through the
output stage, every code checked against numerics (matmul, then the `Requantization`: INT
integers, minifloat codes, or MX blocks — every element code and every block scale)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

import hw
import numerics

from ._gemm import GemmReport, expected_gemm, in_units, write_bitserial_beats
from ._player import DEPTH_BITS, play, read_lanes, write_beats


def check_stage(config: hw.RequantConfig, stage: numerics.Requantization, n: int) -> None:
    """Refuse a stage the design cannot hold, naming the value and the limit."""
    bias, multiplier = np.asarray(stage.bias, dtype=np.int64), np.asarray(stage.multiplier, dtype=np.int64)
    if n > config.n_max:
        raise ValueError(f"N = {n} exceeds the design's n_max {config.n_max}")
    if bias.shape != (n,) or multiplier.shape != (n,):
        raise ValueError(f"the stage needs one bias and one multiplier per output channel ({n}), got "
                         f"{bias.shape} and {multiplier.shape}")  # fmt: skip
    limit = 1 << (config.bias_bits - 1)
    if (np.abs(bias) >= limit).any():
        raise ValueError(f"a bias of {int(np.abs(bias).max())} does not fit the stage's {config.bias_bits} bits")
    if (multiplier < 0).any() or (multiplier >= 1 << config.multiplier_bits).any():
        raise ValueError(f"multipliers must be in 0..{(1 << config.multiplier_bits) - 1}, got {int(multiplier.max())}")
    if not 0 <= stage.shift <= config.shift_max:
        raise ValueError(f"shift must be between 0 and {config.shift_max}, got {stage.shift}")
    designed = "int" if config.output is None else config.output.name
    output = stage.output_format
    if isinstance(output, numerics.Minifloat | numerics.BlockFormat) or config.kind == "mx":
        if output != config.output:
            raise ValueError(f"the stage rounds to {stage.format}; this design's output is {designed}")
        if config.kind == "mx" and stage.activation not in ("identity", "relu"):
            raise ValueError(f"an MX output takes activation identity or relu, got {stage.activation}")
        return
    low, high = stage.bounds()
    if min(low, high, stage.zero_point) < -(1 << (config.out_bits - 1)) or max(low, high) >= 1 << config.out_bits - 1:
        raise ValueError(f"{stage.format} codes do not fit the stage's int{config.out_bits} lanes")


def expected_codes(config: hw.RequantConfig, a_codes: Any, b_codes: Any, stage: numerics.Requantization) -> Any:
    """What the stage must produce from numerics' accumulators (`stage_output`)."""
    acc, _ = expected_gemm(config.array, a_codes, b_codes)
    return stage_output(config, stage, np.asarray(acc, dtype=np.int64))


def stage_output(config: hw.RequantConfig, stage: numerics.Requantization, acc: np.ndarray) -> np.ndarray:
    """(M, N) integers (INT outputs) or codes (minifloat); MX: (M, blocks, 1 + block) with each
    block's scale code first, then its element codes."""
    output = stage.output_format
    if isinstance(output, numerics.IntFormat):
        return stage.integers(acc)
    if isinstance(output, numerics.Minifloat):
        return stage.codes(acc).astype(np.int64)
    encoded = stage.blocks(acc)
    return np.concatenate([encoded.scales[..., None], encoded.elements], axis=-1).astype(np.int64)


def cosim_requant(design: hw.RequantArray, a_codes: Any, b_codes: Any, stage: numerics.Requantization,
                  build_root: Path, work: Path, optimize: bool = False,
                  stall_every: int = 0) -> GemmReport:  # fmt: skip
    """Run one layer (A @ B, then `stage`) on `design` in Verilator; compare every code and the
    cycle count (`hw.requant_cycles`). The report's `result` holds the (M, N) integers."""
    cfg, array = design.config, design.config.array
    build_root, work = Path(build_root).absolute(), Path(work).absolute()
    beats = hw.gemm_beats(array, a_codes, b_codes)
    a_el, b_el = hw.lane_codes(array, a_codes, b_codes) if array.block is None else hw.mx_operands(
        array, a_codes, b_codes)[:2]  # fmt: skip
    (m, k), n = a_el.shape, b_el.shape[1]
    check_stage(cfg, stage, n)
    model = hw.requant_cycles(cfg, m, k, n)
    folds = -(-n // array.cols)
    if max(len(beats.a), len(beats.b), beats.results) > 1 << DEPTH_BITS:
        raise ValueError(f"this layer needs more than {1 << DEPTH_BITS} beats on one stream")
    work.mkdir(parents=True, exist_ok=True)
    a_fields, b_fields = [(beats.a, array.a_code_format.bits)], [(beats.b, array.b_code_format.bits)]
    if beats.a_scales is not None and beats.b_scales is not None:
        a_fields.append((beats.a_scales, 8))
        b_fields.append((beats.b_scales, 8))
    inputs = [("a", write_beats(work / "a.hex", a_fields), work / "a.hex", len(beats.a)),
              ("b", write_beats(work / "b.hex", b_fields), work / "b.hex", len(beats.b)),
              _params(work, cfg, stage, folds)]  # fmt: skip
    order = _beat_order(cfg, beats.results, m, n, array.dataflow == "os")
    started = time.perf_counter()
    first, last, count, out_hex = play(design, inputs, _out_width(cfg), len(order[0]), (m, k, n), 4 * model + 1000,
                                       build_root, work, optimize=optimize, stall_every=stall_every,
                                       settings=_settings(cfg, stage))  # fmt: skip
    seconds = time.perf_counter() - started
    want = expected_codes(cfg, a_codes, b_codes, stage)
    floats = isinstance(stage.output_format, numerics.Minifloat)
    got = _decode(cfg, out_hex, order, want.shape, lambda lanes: hw.result_matrix(array, lanes, m, n), floats)
    return _report(cfg, stage, got, want, count, len(order[0]), (m, k, n), last - first + 1, model, seconds,
                   array.rows * array.cols)  # fmt: skip


def cosim_requant_bitserial(design: hw.RequantBitSerial, a_codes: Any, weights: Any, w_format: str,
                            stage: numerics.Requantization, build_root: Path, work: Path,
                            optimize: bool = False) -> GemmReport:  # fmt: skip
    """A @ W on the bit-serial unit through the output stage (`hw.RequantBitSerial`): every code
    against numerics (the exact product in the unit's accumulator units, then `stage`), cycles
    against the unit's model plus the stage's register."""
    cfg, unit = design.config, design.config.array
    build_root, work = Path(build_root).absolute(), Path(work).absolute()
    a_codes = np.asarray(a_codes)
    plan = hw.plan_weights(unit, weights, w_format)
    beats = hw.bitserial_beats(unit, a_codes, plan)
    (m, k), n = a_codes.shape, plan.slices.shape[2]
    check_stage(cfg, stage, n)
    model = hw.bitserial_cycles(unit, m, k, n, plan) + 1
    folds = -(-n // unit.cols)
    work.mkdir(parents=True, exist_ok=True)
    width = write_bitserial_beats(work / "beats.hex", unit, beats)
    inputs = [("beat", width, work / "beats.hex", len(beats["a"])), _params(work, cfg, stage, folds)]
    started = time.perf_counter()
    order = _beat_order(cfg, folds * m, m, n, False)
    first, last, count, out_hex = play(design, inputs, _out_width(cfg), len(order[0]), (m, k, n), 4 * model + 1000,
                                       build_root, work, optimize=optimize, settings=_settings(cfg, stage))  # fmt: skip
    seconds = time.perf_counter() - started
    acc = in_units(numerics.matmul(a_codes, weights, unit.a_format, w_format), bitserial_lsb(unit, plan))
    want = stage_output(cfg, stage, np.asarray(acc, dtype=np.int64))
    got = _decode(cfg, out_hex, order, want.shape,
                  lambda lanes: lanes.reshape(-1, m, unit.cols).transpose(1, 0, 2).reshape(m, -1)[:, :n],
                  isinstance(stage.output_format, numerics.Minifloat))  # fmt: skip
    return _report(cfg, stage, got, want, count, len(order[0]), (m, k, n), last - first + 1, model, seconds,
                   unit.cols * unit.lanes)  # fmt: skip


def bitserial_lsb(unit: Any, plan: Any) -> int:
    """The exponent of the bit-serial unit's accumulator lsb for weights planned as `plan`."""
    return unit.a_format.lsb_exponent + plan.unit_exponent + unit.lsb_exponent_offset


def _params(work: Path, cfg: hw.RequantConfig, stage: numerics.Requantization, folds: int) -> tuple[Any, ...]:
    """The `params` stream's input for the player: one beat of C (bias, multiplier) per fold,
    the last fold's missing channels zero."""
    n = len(stage.bias)
    bias, multiplier = (np.zeros(folds * cfg.array.cols, np.int64) for _ in range(2))
    bias[:n], multiplier[:n] = stage.bias, stage.multiplier
    fields = [(bias.reshape(folds, -1), cfg.bias_bits), (multiplier.reshape(folds, -1), cfg.multiplier_bits)]
    return ("params", write_beats(work / "params.hex", fields), work / "params.hex", folds)


def _settings(cfg: hw.RequantConfig, stage: numerics.Requantization) -> tuple[tuple[str, int, int], ...]:
    shift = ("shift", cfg.shift_max.bit_length(), stage.shift)
    if cfg.kind == "mx":
        return shift, ("relu", 1, int(stage.activation == "relu"))
    low, high = stage.bounds()  # a minifloat's: codes, in the lanes' low bits
    words = (("zero_point", cfg.out_bits, stage.zero_point), ("low", cfg.out_bits, low), ("high", cfg.out_bits, high))
    if cfg.kind == "int":
        return shift, *words
    return shift, *words, ("to_format", 1, int(isinstance(stage.output_format, numerics.Minifloat)))


def _out_width(cfg: hw.RequantConfig) -> int:
    if cfg.kind == "mx":
        return cfg.blocks_per_beat * (8 + cfg.block * cfg.code_bits)
    return cfg.array.cols * cfg.out_bits


def _beat_order(cfg: hw.RequantConfig, results: int, m: int, n: int, os: bool) -> tuple[np.ndarray, np.ndarray]:
    """(row, first block) of every `out` beat. INT and minifloat outputs: one beat per result beat
    (rows unused). MX: a beat where a fold completes a block of channels; the array's beats go fold
    after fold, `m` rows each (WS, bit-serial) or, per tile of R rows, `rows` per fold (OS)."""
    if cfg.kind != "mx":
        return np.zeros(results, np.int64), np.zeros(results, np.int64)
    folds = -(-n // cfg.array.cols)
    beat = np.arange(results)
    if os:
        r = cfg.array.rows
        fold, row = (beat // r) % folds, (beat // (r * folds)) * r + beat % r
    else:
        fold, row = beat // m, beat % m
    per = cfg.folds_per_block
    completes = (fold % per == per - 1) | (fold == folds - 1)
    first = fold // per if cfg.array.cols < cfg.block else fold * cfg.blocks_per_beat
    return row[completes], first[completes]


def _decode(cfg: hw.RequantConfig, out_hex: Path, order: tuple[np.ndarray, np.ndarray], shape: tuple[int, ...],
            to_matrix: Any, floats: bool) -> np.ndarray:  # fmt: skip
    """The design's output in `stage_output`'s layout (missing beats: -1); `floats`: minifloat codes
    in the lanes' low bits."""
    if cfg.kind != "mx":
        lanes = read_lanes(out_hex, cfg.array.cols, (("code", cfg.out_bits, True),))["code"]
        if len(lanes) != len(order[0]):
            return np.full(shape, -1, np.int64)
        got = np.asarray(to_matrix(lanes), dtype=np.int64)
        return got & ((1 << cfg.code_bits) - 1) if floats else got
    fields = (("scale", 8, False), *((f"e{i}", cfg.code_bits, False) for i in range(cfg.block)))
    lanes = read_lanes(out_hex, cfg.blocks_per_beat, fields)
    got = np.full(shape, -1, np.int64)
    if len(lanes["scale"]) != len(order[0]):
        return got
    blocks = np.stack([lanes[name] for name, _, _ in fields], axis=-1).astype(np.int64)  # (beats, per beat, 1 + block)
    rows, first = order
    index = first[:, None] + np.arange(cfg.blocks_per_beat)
    keep = (rows[:, None] < shape[0]) & (index < shape[1])
    got[np.broadcast_to(rows[:, None], index.shape)[keep], index[keep]] = blocks[keep]
    return got


def _report(cfg: hw.RequantConfig, stage: numerics.Requantization, got: np.ndarray, want: np.ndarray, count: int,
            beats: int, shape: tuple[int, int, int], cycles: int, model: int, seconds: float,
            pes: int) -> GemmReport:  # fmt: skip
    m, _, n = shape
    described = None
    if count != beats:
        described, mismatches = f"{count} result beats, expected {beats}", m * n
    else:
        bad = np.argwhere(got != want)
        mismatches = len(bad)
        if mismatches and cfg.kind == "mx":
            i, block, slot = (int(x) for x in bad[0])
            what = "scale" if slot == 0 else f"element {slot - 1}"
            described = (f"row {i} block {block} {what} = {got[i, block, slot]}, expected {want[i, block, slot]} "
                         f"({stage.format}, shift {stage.shift})")  # fmt: skip
        elif mismatches:
            i, j = (int(x) for x in bad[0])
            described = (f"C[{i}, {j}] = {got[i, j]}, expected {want[i, j]} ({stage.format}, bias {stage.bias[j]}, "
                         f"multiplier {stage.multiplier[j]}, shift {stage.shift})")  # fmt: skip
    return GemmReport(cfg.describe(), shape, cycles, model, mismatches, described, seconds, pes, got, 0)
