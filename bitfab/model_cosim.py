"""`bitfab cosim model`: one layer of a trained quantized model on a generated systolic array, with
the real test-set activations: bit-exact against numerics, the deviation from Brevitas, and the
model's accuracy with the hardware's output in the loop."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np
import torch
from rich.console import Console

import hw
import models
import sim

HIL_MODELS = ("mlp",)  # models whose remaining layers after a linear layer are wired here


def _rest_of_mlp(model: torch.nn.Module, layer: str, output: np.ndarray) -> np.ndarray:
    """Logits of the MLP when `layer` produced `output` (before its bias)."""
    with torch.no_grad():
        x = torch.from_numpy(output.astype(np.float32)) + getattr(model, layer).bias
        if layer == "fc1":
            x = model.fc2(torch.relu(x))
        return x.numpy()


def cmd_cosim_model(args: argparse.Namespace, console: Console) -> int:
    if args.model not in HIL_MODELS:
        raise ValueError(f"cosim model maps {', '.join(HIL_MODELS)} so far, got {args.model!r}")
    if not (match := re.fullmatch(r"(\d+)x(\d+)", args.array)):
        raise ValueError(f"--array must be RxC (e.g. 8x8), got {args.array!r}")
    rows, cols = int(match[1]), int(match[2])
    fmt = args.format
    element = fmt.removesuffix("_channel")
    models.quantizers(fmt)  # an unknown format fails before training
    out = Path(args.output)
    split = models.digits()
    with console.status(f"training {args.model} and quantizing to {fmt}"):
        model = models.quantized_model(args.model, fmt, models.float_model(args.model, split, cache=out), split)
    layers = models.linear_layers(model)
    if not 0 <= args.layer < len(layers):
        raise ValueError(f"--layer must be between 0 and {len(layers) - 1} for {args.model}, got {args.layer}")
    name = layers[args.layer]
    codes = models.extract(model, name, split.test_images, fmt)
    array = hw.SystolicArray(element, element, rows=rows, cols=cols, dataflow=args.dataflow, pipeline=1,
                             k_max=max(256, codes.brevitas_output.shape[1]), m_max=len(split.test_labels))  # fmt: skip
    with console.status("building and simulating in Verilator"):
        report = sim.cosim_gemm(array, codes.input_codes, codes.weight_codes, out / "sim_build", out / "run")
    assert report.result is not None
    lsb = 2.0**array.config.lsb_exponent
    hardware = report.result.astype(np.float64) * lsb * codes.input_scale * codes.weight_scale
    deviation = float(np.max(np.abs(hardware - codes.brevitas_output)))
    logits = _rest_of_mlp(model, name, hardware)
    hil = float((logits.argmax(axis=1) == split.test_labels).mean())
    brevitas = models.accuracy(model, split.test_images, split.test_labels)
    summary = {
        "model": args.model,
        "format": fmt,
        "layer": name,
        "array": args.array,
        "dataflow": args.dataflow,
        "bit_exact": report.mismatches == 0,
        "cycles_measured": report.cycles,
        "cycles_model": report.model_cycles,
        "max_deviation_from_brevitas": deviation,
        "brevitas_accuracy": brevitas,
        "hardware_in_the_loop_accuracy": hil,
        "test_images": len(split.test_labels),
    }
    passed = report.passed and hil == brevitas
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0 if passed else 1
    verdict = "[green]PASS[/green]" if report.mismatches == 0 else "[red]FAIL[/red]"
    where = f"{args.model}.{name} ({fmt}) on a {args.array} {args.dataflow.upper()} array"
    console.print(f"{verdict} {where}, {len(split.test_labels)} test images, bit-exact: {report.mismatches == 0}")
    console.print(f"max deviation from Brevitas (float32 rounding): {deviation:.3g}; cycles measured {report.cycles}, "
                  f"model {report.model_cycles}")  # fmt: skip
    console.print(f"accuracy: Brevitas {brevitas:.2%}, hardware in the loop {hil:.2%}")
    return 0 if passed else 1


def add_model_command(cosim: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = cosim.add_parser("model", help="a layer of a trained quantized model on a systolic array, end to end")
    p.add_argument("--model", required=True, choices=list(models.MODELS))
    p.add_argument("--format", required=True, help="one of: " + ", ".join(sorted(models.WEIGHT_QUANTIZERS)))
    p.add_argument("--layer", type=int, default=0, help="index among the model's linear layers")
    p.add_argument("--array", default="8x8", metavar="RxC")
    p.add_argument("--dataflow", default="ws", choices=["ws", "os"])
    p.add_argument("-o", "--output", default="cosim_model_out", metavar="OUTDIR")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_cosim_model)
