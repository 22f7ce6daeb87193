"""`bitfab generate systolic` and `bitfab cosim systolic`: GEMM arrays to Verilog, and a random
GEMM co-simulated on them (bit-exact against numerics, cycles against the model)."""

from __future__ import annotations

import argparse
import json
from typing import Any

import numpy as np
from rich.console import Console

import hw
import numerics
import sim

from . import output, paths
from .contract import array_contract
from .hardware import add_testbench_option, ports, write_design
from .options import (
    add_accumulator_options,
    add_array_options,
    add_cache_option,
    add_format_options,
    double_buffer,
    gemm,
    nonnegative_int,
    positive_int,
)

CYCLE_FORMULAS = {
    "os": "floor((F-1)/2)*max(S, 2T) + ((F-1) mod 2)*T + S; F = ceil(M/R)*ceil(N/C), T = K + R + C - 2, "
    "S = T + R + P + 3",
    "ws": "ceil(K/R)*ceil(N/C)*(M + 2R + C - 2) + P + 4",
    "ws_double_buffer": "(ceil(K/R)*ceil(N/C) - 1)*max(M, R) + M + R + C + P + 2",
}


def _array_options(args: argparse.Namespace) -> dict[str, Any]:
    """The array's options; no --acc leaves the accumulator to the array: fp32 for MX operands
    (OCP's datapath), exact for the others."""
    accumulator = None if args.acc is None else numerics.parse_accumulator(args.acc)
    if isinstance(accumulator, numerics.FixedAccumulator) and accumulator.overflow == "saturate":
        raise ValueError(f"--acc {args.acc}: an array adds partial sums in dataflow order, so a saturating register "
                         "would not match the model's k-order clamping; use exact, a wrapping int{W} or a float "
                         "accumulator (e.g. fp32)")  # fmt: skip
    return {"accumulator": accumulator, "rows": args.rows, "cols": args.cols, "dataflow": args.dataflow,
            "double_buffer": double_buffer(args), "pipeline": args.pipeline, "dsp_budget": args.dsp_budget,
            "k_max": args.k_max, "m_max": args.m_max}  # fmt: skip


def array_config(args: argparse.Namespace) -> hw.ArrayConfig:
    """The array's configuration, checked before anything is built or written."""
    return hw.ArrayConfig.build(args.a, args.b, **_array_options(args))


def build_array(args: argparse.Namespace) -> hw.SystolicArray:
    options = _array_options(args)
    return hw.SystolicArray(args.a, args.b, options.pop("accumulator"), **options)


def array_manifest(array: hw.SystolicArray, module: str) -> dict[str, Any]:
    cfg = array.config
    formula_key = "ws_double_buffer" if cfg.double_buffer else cfg.dataflow
    formula = CYCLE_FORMULAS[formula_key].replace("P", str(cfg.pipeline))
    return {
        "module": module,
        "description": cfg.describe(),
        "a_format": cfg.a_format.name,
        "b_format": cfg.b_format.name,
        "accumulator": numerics.accumulator_name(cfg.accumulator),
        **_float_order(cfg),
        "rows": cfg.rows,
        "cols": cfg.cols,
        "dataflow": cfg.dataflow,
        "double_buffer": cfg.double_buffer,
        "pipeline": cfg.pipeline,
        "dsp_budget": cfg.dsp_budget,
        "k_max": cfg.k_max,
        "m_max": cfg.m_max,
        "acc_width": cfg.acc_width,
        "acc_lsb_exponent": None if cfg.float_format is not None else cfg.lsb_exponent,  # float: acc is a code
        "cycle_formula": formula,
        "ports": ports(array),
        "contract": array_contract(cfg, formula),
    }


def _float_order(cfg: hw.ArrayConfig) -> dict[str, Any]:
    """A float accumulator's order as this dataflow realises it (numerics.FloatAccumulator's
    `order` and `block`), which its name leaves out."""
    accumulator = cfg.accumulator
    if not isinstance(accumulator, numerics.FloatAccumulator):
        return {}
    return {"accumulator_order": accumulator.order, "accumulator_block": accumulator.block}


def testbench_gemm(cfg: hw.ArrayConfig, gemm: tuple[int, int, int] | None) -> tuple[int, int, int]:
    """--gemm, else a small ragged GEMM with several folds in every tiled dimension (and, for MX, K
    across a block boundary), within the array's limits; refused before anything is written."""
    if gemm is None:
        k = cfg.block.block_size + cfg.rows + 1 if cfg.block is not None else 2 * cfg.rows + 1
        m = 2 * cfg.rows + 1 if cfg.dataflow == "os" else min(cfg.m_max, 2 * cfg.rows + 1)
        gemm = (m, min(cfg.k_max, k), 2 * cfg.cols + 1)
    hw.check_gemm(cfg, *gemm)
    return gemm


