"""`bitfab generate pe` and `bitfab cosim pe`: MAC PEs to Verilog, and their co-simulation."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from amaranth import Shape
from amaranth.lib import wiring
from rich.console import Console

import hw
import numerics
import sim

from . import output, paths
from .contract import pe_contract
from .options import add_accumulator_options, add_cache_option, add_format_options, positive_int

MAX_EXHAUSTIVE_PAIRS = 1 << 20  # 1,048,576 pairs: a few minutes of simulation; 10 x 10-bit operands


def build_pe(args: argparse.Namespace) -> hw.MacPE:
    return hw.MacPE(args.a, args.b, numerics.parse_accumulator(args.acc), k_terms=args.k_max, pipeline=args.pipeline)


def ports(component: wiring.Component) -> list[dict[str, Any]]:
    """Every Verilog port of the component (streams flattened as name__payload/valid/ready)."""
    out = []
    for path, member in component.signature.members.flatten():
        if member.is_port:
            shape = Shape.cast(member.shape)
            out.append({"name": "__".join(str(p) for p in path), "direction": member.flow.name.lower(),
                        "width": shape.width, "signed": shape.signed})  # fmt: skip
    return out + [{"name": n, "direction": "in", "width": 1, "signed": False} for n in ("clk", "rst")]


def write_design(component: wiring.Component, args: argparse.Namespace, out: Path, module: str,
                 info: dict[str, Any], console: Console, summary: str,
                 testbench: sim.Testbench | None = None) -> int:  # fmt: skip
    """Verilog and its JSON manifest (with provenance) into `out` (-o, checked before the design
    was built), each written whole, with the testbench's files if there is one; the manifest (JSON)
    or a summary printed."""
    if testbench is not None:
        info = {**info, "testbench": {**info.get("testbench", {}), **testbench_manifest(testbench)}}
    verilog = paths.write_text(out / f"{module}.v", hw.to_verilog(component, module))
    files = testbench.write(out, paths.atomic) if testbench is not None else []
    output.write_json(out / f"{module}.json", info, args.provenance)
    if args.json:
        print(json.dumps({**info, "verilog": str(verilog)}, indent=2))
        return 0
    console.print(summary)
    console.print(f"wrote {verilog} and {out / (module + '.json')}")
    if testbench is not None:
        checks = f"{testbench.checks} {testbench.checks_unit} to check"
        console.print(f"wrote the testbench {files[0]} and its $readmemh files ({checks}); run it in {out}:",
                      markup=False, highlight=False)  # fmt: skip
        console.print(f"  {testbench.commands()['verilator']}", markup=False, highlight=False)
    return 0


def testbench_manifest(testbench: sim.Testbench) -> dict[str, Any]:
    """What the manifest says about a testbench: its files, how to run it, what it prints."""
    return {
        "top": testbench.top,
        "files": testbench.files,
        f"{testbench.checks_unit}_checked": testbench.checks,
        "cycles_model": testbench.model_cycles,
        "run": testbench.commands(),
        "plusargs": testbench.plusargs,
        "prints": "PASS: <n> ... checked, or FAIL: <the first mismatch> then FAIL: <the mismatch count>; ends with "
        "$finish, or $fatal (exit status 1 in Verilator and Icarus) on failure",
    }


def add_testbench_option(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--testbench", action="store_true",
                   help=f"also write a self-checking Verilog testbench with its $readmemh files: {what}")  # fmt: skip


def manifest(pe: hw.MacPE, module: str) -> dict[str, Any]:
    return {
        "module": module,
        "a_format": pe.a_format.name,
        "b_format": pe.b_format.name,
        "accumulator": numerics.accumulator_name(pe.accumulator),
        "acc_width": pe.acc_width,
        "acc_lsb_exponent": None if pe.is_float else pe.lsb_exponent,  # float: acc is a format code
        "k_terms": pe.k_terms,
        "pipeline": pe.pipeline,
        "latency_cycles": pe.latency,
        "ports": ports(pe),
        "contract": pe_contract(pe),
    }


def cmd_generate_pe(args: argparse.Namespace, console: Console) -> int:
    out = paths.output_directory(args.output)
    pe = build_pe(args)
    info = manifest(pe, "mac_pe")
    register = f"{info['acc_width']}-bit accumulator (lsb 2**{info['acc_lsb_exponent']})"
    if pe.is_float:
        register = f"{info['accumulator']} float accumulator ({info['acc_width']}-bit codes, order sequential)"
    summary = f"{info['a_format']} x {info['b_format']} MAC PE: {register}, latency {info['latency_cycles']} cycles"
    testbench = None
    if args.testbench:
        stream = sim.operand_stream(pe, exhaustive=False, random_pairs=args.random, seed=args.seed)
        testbench = sim.mac_testbench(pe, stream, "mac_pe", f", seed {args.seed}")
        info["testbench"] = {"random_pairs": args.random, "seed": args.seed}
    return write_design(pe, args, out, "mac_pe", info, console, summary, testbench)


def _check_pair_count(args: argparse.Namespace) -> None:
    """Refuse, before building anything, an exhaustive run that would not finish (int16 x int16: 2**32 pairs)."""
    a, b = numerics.get(args.a), numerics.get(args.b)
    if args.exhaustive and (pairs := 1 << (int(a.bits) + int(b.bits))) > MAX_EXHAUSTIVE_PAIRS:
        raise ValueError(f"--exhaustive on {a.name} x {b.name} is {pairs:,} operand pairs; at most "
                         f"{MAX_EXHAUSTIVE_PAIRS:,} run exhaustively: use --random N instead")  # fmt: skip


def cmd_cosim_pe(args: argparse.Namespace, console: Console) -> int:
    _check_pair_count(args)
    cache = paths.cache_directory(args.cache_dir)
    out = paths.output_directory(args.output)
    pe = build_pe(args)
    stream = sim.operand_stream(pe, exhaustive=args.exhaustive, random_pairs=args.random, seed=args.seed)
    start = time.perf_counter()
    pair = f"{pe.a_format.name} x {pe.b_format.name}"
    with args.reporter.stage(f"co-simulating {pair} ({stream.macs:,} MACs, {len(stream):,} cycles) in Verilator"):
        report = sim.check_mac(pe, stream, cache / "verilator", out / "run", waves=args.waves)
    seconds = time.perf_counter() - start
    waves = sorted((out / "run").glob("*.vcd")) if args.waves else []
    pairs = (1 << (pe.a_format.bits + pe.b_format.bits)) if args.exhaustive else args.random
    summary = {"pair": report.format_pair, "passed": report.passed, "operand_pairs": pairs,
               "exhaustive": bool(args.exhaustive), "checked_macs": report.macs, "checked_cycles": report.checked,
               "cycles_simulated": report.cycles, "mismatches": report.mismatches,
               "first_mismatch": report.first_mismatch, "accumulator": numerics.accumulator_name(pe.accumulator),
               "acc_width": pe.acc_width, "k_terms": pe.k_terms, "pipeline": pe.pipeline,
               "seconds": round(seconds, 2), "waveform": str(waves[0]) if waves else None}  # fmt: skip
    output.write_json(out / "report.json", summary, args.provenance)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
        which = "every one of" if args.exhaustive else "random"
        console.print(f"{verdict} {report.format_pair}: {which} {pairs:,} operand pairs, then NaN/Inf codes at segment "
                      f"starts, middles and ends and k_terms={pe.k_terms} extreme products: {report.macs:,} MACs over "
                      f"{report.checked:,} cycles checked against numerics, {report.mismatches} mismatches "
                      f"({seconds:.1f} s incl. build; {summary['accumulator']} accumulator, {pe.acc_width} bits, "
                      f"pipeline {pe.pipeline})")  # fmt: skip
        if report.first_mismatch:
            console.print(f"first mismatch: {report.first_mismatch}")
        if args.waves:
            console.print(f"waveform: {waves[0] if waves else 'none written (see ' + str(out / 'run') + ')'}")
        console.print(f"wrote {out / 'report.json'}")
    return 0 if report.passed else 1


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def pe_options(p: argparse.ArgumentParser) -> None:
        add_format_options(p, required=True)
        add_accumulator_options(p, "terms per dot product the accumulator is sized for")
        p.add_argument("--json", action="store_true", help="machine-readable output")

    generate = sub.add_parser("generate", help="generate hardware (Verilog + JSON manifest)")
    gen_sub = generate.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = gen_sub.add_parser("pe", help="a MAC processing element for a format pair")
    pe_options(p)
    add_testbench_option(p, "random pairs (--random, --seed) with NaN/Inf at segment starts, middles and ends, "
                            "idle cycles, random clears and the extreme products, checked every cycle")  # fmt: skip
    p.add_argument("--random", type=positive_int, default=1024, metavar="N", help="the testbench's random pairs")
    p.add_argument("--seed", type=int, default=0, help="seed of the testbench's pairs, idle cycles and clears")
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR", help="where mac_pe.v and mac_pe.json go")
    p.set_defaults(run=cmd_generate_pe)

    cosim = sub.add_parser("cosim", help="co-simulate generated hardware in Verilator against numerics")
    cosim_sub = cosim.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = cosim_sub.add_parser("pe", help="a MAC PE over every operand pair or random ones")
    pe_options(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--exhaustive", action="store_true", help="every (a, b) code pair, in a seeded shuffled order")
    mode.add_argument("--random", type=positive_int, default=4096, metavar="N",
                      help="N random pairs (then NaN/Inf codes around segments, the extreme products)")  # fmt: skip
    p.add_argument("--seed", type=int, default=0, help="seed of the pairs, their order, the idle cycles and clears")
    p.add_argument("--waves", action="store_true", help="dump a VCD waveform (its path is printed)")
    p.add_argument("-o", "--output", default="cosim_out", metavar="OUTDIR", help="the run's logs and report.json")
    add_cache_option(p)
    p.set_defaults(run=cmd_cosim_pe)

    from .arrays import add_array_commands, add_bitserial_commands

    add_array_commands(gen_sub, cosim_sub)
    add_bitserial_commands(gen_sub)

    from .model_cosim import add_model_command
    from .network_cli import add_network_command

    add_model_command(cosim_sub)
    add_network_command(cosim_sub)
