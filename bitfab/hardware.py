"""`bitfab generate pe` and `bitfab cosim pe`: MAC PEs to Verilog, and their co-simulation."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from amaranth import Shape
from amaranth.lib import wiring
from rich.console import Console

import hw
import numerics
import sim


def parse_accumulator(text: str) -> numerics.ExactAccumulator | numerics.FixedAccumulator:
    """exact | int{W} (wrapping) | int{W}_sat (saturating) at the exact product lsb."""
    if text == "exact":
        return numerics.ExactAccumulator()
    if m := re.fullmatch(r"int(\d+)(_sat)?", text):
        return numerics.FixedAccumulator(int(m[1]), overflow="saturate" if m[2] else "wrap")
    raise ValueError(f"--acc must be exact, int{{W}} or int{{W}}_sat (e.g. int32), got {text!r}")


def build_pe(args: argparse.Namespace) -> hw.MacPE:
    return hw.MacPE(args.a, args.b, parse_accumulator(args.acc), k_terms=args.k, pipeline=args.pipeline)


def ports(component: wiring.Component) -> list[dict[str, Any]]:
    """Every Verilog port of the component (streams flattened as name__payload/valid/ready)."""
    out = []
    for path, member in component.signature.members.flatten():
        if member.is_port:
            shape = Shape.cast(member.shape)
            out.append({"name": "__".join(str(p) for p in path), "direction": member.flow.name.lower(),
                        "width": shape.width, "signed": shape.signed})  # fmt: skip
    return out + [{"name": n, "direction": "in", "width": 1, "signed": False} for n in ("clk", "rst")]


def write_design(component: wiring.Component, out: Path, module: str, info: dict[str, Any], as_json: bool,
                 console: Console, summary: str) -> int:  # fmt: skip
    """Verilog and its JSON manifest into `out`; the manifest (JSON) or a summary line printed."""
    verilog = hw.emit(component, out / f"{module}.v", name=module)
    (out / f"{module}.json").write_text(json.dumps(info, indent=2))
    if as_json:
        print(json.dumps({**info, "verilog": str(verilog)}, indent=2))
    else:
        console.print(summary)
        console.print(f"wrote {verilog} and {out / (module + '.json')}")
    return 0


def manifest(pe: hw.MacPE, module: str) -> dict[str, Any]:
    return {
        "module": module,
        "a_format": pe.a_format.name,
        "b_format": pe.b_format.name,
        "accumulator": repr(pe.accumulator),
        "acc_width": pe.acc_width,
        "acc_lsb_exponent": pe.lsb_exponent,
        "k_terms": pe.k_terms,
        "pipeline": pe.pipeline,
        "latency_cycles": pe.latency,
        "ports": ports(pe),
    }


def cmd_generate_pe(args: argparse.Namespace, console: Console) -> int:
    pe = build_pe(args)
    info = manifest(pe, "mac_pe")
    summary = (f"{info['a_format']} x {info['b_format']} MAC PE: {info['acc_width']}-bit accumulator "
               f"(lsb 2**{info['acc_lsb_exponent']}), latency {info['latency_cycles']} cycles")  # fmt: skip
    return write_design(pe, Path(args.output), "mac_pe", info, args.json, console, summary)


def cmd_cosim_pe(args: argparse.Namespace, console: Console) -> int:
    pe = build_pe(args)
    out = Path(args.output)
    a, b = sim.operand_pairs(pe, exhaustive=args.exhaustive, random_pairs=args.random, seed=args.seed)
    start = time.perf_counter()
    report = sim.check_mac(pe, a, b, out / "sim_build", out / "run", waves=args.waves)
    seconds = time.perf_counter() - start
    summary = {"pair": report.format_pair, "passed": report.passed, "checked_macs": report.checked,
               "cycles": report.cycles, "mismatches": report.mismatches, "first_mismatch": report.first_mismatch,
               "seconds": round(seconds, 2)}  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
        console.print(f"{verdict} {report.format_pair}: {report.checked} MACs over {report.cycles} cycles checked "
                      f"against numerics, {report.mismatches} mismatches ({seconds:.1f} s incl. build)")  # fmt: skip
        if report.first_mismatch:
            console.print(f"first mismatch: {report.first_mismatch}")
        if args.waves:
            console.print(f"waveform: {out / 'run'}")
    return 0 if report.passed else 1


def add_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    def pe_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--a", required=True, help="format of operand a (element format, e.g. fp8_e4m3)")
        p.add_argument("--b", required=True, help="format of operand b")
        p.add_argument("--acc", default="exact", help="exact (default), int{W} (wrap) or int{W}_sat")
        p.add_argument("--k", type=int, default=1024, help="terms per dot product the exact accumulator holds")
        p.add_argument("--pipeline", type=int, default=1, choices=[0, 1, 2], help="pipeline stages before the add")
        p.add_argument("--json", action="store_true")

    generate = sub.add_parser("generate", help="generate hardware (Verilog + JSON manifest)")
    gen_sub = generate.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = gen_sub.add_parser("pe", help="a MAC processing element for a format pair")
    pe_options(p)
    p.add_argument("-o", "--output", required=True, metavar="OUTDIR")
    p.set_defaults(run=cmd_generate_pe)

    cosim = sub.add_parser("cosim", help="co-simulate generated hardware in Verilator against numerics")
    cosim_sub = cosim.add_subparsers(dest="what", required=True, metavar="WHAT")
    p = cosim_sub.add_parser("pe", help="a MAC PE over every operand pair or random ones")
    pe_options(p)
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--exhaustive", action="store_true", help="every (a, b) code pair")
    mode.add_argument("--random", type=int, default=4096, metavar="N", help="N random pairs (default 4096)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--waves", action="store_true", help="dump a VCD waveform")
    p.add_argument("-o", "--output", default="cosim_out", metavar="OUTDIR", help="build and run directory")
    p.set_defaults(run=cmd_cosim_pe)

    from .arrays import add_array_commands, add_bitserial_commands

    add_array_commands(gen_sub, cosim_sub)
    add_bitserial_commands(gen_sub)

    from .model_cosim import add_model_command

    add_model_command(cosim_sub)