def cmd_generate_systolic(args: argparse.Namespace, console: Console) -> int:
    cfg = array_config(args)  # a refused configuration writes nothing
    if args.gemm is not None and not args.testbench:
        raise ValueError("--gemm sets the testbench's GEMM: add --testbench")
    shape = testbench_gemm(cfg, args.gemm) if args.testbench else None
    out = paths.output_directory(args.output)
    array = build_array(args)
    info = array_manifest(array, "systolic_array")
    testbench = None
    if shape is not None:
        a, b = testbench_operands(cfg, *shape, args.seed)
        testbench = sim.systolic_testbench(array, a, b, "systolic_array", f", seed {args.seed}")
        info["testbench"] = {"gemm": list(shape), "seed": args.seed}
    summary = f"{info['description']}; cycles = {info['cycle_formula']}"
    return write_design(array, args, out, "systolic_array", info, console, summary, testbench)


def random_operands(cfg: hw.ArrayConfig, m: int, k: int, n: int, rng: np.random.Generator) -> tuple[Any, Any]:
    """A random GEMM in the array's operand kinds: uniform codes for element formats (NaN and Inf
    included), MX encodings of values spread over many binades, OliVe encodings of heavy tails."""
    if cfg.block is not None:
        spread = (rng.normal(size=(m, k)) * np.exp2(rng.integers(-20, 20, (m, 1))),
                  rng.normal(size=(k, n)) * np.exp2(rng.integers(-20, 20, (1, n))))  # fmt: skip
        return cfg.block.encode(spread[0], axis=-1), cfg.block.encode(spread[1], axis=0)

    def operand(fmt: Any, ovp: Any, shape: tuple[int, int], axis: int) -> Any:
        if ovp is None:
            return rng.integers(0, 1 << fmt.bits, shape)
        return ovp.encode(rng.standard_t(2, size=shape), axis=axis)

    a_axis = 1 if cfg.dataflow == "ws" else 0
    return operand(cfg.a_format, cfg.a_ovp, (m, k), a_axis), operand(cfg.b_format, cfg.b_ovp, (k, n), 1)


def testbench_operands(cfg: hw.ArrayConfig, m: int, k: int, n: int, seed: int) -> tuple[Any, Any]:
    """random_operands, with one code of each special value (NaN, +Inf, -Inf) of an element format
    in its own row of A (from the last up) and column of B (from the last left), so the testbench
    sees NaN and signed infinite results beside finite ones."""
    a, b = random_operands(cfg, m, k, n, np.random.default_rng(seed))
    if cfg.block is None and cfg.a_ovp is None and cfg.b_ovp is None:
        for i, code in enumerate(_one_per_kind(cfg.a_code_format)[:m]):
            a[m - 1 - i, i % k] = code
        for i, code in enumerate(_one_per_kind(cfg.b_code_format)[:n]):
            b[(i + 1) % k, n - 1 - i] = code
    return a, b


def _one_per_kind(fmt: Any) -> list[int]:
    """The first NaN, +Inf and -Inf code of `fmt` (those it has)."""
    codes = sim.special_codes(fmt)
    kinds = [str(value) for value in fmt.decode(codes)]  # 'nan', 'inf', '-inf'
    return [int(code) for i, code in enumerate(codes) if kinds[i] not in kinds[:i]]


def cmd_cosim_systolic(args: argparse.Namespace, console: Console) -> int:
    m, k, n = args.gemm
    hw.check_gemm(array_config(args), m, k, n)  # a refused GEMM writes nothing
    cache = paths.cache_directory(args.cache_dir)
    out = paths.output_directory(args.output)
    array = build_array(args)
    a, b = random_operands(array.config, m, k, n, np.random.default_rng(args.seed))
    with args.reporter.stage(f"GEMM {m}x{k}x{n} on the {array.config.describe()} in Verilator"):
        report = sim.cosim_gemm(array, a, b, cache / "verilator", out / "run", waves=args.waves, optimize=args.optimize)
    waves = sorted((out / "run").glob("*.vcd")) if args.waves else []
    summary = {
        "design": report.design,
        "accumulator": numerics.accumulator_name(array.config.accumulator),
        **_float_order(array.config),
        "gemm": list(report.shape),
        "passed": report.passed,
        "mismatches": report.mismatches,
        "first_mismatch": report.first_mismatch,
        "cycles_measured": report.cycles,
        "cycles_model": report.model_cycles,
        "utilization": round(report.utilization, 4),
        "macs": report.macs,
        "simulation_seconds": round(report.seconds, 2),
        "waveform": str(waves[0]) if waves else None,
    }
    output.write_json(out / "report.json", summary, args.provenance)
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0 if report.passed else 1
    verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
    console.print(f"{verdict} {report.design}, GEMM {m}x{k}x{n}: {report.macs} MACs, {report.mismatches} mismatches "
                  "against numerics.matmul")  # fmt: skip
    console.print(f"cycles: measured {report.cycles}, model {report.model_cycles}; "
                  f"utilization {report.utilization:.1%}; simulation {report.seconds:.1f} s")  # fmt: skip
    if report.first_mismatch:
        console.print(f"first mismatch: {report.first_mismatch}")
    if waves:
        console.print(f"waveform: {waves[0]}")
    console.print(f"wrote {out / 'report.json'}")
    return 0 if report.passed else 1


