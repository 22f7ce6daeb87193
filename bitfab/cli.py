"""The `bitfab` command line: one subcommand per job, human tables by default, --json for scripts."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import numerics
import sim
import synth
from bitfab.errors import error_stats, quantize_tensor

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
    table = Table(title="bitfab composite formats (bits per element include the side information)")
    columns = ["name", "bits", "element", "block_size", "scale", "scale_rule"]
    for column in columns:
        table.add_column(column.replace("_", " "), justify="left" if column == "name" else "right")
    for r in rows:
        if r["kind"] == "composite":
            table.add_row(*[f"{r[c]:g}" if c == "bits" else str(r.get(c, "-")) for c in columns])
    return table


def _formats_table(all_rows: list[dict[str, Any]]) -> Table:
    rows = [r for r in all_rows if r["kind"] == "element"]
    table = Table(title="bitfab element formats")
    for column in ("name", "bits", "max", "min normal", "min subnormal", "Inf", "NaN"):
        table.add_column(column, justify="left" if column == "name" else "right")
    for r in rows:
        table.add_row(
            r["name"],
            str(r["bits"]),
            _number(r["max"]),
            _number(r["min_normal"]),
            _number(r["min_subnormal"]),
            "yes" if r["inf"] else "-",
            "yes" if r["nan"] else "-",
        )
    return table


def _stats_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title)
    for column in ("format", "bits", "MSE", "SQNR dB", "max abs error"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for r in rows:
        table.add_row(
            r["format"], f"{r['bits']:.4g}", f"{r['mse']:.4g}", f"{r['sqnr_db']:.2f}", f"{r['max_abs_error']:.4g}"
        )
    return table


def load_array(path: str) -> np.ndarray:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"input file {path!r} does not exist")
    try:
        x = np.load(file, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{path!r} is not a .npy array file ({exc})") from None
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        kind = getattr(x, "dtype", type(x).__name__)
        raise ValueError(f"{path!r} holds {kind}; expected a real numeric array (float or int)")
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
    q = quantize_tensor(x, fmt, args.scaling)
    stats = error_stats(x.astype(np.float64), q)
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(out, **q.arrays, values=q.values, format=np.array(fmt.name))
    if args.json:
        print(json.dumps({**stats.as_dict(), "output": str(out)}, indent=2))
    else:
        console.print(_stats_table([stats.as_dict()], f"{args.input} -> {fmt.name}"))
        console.print(f"wrote {out} ({', '.join([*q.arrays, 'values', 'format'])})")
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


def error_histogram(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    spread = max(float(np.max(np.abs(r["errors"]))) for r in rows) or 1.0
    bins = np.linspace(-spread, spread, 121)
    for r in rows:
        ax.hist(r["errors"].reshape(-1), bins=bins, histtype="step", label=f"{r['format']} ({r['sqnr_db']:.1f} dB)")
    ax.set_yscale("log")
    ax.set_xlabel("quantization error")
    ax.set_ylabel("count")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def cmd_compare(args: argparse.Namespace, console: Console) -> int:
    x = load_array(args.input)
    rows = compare(x, _parse_formats(args.formats), args.scaling)
    if args.png:
        error_histogram(rows, Path(args.png))
    public = [{k: v for k, v in r.items() if k != "errors"} for r in rows]
    if args.json:
        print(json.dumps(public, indent=2))
    else:
        console.print(_stats_table(public, f"quantization error of {args.input} ({x.size} values)"))
        if args.png:
            console.print(f"wrote {args.png}")
    return 0


def cmd_demo(args: argparse.Namespace, console: Console) -> int:
    from bitfab.demo import run_demo

    return run_demo(Path(args.output), console, as_json=args.json, fmt=args.format, quick=args.quick)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bitfab", description="Co-design low-precision arithmetic and FPGA hardware.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("formats", help="list every registered number format")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_formats)

    scaling_help = (
        "element formats' per-tensor scaling: auto (absmax for int/minifloat, absmean for ternary, none for posits), "
        "absmax, none; composite formats bring their own scales along the last axis"
    )
    p = sub.add_parser("quantize", help="quantize a .npy tensor to one format and report the error")
    p.add_argument("input", metavar="IN.npy")
    p.add_argument("--format", required=True, help="format name (see `bitfab formats`)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.npz")
    p.add_argument("--scaling", default="auto", choices=["auto", "absmax", "none"], help=scaling_help)
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_quantize)

    p = sub.add_parser("compare", help="quantization error of one tensor in several formats, side by side")
    p.add_argument("input", metavar="IN.npy")
    p.add_argument("--formats", default=DEFAULT_COMPARE, help=f"comma-separated names (default {DEFAULT_COMPARE})")
    p.add_argument("--scaling", default="auto", choices=["auto", "absmax", "none"], help=scaling_help)
    p.add_argument("--png", help="write a histogram of the errors to this PNG")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_compare)

    from bitfab.cost_cli import add_cost_commands
    from bitfab.explore import add_explore_command
    from bitfab.hardware import add_commands
    from bitfab.training import add_train_command

    add_commands(sub)
    add_train_command(sub)
    add_explore_command(sub)
    add_cost_commands(sub)

    p = sub.add_parser("demo", help="the main job: train, generate, co-simulate, synthesize, compare formats")
    p.add_argument("-o", "--output", default="demo_out", help="output directory (default demo_out)")
    p.add_argument("--format", default="int8", help="the MLP's format (default int8)")
    p.add_argument("--quick", action="store_true", help="a 4x4 array, 64 images, no place and route (for CI)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    console = Console()
    try:
        return int(args.run(args, console))
    except (ValueError, TypeError, sim.ToolMissing, synth.SynthError) as exc:
        print(f"bitfab: error: {exc}", file=sys.stderr)
        return 2
