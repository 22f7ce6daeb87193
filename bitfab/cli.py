"""The `bitfab` command line: one subcommand per job, human tables by default, --json for scripts."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import numerics
import sim
import synth
from bitfab import output, paths, provenance
from bitfab.errors import error_stats, quantize_tensor
from bitfab.options import Parser, add_cache_option
from bitfab.plots import error_histogram
from bitfab.progress import Reporter, reporting

DEFAULT_COMPARE = (
    "ternary,int4,fp4_e2m1,mxfp4,nvfp4,ovp4,bitmod4,fp6_e2m3,mxfp6_e2m3,int8,fp8_e4m3,mxfp8_e4m3,mxint8,posit8_2,bf16"
)


def _number(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return str(v)
    return f"{v:.6g}"


def format_rows() -> list[dict[str, Any]]:
    rows = []
    for name in numerics.formats():
        fmt = numerics.get(name)
        kind = "composite" if isinstance(fmt, numerics.CompositeFormat) else "element"
        rows.append({"kind": kind, **fmt.spec()})
    return rows


def _composite_table(rows: list[dict[str, Any]]) -> Table:
    columns = ["name", "bits", "element", "block_size", "scale", "scale_rule"]
    table = output.table("bitfab composite formats (bits per element include the side information)",
                         [c.replace("_", " ") for c in columns], text_columns=1)  # fmt: skip
    for r in rows:
        if r["kind"] == "composite":
            table.add_row(*[f"{r[c]:g}" if c == "bits" else str(r.get(c, "-")) for c in columns])
    return table


def _formats_table(all_rows: list[dict[str, Any]]) -> Table:
    table = output.table("bitfab element formats", ["name", "bits", "max", "min normal", "min subnormal", "Inf", "NaN"])
    for r in all_rows:
        if r["kind"] != "element":
            continue
        table.add_row(r["name"], str(r["bits"]), _number(r["max"]), _number(r["min_normal"]),
                      _number(r["min_subnormal"]), "yes" if r["inf"] else "-", "yes" if r["nan"] else "-")  # fmt: skip
    return table


def _stats_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = output.table(title, ["format", "bits", "MSE", "SQNR dB", "max abs error"])
    for r in rows:
        table.add_row(
            r["format"], f"{r['bits']:.4g}", f"{r['mse']:.4g}", f"{r['sqnr_db']:.2f}", f"{r['max_abs_error']:.4g}"
        )
    return table


def load_array(path: str | Path) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"input file {str(path)!r} does not exist")
    try:
        x = np.load(file, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{str(path)!r} is not a .npy array file ({exc})") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        kind = getattr(x, "dtype", type(x).__name__)
        raise ValueError(f"{str(path)!r} holds {kind}; expected a real numeric array (float or int)")
    return x


def _parse_formats(text: str) -> list[numerics.ElementFormat | numerics.CompositeFormat]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError("--formats needs at least one format name")
    return [numerics.get(n) for n in names]


def cmd_formats(args: argparse.Namespace, console: Console) -> int:
    rows = format_rows()
    if args.json:
        print(json.dumps(rows, indent=2))
    else:
        console.print(_formats_table(rows))
        console.print(_composite_table(rows))
        console.print("Patterns also resolve: int{b}, uint{b}, posit{n}_{es}, fp{n}_e{x}m{y}[fn|fnuz|_finite]")
    return 0


def cmd_quantize(args: argparse.Namespace, console: Console) -> int:
    x = load_array(args.input)
    fmt = numerics.get(args.format)
    out = paths.output_file(args.output, "-o")
    q = quantize_tensor(x, fmt, args.scaling)
    stats = error_stats(x.astype(np.float64), q)
    written = out if out.suffix == ".npz" else out.with_name(out.name + ".npz")  # np.savez adds the suffix
    with paths.atomic(written) as temporary:
        np.savez(temporary, **q.arrays, values=q.values, format=np.array(fmt.name))
    if args.json:
        print(json.dumps({**stats.as_dict(), "output": str(written)}, indent=2))
    else:
        console.print(_stats_table([stats.as_dict()], f"{args.input} -> {fmt.name}"))
        console.print(f"wrote {written} ({', '.join([*q.arrays, 'values', 'format'])})")
    return 0


def compare(
    x: np.ndarray, fmts: Sequence[numerics.ElementFormat | numerics.CompositeFormat], scaling: str = "auto"
) -> list[dict[str, Any]]:
    x64 = x.astype(np.float64)
    rows = []
    for fmt in fmts:
        q = quantize_tensor(x, fmt, scaling)
        rows.append({**error_stats(x64, q).as_dict(), "errors": q.values - x64})
    return rows


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    png = paths.output_file(args.png, "--png") if args.png else None
    x = load_array(args.input)
    rows = compare(x, _parse_formats(args.formats), args.scaling)
    if png is not None:
        error_histogram(rows, png, f"quantization error of {args.input.name} ({x.size:,} values), per format")
    public = [{k: v for k, v in r.items() if k != "errors"} for r in rows]
    if args.json:
        print(json.dumps(public, indent=2))
    else:
        console.print(_stats_table(public, f"quantization error of {args.input} ({x.size} values)"))
        if png is not None:
            console.print(f"wrote {png}")
    return 0


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    import models
    from bitfab.demo import run_demo

    models.scheme(args.format)  # an unknown format fails before anything is written
    cache = paths.cache_directory(args.cache_dir)
    out = paths.output_directory(args.output)
    return run_demo(out, console, args.reporter, cache, args.provenance, as_json=args.json, fmt=args.format,
                    quick=args.quick)  # fmt: skip


EXIT_TOOL, EXIT_USER, EXIT_BROKEN_PIPE, EXIT_INTERRUPTED = 1, 2, 141, 130
# Bad input (values, impossible configurations, unusable paths): exit 2, one line.
USER_ERRORS = (ValueError, TypeError)
# A tool that ran and failed (Verilator, a simulation, yosys, nextpnr) or is missing: exit 1 with its log.
TOOL_ERRORS = (sim.SimulationError, sim.ToolMissing, synth.SynthError)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="bitfab", description="Co-design low-precision arithmetic and FPGA hardware.",
                    epilog="Exit status: 0 success; 1 a check failed (FAIL) or a tool failed (its log is named); "
                           "2 a bad argument or configuration; 130 interrupted. Add --debug (or set BITFAB_DEBUG=1) "
                           "for Python tracebacks.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"bitfab {provenance.version()}")
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks (or set BITFAB_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("formats", help="list every registered number format")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_formats)

    scaling_help = (
        "element formats' per-tensor scaling: auto (absmax for int/minifloat, absmean for ternary, none for posits), "
        "absmax, none; composite formats bring their own scales along the last axis"
    )
    p = sub.add_parser("quantize", help="quantize a .npy tensor to one format and report the error")
    p.add_argument("input", metavar="IN.npy", help="a .npy array of real numbers")
    p.add_argument("--format", required=True, help="format name (see `bitfab formats`)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz", help="the codes, scales and values")
    p.add_argument("--scaling", default="auto", choices=["auto", "absmax", "none"], help=scaling_help)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_quantize)

    p = sub.add_parser("compare", help="quantization error of one tensor in several formats, side by side")
    p.add_argument("input", metavar="IN.npy", help="a .npy array of real numbers")
    p.add_argument("--formats", default=DEFAULT_COMPARE, help="comma-separated format names")
    p.add_argument("--scaling", default="auto", choices=["auto", "absmax", "none"], help=scaling_help)
    p.add_argument("--png", metavar="FILE.png", help="write histograms of the errors (one panel per format)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_compare)

    from bitfab.byom_cli import add_layers_command
    from bitfab.cost_cli import add_cost_commands
    from bitfab.explore import add_explore_command
    from bitfab.hardware import add_commands
    from bitfab.training import add_train_command

    add_commands(sub)
    add_layers_command(sub)
    add_train_command(sub)
    add_explore_command(sub)
    add_cost_commands(sub)

    p = sub.add_parser("demo", help="the main job: train, generate, co-simulate, synthesize, compare formats")
    p.add_argument("-o", "--output", default="demo_out", metavar="OUTDIR", help="output directory")
    p.add_argument("--format", default="int8", help="the MLP's format")
    p.add_argument("--quick", action="store_true", help="a 4x4 array, 64 images, no place and route (for CI)")
    add_cache_option(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.set_defaults(run=cmd_demo)
    return parser


# Arguments that name files or directories: made absolute once, here, against the directory the
# user started in, so nothing downstream depends on the working directory.
PATH_ARGUMENTS = ("input", "output", "png", "cache_dir", "model_file", "inputs", "labels", "calibration")


def main(argv: Sequence[str] | None = None) -> int:
    """The whole CLI: parse, run, and turn every failure into one exit status and a message."""
    words = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in words or os.environ.get("BITFAB_DEBUG", "") not in ("", "0")
    words = [w for w in words if w != "--debug"]
    reporter = Reporter()
    args: argparse.Namespace | None = None
    try:
        with reporting(reporter):
            args = build_parser().parse_args(words)
            for name in PATH_ARGUMENTS:
                if isinstance(getattr(args, name, None), str):
                    setattr(args, name, paths.absolute(getattr(args, name)))
            args.reporter, args.provenance = reporter, provenance.provenance(words)
            code = int(args.run(args, output.console()))
            sys.stdout.flush()  # a closed pipe shows up here, inside the handlers below
            return code
    except KeyboardInterrupt:
        _say(_interrupted(reporter, args))
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # `bitfab formats --json | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except TOOL_ERRORS as error:
        _say(f"bitfab: error: {error}", debug)
        return EXIT_TOOL
    except USER_ERRORS as error:
        _say(f"bitfab: error: {error}", debug)
        return EXIT_USER
    except OSError as error:
        _say(f"bitfab: error: {error.strerror or error}" + (f": {error.filename}" if error.filename else ""), debug)
        return EXIT_TOOL
    except Exception as error:
        hint = "" if debug else " (rerun with --debug for the traceback)"
        _say(f"bitfab: internal error: {type(error).__name__}: {error}{hint}", debug)
        return EXIT_TOOL


def _say(message: str, debug: bool = False) -> None:
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(message, file=sys.stderr, flush=True)


def _interrupted(reporter: Reporter, args: argparse.Namespace | None) -> str:
    stage = reporter.interrupted or reporter.current
    during = f" during {stage}" if stage else ""
    out = getattr(args, "output", None)
    where = f"; partial results (each file whole) are in {out}" if isinstance(out, Path) and out.exists() else ""
    return f"bitfab: interrupted{during}{where}"
