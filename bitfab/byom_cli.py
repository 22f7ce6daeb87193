"""`bitfab layers` and `bitfab cosim model` for a user's model (a Python factory or a QONNX file):
the layers and the formats read from the model; every mappable layer on generated hardware with
the four verdicts of bitfab/byom.py."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from torch import nn

import models
import numerics

from . import output, paths
from .byom import LayerVerdict, TorchSource, array_for, run_layer, source_for
from .endtoend import Hardware
from .options import add_cache_option


def load_inputs(path: Path | None, what: str = "--inputs") -> np.ndarray:
    if path is None:
        raise ValueError(f"{what} X.npy is required for a user's model (a batch of model inputs, float32)")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(f"{what} {path}: not a readable .npy file ({error})") from None
    if not np.issubdtype(array.dtype, np.number) or array.ndim < 1 or len(array) == 0:
        raise ValueError(f"{what} {path}: expected a non-empty numeric array, got dtype {array.dtype}, "
                         f"shape {array.shape}")  # fmt: skip
    return array


def load_labels(path: Path | None, count: int) -> np.ndarray | None:
    if path is None:
        return None
    labels = load_inputs(path, "--labels")
    if labels.shape != (count,) or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"--labels {path}: expected {count} integer labels (one per input), got dtype "
                         f"{labels.dtype}, shape {labels.shape}")  # fmt: skip
    return labels


def user_source(spec: str, fmt: str | None = None, calibration: np.ndarray | None = None,
                cache: Path | None = None) -> Any:  # fmt: skip
    """The model of a spec as a source of layers. A float PyTorch model (no quantized layer) with
    `fmt` is quantized by bitfab to that format first (models.quantize, calibrated on `calibration`).
    A bundled A2Q model (`a2q16`, `a2q_ref`) is trained, or loaded from `cache`/models."""
    if models.is_a2q(spec):
        return TorchSource(models.a2q_model(spec, cache=None if cache is None else cache / "models"), spec)
    model = models.load(spec)
    name = Path(spec.rpartition(":")[0] or spec).stem
    if isinstance(model, nn.Module) and not models.quant_modules(model) and fmt is not None:
        if calibration is None:
            raise ValueError("a float model quantized by bitfab needs calibration inputs")
        model = models.quantize(model, fmt, calibration)
        name = f"{name} quantized to {fmt}"
    return source_for(model, name)


def _is_float_model(model: Any) -> bool:
    return isinstance(model, nn.Module) and not models.quant_modules(model)


def cmd_layers(args: argparse.Namespace, console: Console) -> int:
    example = None if args.inputs is None else load_inputs(args.inputs).astype(np.float32)[:1]
    if args.model in models.MODELS:
        if args.format is None:
            raise ValueError(f"a bundled model needs --format (one of {', '.join(sorted(models.SCHEMES))})")
        model = models.build(args.model, args.format)
        source = source_for(model, args.model)
        if example is None:
            example = models.digits().test_images[:1]
    elif models.is_a2q(args.model):
        source = user_source(args.model, cache=paths.cache_directory(args.cache_dir))
        example = models.digits().test_images[:1] if example is None else example
    else:
        source = user_source(args.model)
    if example is None and not isinstance(source, TorchSource):
        raise ValueError("a QONNX model needs --inputs X.npy to describe its layers (shapes come from a run)")
    infos = source.describe(example)
    rows = [{"layer": i.name, "kind": i.kind, "gemm_per_sample": i.gemm, "input": i.input, "weight": i.weight,
             "bias": i.bias, "maps": i.mappable, "reason": i.reason, "formats": i.formats,
             "zero_points": i.zero_points} for i in infos]  # fmt: skip
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        console.print(f"{args.model}: no quantized matrix-product layers (QuantLinear, QuantConv1d, QuantConv2d, "
                      "attention products; QONNX MatMul/Gemm/Conv fed by Quant nodes)")  # fmt: skip
        return 0
    table = output.table(f"quantized layers of {args.model}", ["layer", "kind", "GEMM per sample (MxKxN)", "input",
                         "weight", "bias", "maps"], text_columns=7)  # fmt: skip
    for r in rows:
        gemm = "x".join(str(v) for v in r["gemm_per_sample"]) if r["gemm_per_sample"] else "-"
        table.add_row(r["layer"], r["kind"], gemm, r["input"], r["weight"], r["bias"],
                      "yes" if r["maps"] else f"no: {r['reason']}")  # fmt: skip
    console.print(table)
    if example is None:
        console.print("input formats and GEMM shapes need an example input: add --inputs X.npy")
    return 0


def _probe(source: Any, layer: str, example: np.ndarray) -> models.Product:
    """The layer captured on one example (attention: its first (sample, head) product)."""
    slices = source.capture_slices(layer, example) if hasattr(source, "capture_slices") else None
    return slices[0] if slices else source.capture(layer, example)


def _check_format(product: models.Product, layer: str, fmt: str | None) -> None:
    """A format the user typed must be what the model holds: both operands, by numerics name."""
    if fmt is None:
        return
    wanted = models.scheme(fmt) if fmt in models.SCHEMES else None
    expected = {wanted.activation, wanted.weight} if wanted else {models.format_name(numerics.get(fmt))}
    read = {models.format_name(product.a.format), models.format_name(product.b.format)}
    if not read <= expected:
        raise ValueError(f"--format {fmt} does not match layer {layer!r}: the model's quantizers give input "
                         f"{product.a.description} and weight {product.b.description}")  # fmt: skip


def _known_format(fmt: str | None) -> None:
    """An unknown --format fails first, as unknown (not as a mismatch with the model)."""
    if fmt is not None and fmt not in models.SCHEMES:
        numerics.get(fmt)


def _fits_hardware(probe: models.Product, hardware: Hardware) -> str | None:
    """Why a layer cannot run on the chosen hardware (None: it can), before any simulation."""
    try:
        array = array_for(probe, hardware, probe.gemm[0])
    except ValueError as error:
        return str(error)
    array._MustUse__silence = True  # built only to check the configuration: never elaborated
    return None


def _layers_to_run(source: Any, layer: str, example: np.ndarray) -> tuple[list[str], list[models.LayerInfo]]:
    """(layers to run, refused layers with reasons)."""
    names = source.layers()
    if not names:
        raise ValueError("the model has no quantized matrix-product layers (Brevitas QuantLinear, QuantConv1d, "
                         "QuantConv2d, attention products; QONNX MatMul/Gemm/Conv fed by Quant nodes); a float "
                         "model: add --format F to have bitfab quantize it")  # fmt: skip
    infos = {info.name: info for info in source.describe(example)}
    if layer == "all":
        mapped = [n for n in names if infos[n].mappable]
        if not mapped:
            reasons = "; ".join(f"{n}: {infos[n].reason}" for n in names)
            raise ValueError(f"no layer of the model maps to the arrays: {reasons}")
        return mapped, [infos[n] for n in names if not infos[n].mappable]
    if layer not in names:
        raise ValueError(f"--layer {layer!r} is not a quantized layer of the model; available: {', '.join(names)}")
    if not infos[layer].mappable:
        raise ValueError(f"layer {layer!r} does not map: {infos[layer].reason}")
    return [layer], []


def _calibration(args: argparse.Namespace, inputs: np.ndarray) -> np.ndarray:
    """Calibration inputs for a float model that bitfab quantizes: --calibration, else the inputs."""
    path = getattr(args, "calibration", None)
    return inputs if path is None else load_inputs(path, "--calibration").astype(np.float32)


def _inputs_and_labels(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray | None]:
    """--inputs / --labels (the first --images); a bundled A2Q model defaults to the digits test set."""
    if args.inputs is None and models.is_a2q(args.model):
        models.a2q_bits(args.model)  # a bad name fails before the data loads
        split = models.digits()
        if args.labels is not None:
            raise ValueError("--labels goes with --inputs; without them a bundled A2Q model runs on the digits test "
                             "images and their labels")  # fmt: skip
        return split.test_images[: args.images], split.test_labels[: args.images]
    given = load_inputs(args.inputs)
    labels = load_labels(args.labels, len(given))
    return given.astype(np.float32)[: args.images], None if labels is None else labels[: args.images]


def cmd_cosim_user_model(args: argparse.Namespace, console: Console, hardware: Hardware) -> int:
    _known_format(args.format)
    inputs, labels = _inputs_and_labels(args)
    reporter = args.reporter
    cache = paths.cache_directory(args.cache_dir)
    with reporter.stage(f"loading {args.model}"):
        source = user_source(args.model, args.format, _calibration(args, inputs), cache)
    layer = args.layer or "all"
    names, refused = _layers_to_run(source, layer, inputs[:1])
    for name in list(names):  # every layer against the format and the hardware before anything runs
        probe = _probe(source, name, inputs[:1])
        _check_format(probe, name, args.format)
        if (reason := _fits_hardware(probe, hardware)) is None:
            continue
        if layer != "all":
            raise ValueError(reason)
        names.remove(name)
        refused.append(models.LayerInfo(name, "-", None, "-", "-", "-", f"on the {hardware.describe()}: {reason}"))
    if not names:
        prefix = f"on the {hardware.describe()}: "
        raise ValueError(f"no layer of the model runs {prefix}"
                         + "; ".join(str(info.reason).removeprefix(prefix) for info in refused))  # fmt: skip
    out = paths.output_directory(args.output)  # after the checks: a refused run writes nothing
    verdicts: list[LayerVerdict] = []
    for index, name in enumerate(names):
        what = f"layer {name} ({index + 1}/{len(names)}) on the {hardware.describe()} in Verilator"
        with reporter.stage(what):
            verdicts.append(run_layer(source, name, inputs, labels, hardware, cache / "verilator", out / "run" / name,
                                      progress=lambda d, t, w=what: reporter.count(f"{w}: chunks", d, t)))  # fmt: skip
    passed = all(v.passed for v in verdicts)
    every_layer = passed and not refused
    report = {"model": args.model, "hardware": hardware.describe(), "accumulator": hardware.accumulator_name,
              "inputs": len(inputs), "passed": passed, "all_layers_verified": every_layer,
              "results_with_overflowing_partial_sum": sum(v.partial_sums.results_overflowing for v in verdicts
                                                          if v.partial_sums is not None),
              "warnings": [f"{v.layer}: {w}" for v in verdicts for w in v.warnings],
              "layers": [v.summary() for v in verdicts],
              "refused": [{"layer": i.name, "kind": i.kind, "reason": i.reason} for i in refused]}  # fmt: skip
    output.write_json(out / "report.json", report, args.provenance)
    status = 0 if passed and (every_layer or not args.strict) else 1
    if args.json:
        print(json.dumps(report, indent=2))
        return status
    _print(console, args.model, hardware, verdicts, refused, len(inputs))
    console.print(f"wrote {out / 'report.json'}")
    return status


def _mark(ok: bool | None) -> str:
    return "-" if ok is None else ("[green]yes[/green]" if ok else "[red]NO[/red]")


def _sums_cell(v: LayerVerdict) -> str:
    """Column (e): the largest |partial sum| against the register (exact: the bits it needs)."""
    sums = v.partial_sums
    if sums is None:
        return "-" if v.accumulator == "exact" else _mark(v.accumulator_holds)
    if sums.register is None:
        return f"{sums.max_abs:,} ({sums.bits} bits)"
    mark = "[yellow]WARN[/yellow]" if v.warnings and v.accumulator_holds else _mark(v.accumulator_holds)
    return f"{sums.max_abs:,} of {sums.register[1]:,} {mark}"


def _sums_line(v: LayerVerdict) -> str | None:
    """The partial sums of a layer in one line: measured, allowed by the weights, and the register."""
    sums = v.partial_sums
    if sums is None:
        return None
    text = (f"{v.layer} (sums in product lsbs): largest |partial sum| {sums.max_abs:,} ({sums.bits} bits; "
            f"{sums.order}), largest sum of |products| {sums.abs_product_sum:,}")  # fmt: skip
    if sums.any_input is not None:
        text += f"; any input: {sums.any_input[0]:,}..{sums.any_input[1]:,} ({sums.any_input_bits} bits)"
    if sums.register is None:
        any_input = f", int{sums.any_input_bits} those of any input" if sums.any_input_bits else ""
        return text + f"; int{sums.bits} holds every partial sum of these inputs{any_input}"
    low, high = sums.register
    if sums.overflowed:
        overflowing, wrapped = sums.results_overflowing, sums.results_wrapped
        verdict = f"OVERFLOWED in {overflowing:,} of {sums.results:,} results, {wrapped:,} wrapped"
    else:
        verdict = "held every partial sum"
        any_fits = sums.any_input is not None and low <= sums.any_input[0] and sums.any_input[1] <= high
        verdict += " (and holds any input's)" if any_fits else ""
    return text + f"; the {v.accumulator} register ({low:,}..{high:,}) {verdict}"


def _print(console: Console, model: str, hardware: Hardware, verdicts: list[LayerVerdict],
           refused: list[models.LayerInfo], count: int) -> None:  # fmt: skip
    fixed = hardware.accumulator_name != "exact"
    table = output.table(f"{model} on the {hardware.describe()}, {count} inputs: (a) hardware = numerics, "
                         "(b) extraction = the model's operands, (c) output within the float32 bound, "
                         "(d) same predictions with the hardware in the loop, (e) "
                         + ("the accumulator holds every result: largest |partial sum| of the register's maximum"
                            if fixed else "largest |partial sum| (the bits it needs)"),
                         ["layer", "GEMM (MxKxN)", "input x weight", "bias", "(a)", "cycles (= model)", "(b)",
                          "(c) max |dev|", "(d)", "(e) max |psum|", "verdict"], text_columns=4)  # fmt: skip
    for v in verdicts:
        cycles = f"{v.cycles}" + ("" if v.cycles == v.model_cycles else f" (model {v.model_cycles})")
        table.add_row(v.layer, "x".join(map(str, v.gemm)), f"{v.input_format} x {v.weight_format}", v.bias,
                      _mark(v.hardware_exact), cycles, _mark(v.extraction_faithful),
                      f"{v.max_deviation:.3g} {'ok' if v.within_bound else 'OVER'}", _mark(v.predictions_equal),
                      _sums_cell(v), "[green]PASS[/green]" if v.passed else "[red]FAIL[/red]")  # fmt: skip
    console.print(table)
    for v in verdicts:
        if (line := _sums_line(v)) is not None:
            console.print(line, markup=False, highlight=False)
        for failure in v.failures:
            console.print(f"[red]FAIL[/red] {v.layer}: {failure}")
        for warning in v.warnings:
            console.print(f"[yellow]WARNING[/yellow] {v.layer}: {warning}")
        if v.framework_accuracy is not None:
            hil = "-" if v.hil_accuracy is None else f"{v.hil_accuracy:.2%}"
            console.print(f"{v.layer}: accuracy on these {v.inputs} inputs: model {v.framework_accuracy:.2%}, "
                          f"hardware in the loop {hil}")  # fmt: skip
    for info in refused:
        console.print(f"not run: {info.name} ({info.kind}): {info.reason}")
    verdict = "PASS" if all(v.passed for v in verdicts) else "FAIL"
    colour = "green" if verdict == "PASS" else "red"
    passing = sum(v.passed for v in verdicts)
    which = f"five verdicts ((e): the {hardware.accumulator_name} accumulator)" if fixed else "four verdicts"
    warned = sum(bool(v.warnings) and v.passed for v in verdicts)
    console.print(f"[{colour}]{verdict}[/{colour}]: {passing} of {len(verdicts)} layers pass all {which}"
                  + (f"; {warned} of them with accumulator WARNINGS (above)" if warned else "")
                  + (f"; {len(refused)} of the model's {len(verdicts) + len(refused)} layers NOT verified (not "
                     "mappable, listed above; --strict makes that a failure)" if refused else ""))  # fmt: skip


DEFAULT_FORMATS = "int8,int8_channel,int4_channel,fp8_e4m3,fp8_e5m2,fp6_e2m3,mxfp8_e4m3,mxfp4,mxint8,ovp8,posit8_1"


def cmd_accuracy_user_model(args: argparse.Namespace, console: Console) -> int:
    """A float model quantized by bitfab to each format: accuracy, agreement with the float model."""
    inputs = load_inputs(args.inputs).astype(np.float32)
    labels = load_labels(args.labels, len(inputs))
    formats = [f.strip() for f in (args.formats if args.formats != "all" else DEFAULT_FORMATS).split(",") if f.strip()]
    for fmt in formats:
        models.scheme(fmt)  # an unknown format fails before anything runs
    model = models.load(args.model)
    if not _is_float_model(model):
        raise ValueError(f"--model {args.model}: already quantized (it has Brevitas layers); `bitfab accuracy "
                         "--model` quantizes a float model (Linear, Conv1d, Conv2d) to each format")  # fmt: skip
    calibration = _calibration(args, inputs)
    reference = np.asarray(models.forward(model, inputs))
    float_predictions = reference.reshape(len(inputs), -1).argmax(axis=1)
    rows: list[dict[str, Any]] = [{"format": "float", "accuracy": _accuracy(float_predictions, labels),
                                   "agreement_with_float": 1.0, "relative_output_error": 0.0}]  # fmt: skip
    with args.reporter.stage(f"quantizing {args.model} to {len(formats)} formats"):
        for index, fmt in enumerate(formats):
            quantized = models.quantize(model, fmt, calibration)
            out = np.asarray(models.forward(quantized, inputs))
            predictions = out.reshape(len(inputs), -1).argmax(axis=1)
            error = float(np.linalg.norm(out - reference) / max(np.linalg.norm(reference), 1e-30))
            rows.append({"format": fmt, "accuracy": _accuracy(predictions, labels),
                         "agreement_with_float": float((predictions == float_predictions).mean()),
                         "relative_output_error": error})  # fmt: skip
            args.reporter.count("formats", index + 1, len(formats))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    where = "the inputs themselves" if args.calibration is None else str(args.calibration)
    table = output.table(f"{args.model} quantized by bitfab (Brevitas layers; calibration: {where}), "
                         f"{len(inputs)} inputs", ["format", "accuracy", "same prediction as float",
                         "relative output error"], text_columns=1)  # fmt: skip
    for r in rows:
        accuracy = "-" if r["accuracy"] is None else f"{r['accuracy']:.2%}"
        table.add_row(r["format"], accuracy, f"{r['agreement_with_float']:.2%}", f"{r['relative_output_error']:.3g}")
    console.print(table)
    return 0


def _accuracy(predictions: np.ndarray, labels: np.ndarray | None) -> float | None:
    return None if labels is None else float((predictions == labels).mean())


def add_layers_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("layers", help="a model's quantized layers and the formats read from its quantizers")
    p.add_argument("--model", required=True, metavar="SPEC", help=models.SPEC_HELP)
    p.add_argument("--inputs", metavar="X.npy", help="example inputs (the first is used): GEMM shapes, input formats")
    p.add_argument("--format", help="for a bundled model: the format to quantize it to")
    add_cache_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_layers)
