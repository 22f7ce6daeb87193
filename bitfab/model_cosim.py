"""`bitfab cosim model`: one layer of a trained quantized model on a generated systolic array (or
the bit-serial unit, for weight-only formats), with the real test-set activations: bit-exact
against numerics, the deviation from Brevitas, and the model's accuracy with the hardware's
output in the loop."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

import models

from . import output, paths
from .byom_cli import cmd_cosim_user_model
from .endtoend import check_mapping, parse_hardware, run_layer
from .options import accumulator, add_cache_option, positive_int


def _layer_name(model: object, layer: str) -> str:
    names = models.bundled_layers(model)  # type: ignore[arg-type]
    if layer.isdigit():
        if int(layer) >= len(names):
            raise ValueError(f"--layer must be between 0 and {len(names) - 1} or one of {', '.join(names)}, "
                             f"got {layer}")  # fmt: skip
        return names[int(layer)]
    if layer not in names:
        raise ValueError(f"--layer {layer!r} is not a quantized layer; available: {', '.join(names)}")
    return layer


def cmd_cosim_model(args: argparse.Namespace, console: Console) -> int:
    fmt = args.format
    hardware = parse_hardware(args.array, args.dataflow, args.bitserial, args.acc)
    if args.model not in models.MODELS:
        return cmd_cosim_user_model(args, console, hardware)
    if hardware.accumulator_name != "exact":
        raise ValueError(f"--acc {args.acc}: the bundled {args.model} runs with an exact accumulator; a narrow one "
                         "runs with the bring-your-own-model checks, e.g. --model a2q16 (Brevitas A2Q weights for a "
                         "16-bit accumulator) or your own model file")  # fmt: skip
    if fmt is None:
        raise ValueError(f"a bundled model needs --format (one of {', '.join(sorted(models.SCHEMES))})")
    if args.inputs is not None or args.labels is not None:
        raise ValueError("a bundled model runs on the digits test images (--images N); --inputs and --labels are "
                         "for a user's model")  # fmt: skip
    models.scheme(fmt)  # an unknown format fails before training
    check_mapping(fmt, "linear", hardware)
    cache = paths.cache_directory(args.cache_dir)
    split = models.digits()
    images, labels = split.test_images[: args.images], split.test_labels[: args.images]
    reporter = args.reporter
    with reporter.stage(f"training {args.model} (float weights cached in {cache / 'models'}) and quantizing to {fmt}"):
        base = models.float_model(args.model, split, cache=cache / "models")
        model = models.quantized_model(args.model, fmt, base, split)
    layer = _layer_name(model, args.layer or "0")
    out = paths.output_directory(args.output)  # after the checks: a refused run writes nothing
    what = f"{args.model}.{layer} on the {hardware.describe()} in Verilator"
    with reporter.stage(what):
        run = run_layer(args.model, fmt, model, layer, images, labels, hardware, cache / "verilator", out / "run",
                        progress=lambda done, total: reporter.count(f"{what}: chunks", done, total))  # fmt: skip
    output.write_json(out / "report.json", run.summary(), args.provenance)
    if args.json:
        print(json.dumps(run.summary(), indent=2))
        return 0 if run.passed else 1
    verdict = "[green]PASS[/green]" if run.passed else "[red]FAIL[/red]"
    m, k, n = run.gemm
    console.print(
        f"{verdict} {args.model}.{layer} ({fmt}) on {run.hardware}: GEMM {m}x{k}x{n}, {run.images} test images"
    )
    console.print(
        f"bit-exact against numerics: {run.bit_exact}" + (f" ({run.first_mismatch})" if run.first_mismatch else "")
    )
    console.print(f"cycles: measured {run.cycles}, model {run.model_cycles}")
    console.print(f"max deviation from Brevitas: {run.max_deviation:.3g} (within gamma(K+3)*sum|ab| float32 rounding "
                  f"bound: {run.within_bound})")  # fmt: skip
    console.print(
        f"accuracy on these {run.images} images: Brevitas {run.brevitas_accuracy:.2%}, hardware in the "
        f"loop {run.hil_accuracy:.2%} (same predictions on every image: {run.predictions_equal})"
    )
    console.print(f"wrote {out / 'report.json'}")
    return 0 if run.passed else 1


def add_model_command(cosim: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cosim.add_parser("model", help="a layer of a trained quantized model on generated hardware, end to end")
    p.add_argument("--model", required=True, metavar="SPEC", help=models.SPEC_HELP)
    p.add_argument("--format", help="a bundled model's format (" + ", ".join(sorted(models.SCHEMES)) + "); for a "
                   "user's model, optional: checked against the formats read from the model")  # fmt: skip
    p.add_argument("--layer", help="a layer name, or all (a user's model; the default); a bundled model: index or "
                   "name (default 0)")  # fmt: skip
    p.add_argument("--inputs", metavar="X.npy", help="a user's model: a batch of inputs (float)")
    p.add_argument("--labels", metavar="Y.npy", help="a user's model: integer labels of the inputs (for accuracy)")
    p.add_argument("--strict", action="store_true", help="a user's model: fail (exit 1) when any layer is not "
                   "mappable, not only when a verified layer fails")  # fmt: skip
    p.add_argument("--calibration", metavar="C.npy", help="a float model that bitfab quantizes to --format: "
                   "activation calibration inputs (default: --inputs)")  # fmt: skip
    p.add_argument("--array", default="8x8", metavar="RxC", help="systolic rows x cols (bit-serial: lanes x PEs)")
    p.add_argument("--dataflow", default="ws", choices=["ws", "os"], help="weight- or output-stationary (ws is "
                   "double-buffered)")  # fmt: skip
    p.add_argument("--bitserial", action="store_true", help="run on the bit-serial unit (weight-only formats)")
    p.add_argument("--acc", type=accumulator, default="exact", metavar="ACC", help="the systolic array's "
                   "accumulator: exact (Kulisch), or int{W}: a W-bit register that wraps (a user's or A2Q model: "
                   "verdict (e) checks that it holds every sum, and the largest partial sum is reported)")  # fmt: skip
    p.add_argument("--images", type=positive_int, default=360, help="inputs to run: the first N (bundled: 360 = all "
                   "test images)")  # fmt: skip
    p.add_argument("-o", "--output", default="cosim_model_out", metavar="OUTDIR", help="the run's logs and report.json")
    add_cache_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_cosim_model)
