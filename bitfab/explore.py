"""`bitfab explore`: accuracy against cost over formats x array shapes, on a process pool or Dask.

Each point is (model, format, array, accumulator, dataflow, target): the Brevitas model's PTQ
test accuracy with every quantized product computed by numerics with the array's accumulator (in
the order the dataflow realises: `models.accuracy_with`; `exact` is the Kulisch register), cycles
per inference (one image, every quantized layer on the array, `hw.cycles`), resources from
the calibrated cost model (and from real yosys + nextpnr with `--synth`), energy per inference
(synth.energy at the chosen node), and, with `--synth`, the post-route Fmax on ECP5. On ECP5 the
Fmax model (`synth.fmax`, fitted on routed designs) gives every point a clock, hence its throughput
(MAC/s = PEs x Fmax x utilization: the inference's MACs over its cycles at that clock) and its
energy-delay product; `--rank` orders the table and the Pareto front by area, throughput or EDP.

With `--output-stage` every array carries its output stage (`hw.RequantArray` as `bitfab cosim
network` builds it: int32 codes, 32-bit bias, 16-bit multiplier, a parameter row per fold of the
model's widest layer): its LUT equivalents are shown beside the whole design's, its register adds
a cycle per layer and its bias add, multiply and rounding count in the energy. The accuracy stays
the array's (the model's requantization between layers is Brevitas' own).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from rich.console import Console

import hw
import models
import numerics
import synth
from synth.cost import predict
from synth.energy import Energy, gemm_energy, output_stage_pj
from synth.fmax import fmax_model, predict_fmax

from . import output, paths
from .options import K_MAX, M_MAX, add_cache_option, array_accumulator, positive_int

# lut_equivalents: LUT4 + 2 x CCU2C on ECP5 (a carry cell holds two LUT4s), LUTs on Xilinx 7: the cost axis
DEFAULT_ACCUMULATOR = "default"
DEFAULT_FORMATS = "int4,int8,fp8_e4m3,fp4_e2m1,mxfp4,ovp4"
COLUMNS = ("model", "format", "array", "accumulator", "output_stage", "accuracy", "cycles_per_inference",
           "lut_equivalents", "stage_lut_equivalents", "luts", "carry", "ffs", "energy_pj", "pj_per_mac",
           "partial_sums_share", "synth_luts", "synth_lut_equivalents", "fmax_mhz", "model_fmax_mhz",
           "throughput_gmacs", "edp_pj_us")  # fmt: skip
# --rank: the cost that orders the table and that the Pareto front is taken against (lower is better)
RANKS = {"area": lambda row: row["lut_equivalents"], "throughput": lambda row: -(row.get("throughput_gmacs") or 0.0),
         "edp": lambda row: row.get("edp_pj_us") or float("inf")}  # fmt: skip


def layer_shapes(model: Any, fmt: str) -> list[tuple[int, int, int]]:
    """(M, K, N) of every quantized layer for one test image."""
    image = models.digits().test_images[:1]
    if isinstance(model, models.A2QMLP):
        return [models.capture(model, layer, image).gemm for layer in models.layers(model)]
    shapes = []
    for layer in models.bundled_layers(model):
        codes = models.extract(model, layer, image, fmt)
        m, n = codes.brevitas_output.shape
        shapes.append((m, int(codes.input_codes.shape[1]), n))
    return shapes


def operands(model: str, fmt: str) -> tuple[str, str]:
    """(activation, weight) formats of a model in `fmt`; an A2Q model has its own (uint8 x int8)."""
    if models.is_a2q(model):
        models.a2q_bits(model)
        if fmt != "int8":
            raise ValueError(f"{model} has INT8 weights and uint8 activations of its own: --formats must be int8, "
                             f"got {fmt!r}")  # fmt: skip
        return "uint8", "int8"
    scheme = models.scheme(fmt)
    return scheme.activation, scheme.weight


def default_accumulator(model: str, fmt: str, output_stage: bool = False) -> str:
    """The accumulator an array gets when none is named: the OCP-style FP32 datapath for MX
    operands (each block's exact sum, scaled, added in FP32), the exact register otherwise, and
    always with an output stage (it requantizes an integer sum)."""
    return "exact" if output_stage else array_accumulator(None, operands(model, fmt)[0])


def design(fmt: str, rows: int, cols: int, dataflow: str, k: int = K_MAX, m_max: int = M_MAX,
           accumulator: str = "exact", model: str = "mlp", output_stage: bool = False,
           n_max: int = M_MAX) -> synth.DesignSpec:  # fmt: skip
    """The array for a model format, with the CLI's array defaults (WS double-buffered, pipeline 1),
    and with `output_stage` the stage `bitfab cosim network` puts behind it, for up to `n_max` channels."""
    a, b = operands(model, fmt)
    return synth.DesignSpec("array", a, b, rows, cols, dataflow, double_buffer=dataflow == "ws",
                            accumulator=accumulator, k=k, m_max=m_max, output_stage=output_stage,
                            n_max=n_max)  # fmt: skip


def inference_cost(model: Any, fmt: str, spec: synth.DesignSpec, node_nm: int = 45) -> tuple[int, Energy]:
    """Cycles and energy of one inference (one image through every quantized layer) on the array."""
    cycles, energy = 0, None
    for m, k, n in layer_shapes(model, fmt):
        cfg = hw.ArrayConfig.build(spec.a, spec.b, numerics.parse_accumulator(spec.accumulator), rows=spec.rows,
                                   cols=spec.cols, dataflow=spec.dataflow, double_buffer=spec.double_buffer,
                                   pipeline=1, k_max=max(k, n), m_max=max(m, spec.rows))  # fmt: skip
        cycles += hw.cycles(cfg, m, k, n)
        layer = gemm_energy(cfg, m, k, n, node_nm)
        energy = layer if energy is None else energy + layer
    if energy is None:
        raise ValueError(f"the model has no quantized layers in {fmt}")
    return cycles, energy


def output_stage_cost(model: Any, fmt: str, spec: synth.DesignSpec, node_nm: int = 45) -> tuple[int, float]:
    """Cycles and energy (pJ) the output stage adds to one inference: its register (one cycle per
    layer, `hw.requant_cycles`) and, per result, its bias add, multiply and rounding."""
    shapes = layer_shapes(model, fmt)
    per_result = output_stage_pj(spec.stage_config(), node_nm)
    return len(shapes), per_result * sum(m * n for m, _, n in shapes)


def evaluate(point: dict[str, Any]) -> dict[str, Any]:
    """One design point (runs in a worker process or on a Dask worker)."""
    split = models.digits()
    cache = Path(point["cache"])
    rows, cols = (int(v) for v in point["array"].split("x"))
    staged = bool(point.get("output_stage", False))  # the demo's points have no stage
    spec = design(point["format"], rows, cols, point["dataflow"], accumulator=point["accumulator"],
                  model=point["model"])  # fmt: skip
    accumulator = spec.config().numerics_accumulator  # the order this dataflow adds in
    if models.is_a2q(point["model"]):  # any Brevitas model: every quantized product by numerics
        model = models.a2q_model(point["model"], split, cache=cache / "models")
        logits = models.forward_accumulating(model, split.test_images, accumulator)
        accuracy = float((logits.argmax(axis=1) == split.test_labels).mean())
    else:
        base = models.float_model(point["model"], split, cache=cache / "models")
        model = models.quantized_model(point["model"], point["format"], base, split)
        accuracy = models.accuracy_with(model, point["format"], split.test_images, split.test_labels, accumulator)
    cycles, energy = inference_cost(model, point["format"], spec, point["node_nm"])
    bare = predict(spec, point["target"], dsp=False)
    resources, stage_luts, stage_pj = bare, None, 0.0
    if staged:  # the parameter memory holds a row per fold of the widest layer's channels
        n_max = max(n for _, _, n in layer_shapes(model, point["format"]))
        spec = dataclasses.replace(spec, output_stage=True, n_max=n_max)
        stage_cycles, stage_pj = output_stage_cost(model, point["format"], spec, point["node_nm"])
        cycles += stage_cycles
        resources = predict(spec, point["target"], dsp=False)
        stage_luts = round(resources["lut_equivalents"] - bare["lut_equivalents"])
    total_pj = energy.total_pj + stage_pj
    result = {"accuracy": accuracy, "cycles_per_inference": cycles, "energy_pj": total_pj,
              "pj_per_mac": total_pj / max(energy.macs, 1), "partial_sums_share": energy.partial_sums_pj / total_pj,
              "output_stage": staged, "stage_lut_equivalents": stage_luts,
              "synth_luts": None, "synth_lut_equivalents": None, "fmax_mhz": None,
              **{key: round(v) for key, v in resources.items()}}  # fmt: skip
    result.update(dict.fromkeys(("model_fmax_mhz", "throughput_gmacs", "edp_pj_us")))
    if point["target"] in fmax_model()["models"]:
        fmax = predict_fmax(spec, point["target"], dsp=False)
        latency_us = cycles / fmax
        result.update({"model_fmax_mhz": round(fmax, 1), "throughput_gmacs": energy.macs / latency_us / 1000,
                       "edp_pj_us": total_pj * latency_us})  # fmt: skip
    if point["synth"]:
        result.update(_synthesize(spec, point["target"], cache / "synth"))
    return result


def _synthesize(spec: synth.DesignSpec, target: str, cache: Path) -> dict[str, Any]:
    real = synth.synthesize(hw.to_verilog(spec.build(), "top"), target, cache, dsp=False)
    out: dict[str, Any] = {"synth_luts": real.luts, "synth_lut_equivalents": real.lut_equivalents}
    if target == "ecp5":
        out["fmax_mhz"] = synth.place_in_shell(spec.build(), "ecp5", cache, dsp=False)[1].fmax_mhz
    return out


def _model_name(text: str) -> str:
    if text in models.MODELS:
        return text
    if models.is_a2q(text):
        try:
            models.a2q_bits(text)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None
        return text
    raise argparse.ArgumentTypeError(f"must be a bundled model ({', '.join(models.MODELS)}) or {models.A2Q_HELP}, "
                                     f"got {text!r}")  # fmt: skip


def _list(text: str, what: str) -> list[str]:
    items = [item.strip() for item in text.split(",") if item.strip()]
    if not items:
        raise ValueError(f"--{what} needs at least one entry")
    return items


def cmd_explore(args: argparse.Namespace, console: Console) -> int:
    if args.formats is None:
        args.formats = "int8" if models.is_a2q(args.model) else DEFAULT_FORMATS
    formats = _list(args.formats, "formats")
    for fmt in formats:
        operands(args.model, fmt)
    arrays = _list(args.arrays, "arrays")
    accumulators = _list(args.accumulators, "accumulators") if args.accumulators else [DEFAULT_ACCUMULATOR]
    staged = args.output_stage
    for accumulator in accumulators:
        if accumulator != DEFAULT_ACCUMULATOR:
            parsed = numerics.parse_accumulator(accumulator)
            if staged and isinstance(parsed, numerics.FloatAccumulator):
                raise ValueError(f"--output-stage requantizes an integer sum: --accumulators must be exact or "
                                 f"int{{W}} with it, got {accumulator!r}")  # fmt: skip
    for array in arrays:
        if not re.fullmatch(r"\d+x\d+", array):
            raise ValueError(f"--arrays takes RxC shapes like 4x4,8x8, got {array!r}")
        rows, cols = (int(v) for v in array.split("x"))
        for fmt in formats:
            for given in accumulators:
                accumulator = default_accumulator(args.model, fmt, staged) if given == DEFAULT_ACCUMULATOR else given
                try:  # every point's array is valid before any work
                    design(fmt, rows, cols, args.dataflow, accumulator=accumulator, model=args.model,
                           output_stage=staged).config()  # fmt: skip
                except ValueError as error:
                    with_acc = "" if given == DEFAULT_ACCUMULATOR else f" and --accumulators {accumulator}"
                    raise ValueError(f"--arrays {array} with {fmt}{with_acc}: {error}") from None
    if args.rank != "area" and args.target not in fmax_model()["models"]:
        raise ValueError(f"--rank {args.rank} needs an Fmax model, fitted for {', '.join(fmax_model()['models'])}; "
                         f"--target {args.target} has none")  # fmt: skip
    if args.scheduler is not None and not args.scheduler.startswith(("tcp://", "tls://", "inproc://")):
        raise ValueError(f"--scheduler must be a Dask scheduler address like tcp://HOST:PORT, got {args.scheduler!r}")
    cache = paths.cache_directory(args.cache_dir)
    out = paths.output_directory(args.output)
    split = models.digits()
    reporter = args.reporter
    with reporter.stage(f"training {args.model} (weights cached in {cache / 'models'})"):
        if models.is_a2q(args.model):  # trained once here, loaded by every worker
            models.a2q_model(args.model, split, cache=cache / "models")
        else:
            models.float_model(args.model, split, cache=cache / "models")
    points = [{"model": args.model, "format": fmt, "array": array, "accumulator": accumulator,
               "dataflow": args.dataflow, "target": args.target, "synth": args.synth, "node_nm": args.node,
               "cache": str(cache), "output_stage": staged}
              for fmt in formats for array in arrays
              for accumulator in dict.fromkeys(default_accumulator(args.model, fmt, staged)
                                               if a == DEFAULT_ACCUMULATOR else a for a in accumulators)]  # fmt: skip
    what = f"exploring {len(points)} points ({len(formats)} formats x {len(arrays)} arrays"
    what += f" x {len(accumulators)} accumulators)" if len(accumulators) > 1 else ")"
    with synth.executor_for(args.scheduler, args.jobs) as executor, reporter.stage(what):
        rows = synth.sweep(points, evaluate, executor, out / "points",
                           lambda done, total: reporter.count(f"{what}: points", done, total))  # fmt: skip
    with_stage = " with the output stage" if staged else ""
    write_outputs(rows, out, f"{args.model}: accuracy vs cost ({args.target}, {args.node} nm){with_stage}",
                  args.provenance, args.rank)  # fmt: skip
    if args.json:
        print(json.dumps([{k: row.get(k) for k in COLUMNS} for row in rows], indent=2))
        return 0
    shown = {"format": "format", "array": "array", "accumulator": "acc.", "accuracy": "accuracy",
             "cycles_per_inference": "cycles/inf", "lut_equivalents": "LUT eq.", "stage_lut_equivalents": "stage",
             "ffs": "FF", "energy_pj": "pJ/inf", "model_fmax_mhz": "Fmax (model)", "throughput_gmacs": "GMAC/s",
             "edp_pj_us": "EDP pJ*us", "synth_lut_equivalents": "yosys LUT eq.", "fmax_mhz": "Fmax"}  # fmt: skip
    if not staged:
        del shown["stage_lut_equivalents"]
    if args.target not in fmax_model()["models"]:
        for key in ("model_fmax_mhz", "throughput_gmacs", "edp_pj_us"):
            del shown[key]
    cost = RANKS[args.rank]
    table = output.table(f"{args.model} on {args.target} ({args.dataflow.upper()}{with_stage}, energy at "
                         f"{args.node} nm), by {args.rank}", [*shown.values(), "Pareto"], text_columns=3)  # fmt: skip
    front = _front(rows, cost)
    for row in rows if args.rank == "area" else sorted(rows, key=cost):
        table.add_row(*(_cell(row.get(key), key) for key in shown), "*" if id(row) in front else "")
    console.print(table)
    stage = "; stage = the output stage's share of the LUT equivalents" if staged else ""
    axis = {"area": "at no more LUT equivalents (LUT4 + 2 x CCU2C on ECP5)", "throughput": "at no less throughput",
            "edp": "at no higher energy-delay product"}[args.rank]  # fmt: skip
    console.print(f"Pareto: * = no other point has higher accuracy {axis}{stage}; throughput = the inference's "
                  f"MACs over its cycles at the modelled Fmax; wrote {out / 'explore.csv'}, explore.json, "
                  "pareto.png")  # fmt: skip
    return 0


def _front(rows: list[dict[str, Any]], cost: Any) -> set[int]:
    """ids of the rows no other row beats: higher accuracy at no higher `cost`."""
    keyed = [{"cost": cost(row), "accuracy": row["accuracy"], "row": row} for row in rows]
    return {id(entry["row"]) for entry in synth.pareto(keyed, "cost")}


def _cell(value: Any, key: str = "") -> str:
    if value is None:
        return "-"
    if key in ("throughput_gmacs", "model_fmax_mhz"):
        return f"{value:.3g}"
    if isinstance(value, float):
        return f"{value:.2%}" if value <= 1.0 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def write_outputs(rows: list[dict[str, Any]], out: Path, title: str, provenance: dict[str, Any],
                  rank: str = "area") -> None:  # fmt: skip
    """explore.csv, explore.json (with provenance) and pareto.png, each written whole; the `pareto`
    column marks the front against the `rank` cost (LUT equivalents, throughput or EDP)."""
    front = _front(rows, RANKS[rank])
    table = [{**{k: row.get(k) for k in COLUMNS}, "pareto": id(row) in front} for row in rows]
    with paths.atomic(out / "explore.csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "pareto"])
        writer.writeheader()
        writer.writerows(table)
    output.write_json(out / "explore.json", {"title": title, "points": table}, provenance)
    axes = [("lut_equivalents", "LUT equivalents (cost model)"), ("energy_pj", "energy per inference (pJ)")]

    def label(row: dict[str, Any]) -> str:
        accumulator = row.get("accumulator", "exact")
        return f"{row['format']} {row['array']}" + ("" if accumulator == "exact" else f" {accumulator}")

    synth.plot_pareto(rows, axes, out / "pareto.png", title, label)


def add_explore_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("explore", help="accuracy vs LUTs / energy over formats x arrays (Pareto table and plot)")
    p.add_argument("--model", default="mlp", type=_model_name, metavar="MODEL",
                   help=f"a bundled model ({', '.join(models.MODELS)}) or {models.A2Q_HELP}")  # fmt: skip
    p.add_argument("--formats", help=f"comma-separated formats (default {DEFAULT_FORMATS}; int8 for an A2Q model)")
    p.add_argument("--arrays", default="4x4,8x8", help="comma-separated RxC shapes")
    p.add_argument("--accumulators", default=DEFAULT_ACCUMULATOR, metavar="ACCS",
                   help="comma-separated accumulators: default (the array's own: fp32 for MX formats, else exact), "
                        "exact, int{W}, or float ones: fp32, fp16, bf16, fp32_w14 "
                        "(an alignment window of 14 bits), bf16_rz (adds toward zero)")  # fmt: skip
    p.add_argument("--dataflow", default="ws", choices=["ws", "os"], help="weight- (double-buffered) or "
                   "output-stationary")  # fmt: skip
    p.add_argument("--output-stage", action="store_true",
                   help="every array with its output stage (bias, multiplier, rounding shift, zero point, clamp: "
                        "hw.RequantArray as `bitfab cosim network` builds it); its LUT equivalents get a column; "
                        "the default accumulator is then exact for every format")  # fmt: skip
    p.add_argument("--target", default="ecp5", choices=["ecp5", "xilinx7"], help="FPGA family of the cost model")
    p.add_argument("--node", type=int, default=45, help="technology node for energy (45, 32, 28, 20, 16, 14, 7)")
    p.add_argument("--synth", action="store_true", help="also run yosys (and nextpnr on ECP5) for every point")
    p.add_argument("--rank", default="area", choices=list(RANKS),
                   help="order the table and its Pareto front by LUT equivalents, throughput (MAC/s at the "
                        "modelled Fmax) or energy-delay product (the last two on ECP5)")  # fmt: skip
    p.add_argument("--scheduler", help="Dask scheduler address tcp://HOST:PORT (default: a local process pool)")
    p.add_argument("--jobs", type=positive_int, default=2, help="local worker processes")
    p.add_argument("-o", "--output", default="explore_out", metavar="OUTDIR", help="table, JSON and plot")
    add_cache_option(p)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_explore)