def add_array_commands(generate: argparse._SubParsersAction, cosim: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def options(p: argparse.ArgumentParser) -> None:
        add_array_options(p, rows_required=True)
        add_format_options(p, required=True)
        add_accumulator_options(p, "largest K (sets the exact accumulator width)")
        p.set_defaults(acc=None)  # no --acc: fp32 for MX operands (OCP's datapath), exact for the others
        p.add_argument("--dsp-budget", type=nonnegative_int, default=None, metavar="N",
                       help="PEs beyond N use LUT multipliers (default: none, every PE may use a DSP)")  # fmt: skip
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = generate.add_parser("systolic", help="an R x C systolic array with its GEMM controller")
    options(p)
    add_testbench_option(p, "a random GEMM (--gemm, --seed) checked against numerics.matmul and the cycle model")
    p.add_argument("--gemm", type=gemm, default=None, metavar="MxKxN",
                   help="the testbench's GEMM (default: 2R+1 x 2R+1 x 2C+1, for MX K = block + R + 1; "
                        "within k_max and m_max)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the testbench's random operands")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="where systolic_array.v and .json go")
    p.set_defaults(run=cmd_generate_systolic)

    p = cosim.add_parser("systolic", help="a random GEMM on a systolic array, checked bit for bit")
    options(p)
    p.add_argument("--gemm", required=True, type=gemm, metavar="MxKxN", help="GEMM shape, e.g. 64x128x32")
    p.add_argument("--seed", type=int, default=0, help="seed of the random operands")
    p.add_argument("--optimize", action="store_true", help="optimized C++ build (for long GEMMs)")
    p.add_argument("--waves", action="store_true", help="dump a VCD waveform (its path is printed)")
    p.add_argument("-o", "--output", default="cosim_out", metavar="OUTDIR", help="the run's logs and report.json")
    add_cache_option(p)
    p.set_defaults(run=cmd_cosim_systolic)


def cmd_generate_bitserial(args: argparse.Namespace, console: Console) -> int:
    out = paths.output_directory(args.output)
    unit = hw.BitSerialArray(args.a, lanes=args.lanes, cols=args.cols, group=args.group)
    cfg = unit.config
    info = {
        "module": "bitserial_unit",
        "a_format": cfg.a_format.name,
        "lanes": cfg.lanes,
        "cols": cfg.cols,
        "group": cfg.group,
        "acc_width": cfg.acc_width,
        "weights": "int2..int8 (Booth radix-4, 2 bit-planes per cycle), fp4_e2m1, bitmod4, bitmod3 (and _exact)",
        "cycle_formula": "ceil(N/cols)*M*ceil(K/group)*max(group/lanes*T, 11) - padding + 12; "
        "T = ceil(bits/2) for INT, 1 for FP4/FP3 grids, 2 for BitMoD grids with +-5",
        "ports": ports(unit),
    }
    summary = (f"bit-serial unit: {cfg.cols} PEs x {cfg.lanes} lanes, {cfg.a_format.name} activations, "
               f"groups of {cfg.group}, {cfg.acc_width}-bit accumulators")  # fmt: skip
    return write_design(unit, args, out, "bitserial_unit", info, console, summary)


def add_bitserial_commands(generate: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = generate.add_parser("bitserial", help="a BitMoD-style bit-serial GEMM unit (weights one term per cycle)")
    p.add_argument("--a", default="int8", help="activation format (a signed integer)")
    p.add_argument("--lanes", type=positive_int, default=8, help="activations consumed in parallel per PE")
    p.add_argument("--cols", type=positive_int, default=4, help="PEs, one per output column")
    p.add_argument("--group", type=positive_int, default=128, help="weights per scale group along K")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="where bitserial_unit.v and .json go")
    p.set_defaults(run=cmd_generate_bitserial)
