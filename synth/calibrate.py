"""Calibrate the analytic LUT model against real yosys runs and store the result in the repo.

    python -m synth.calibrate [--jobs 2] [--cache .synth_cache] [--refit | --missing]

Synthesizes every design of `CALIBRATION` (MAC PEs, systolic arrays, arrays with their output
stage, the bit-serial unit) and of `HELD_OUT` for ECP5 and Xilinx 7 (LUT-only multipliers), and
those of `DSP_CALIBRATION` / `DSP_HELD_OUT` for ECP5 with DSPs (the `ecp5+dsp` model), fits
the per-feature coefficients of `synth.cost` by non-negative least squares on `CALIBRATION` only,
and writes synth/data/calibration.json (the measured resources, the coefficients, the in-sample
and leave-one-out errors, and the errors on the held-out designs, which the fit never saw).
Takes ~1 hour on 2 cores the first time (the output stages are most of it); yosys runs are
cached. `--missing` synthesizes only the designs the stored runs lack.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import hw

from ._designs import DesignSpec
from ._yosys import Resources, synthesize, version
from .cost import CALIBRATION_FILE, fit, run_key, stored_run_key

CALIBRATION_TARGETS = ("ecp5", "xilinx7")
NARROW_STAGE = {"out_bits": 8, "bias_bits": 16, "multiplier_bits": 8}
CALIBRATION = [
    *(DesignSpec("pe", f, f) for f in ("int2", "int3", "int4", "int6", "int8")),
    DesignSpec("pe", "int8", "int8", accumulator="int32"),
    DesignSpec("pe", "int8", "int4"),
    *(DesignSpec("pe", f, f) for f in ("fp4_e2m1", "fp6_e2m3", "fp6_e3m2", "fp8_e4m3", "fp8_e5m2")),
    DesignSpec("pe", "posit8_0", "posit8_0"),
    DesignSpec("pe", "posit8_2", "posit8_2"),
    DesignSpec("array", "int8", "int8", 2, 2, "os"),
    DesignSpec("array", "int8", "int8", 4, 4, "os"),
    DesignSpec("array", "int8", "int8", 8, 8, "os", accumulator="int32"),
    DesignSpec("array", "int8", "int8", 2, 2, "ws"),
    DesignSpec("array", "int8", "int8", 4, 4, "ws"),
    DesignSpec("array", "int4", "int4", 4, 4, "ws", double_buffer=True),
    DesignSpec("array", "fp8_e4m3", "fp8_e4m3", 4, 4, "os"),
    DesignSpec("array", "fp4_e2m1", "fp4_e2m1", 4, 4, "os"),
    DesignSpec("array", "mxfp4", "mxfp4", 2, 2, "os"),
    DesignSpec("array", "mxfp8_e4m3", "mxfp8_e4m3", 2, 2, "ws"),
    DesignSpec("array", "ovp4", "ovp4", 2, 2, "ws"),
    # float accumulators (issue 15): a fused PE, OS PEs, the OCP-style MX block datapath, WS columns
    DesignSpec("pe", "fp8_e4m3", "fp8_e4m3", accumulator="fp32"),
    DesignSpec("pe", "int8", "int8", accumulator="fp16_w8"),
    DesignSpec("array", "fp8_e4m3", "fp8_e4m3", 2, 2, "os", accumulator="fp32"),
    DesignSpec("array", "mxfp8_e4m3", "mxfp8_e4m3", 2, 2, "os", accumulator="fp32"),
    DesignSpec("array", "mxfp4", "mxfp4", 2, 2, "ws", accumulator="bf16"),
    DesignSpec("array", "int8", "int8", 2, 2, "ws", accumulator="fp32"),
    *(
        DesignSpec("bitserial", a, "int2..8/fp4/bitmod", lanes, pes, k=128)
        for a, lanes, pes in (("int8", 4, 2), ("int8", 8, 4), ("int4", 8, 4), ("int8", 8, 8), ("int8", 16, 4))
    ),
    # the output stage (hw.RequantArray) at bitfab network's widths, on 2, 4 lanes; a narrow stage;
    # a deep parameter memory (256 rows)
    *(
        DesignSpec("array", "int8", "int8", rows, cols, dataflow, dataflow == "ws", output_stage=True)
        for rows, cols in ((2, 2), (2, 4), (4, 4))
        for dataflow in ("os", "ws")
    ),
    DesignSpec("array", "int4", "int4", 2, 2, "ws", True, output_stage=True, **NARROW_STAGE),
    DesignSpec("array", "int8", "int8", 2, 2, "os", output_stage=True, n_max=512),
]
# Measured and stored, never fitted: the check that the model holds beyond its calibration set.
HELD_OUT = [
    DesignSpec("array", "int8", "int8", 8, 8, "os", output_stage=True),
    DesignSpec("array", "int4", "int4", 4, 4, "ws", True, output_stage=True, **NARROW_STAGE),
]
# With DSP inference on ECP5 (MULT18X18D for every multiplier of <= 18 x 18 bits): the demo's family
# (INT8 weight-stationary double-buffered arrays, k_max 64, m_max 64) at 2x2 to 8x8, other formats
# and dataflows, PEs, output stages (their multiplier split over DSPs); fitted as `ecp5+dsp`.
DSP_TARGETS = ("ecp5",)
DEMO_FAMILY = {"k": 64, "m_max": 64}
DSP_CALIBRATION = [
    *(DesignSpec("pe", f, f) for f in ("int4", "int6", "int8", "fp8_e4m3", "fp8_e5m2")),
    DesignSpec("pe", "int8", "int8", accumulator="int32"),
    *(DesignSpec("array", "int8", "int8", n, n, "ws", True, **DEMO_FAMILY) for n in (2, 4, 6, 8)),
    DesignSpec("array", "int8", "int8", 4, 8, "ws", True, **DEMO_FAMILY),
    DesignSpec("array", "int8", "int8", 2, 2, "os"),
    DesignSpec("array", "int8", "int8", 4, 4, "os"),
    DesignSpec("array", "int8", "int8", 4, 4, "ws"),
    DesignSpec("array", "int4", "int4", 4, 4, "ws", True),
    DesignSpec("array", "fp8_e4m3", "fp8_e4m3", 4, 4, "os"),
    DesignSpec("array", "fp8_e4m3", "fp8_e4m3", 2, 2, "ws", True),
    *(DesignSpec("array", "int8", "int8", 2, 2, d, d == "ws", output_stage=True) for d in ("os", "ws")),
    DesignSpec("array", "int8", "int8", 4, 4, "ws", True, output_stage=True, **DEMO_FAMILY),
    *(DesignSpec("array", a, "int4", 4, 4, "os", dsp_pack=True) for a in ("int8", "int4")),
    DesignSpec("array", "int8", "int4", 2, 4, "os", dsp_pack=True),
    DesignSpec("array", "int8", "int4", 4, 4, "os"),  # beside its packed twin
]
DSP_HELD_OUT = [
    DesignSpec("array", "int8", "int8", 8, 8, "os", accumulator="int32"),
    DesignSpec("array", "int4", "int4", 8, 8, "ws", True, **DEMO_FAMILY),
    DesignSpec("array", "fp8_e5m2", "fp8_e5m2", 4, 4, "ws", True, **DEMO_FAMILY),
    DesignSpec("array", "int8", "int4", 8, 8, "os", dsp_pack=True),
    DesignSpec("array", "uint8", "int4", 4, 8, "os", dsp_pack=True),
]


def _run(job: tuple[DesignSpec, str, str, bool]) -> Resources:
    spec, target, cache, dsp = job
    design = spec.build(dsp=dsp)
    return synthesize(hw.to_verilog(design, "top"), target, Path(cache), dsp=dsp)


def measure(specs: list[DesignSpec], targets: tuple[str, ...], cache: Path, jobs: int,
            held_out: tuple[DesignSpec, ...] = (), dsp: bool = False) -> list[dict]:  # fmt: skip
    """One run per (design, target): {"spec", "target", "resources"}, "held_out": true for the
    designs of `held_out` (stored for the held-out check, never fitted), "dsp": true with DSPs."""
    work = [(spec, target, str(cache), dsp) for spec in specs for target in targets]
    with ProcessPoolExecutor(jobs) as pool:
        results = list(pool.map(_run, work))
    runs = []
    for (spec, target, _, _), result in zip(work, results, strict=True):
        resources = result.to_json()
        del resources["cells"]
        run: dict = {"spec": spec.to_json(), "target": target, "resources": resources}
        if dsp:
            run["dsp"] = True
        runs.append({**run, "held_out": True} if spec in held_out else run)
    return runs


def _model_name(run: dict) -> str:
    return run["target"] + ("+dsp" if run.get("dsp") else "")


def _measure_all(todo: list[DesignSpec], dsp_todo: list[DesignSpec], cache: Path, jobs: int) -> list[dict]:
    runs = measure(todo, CALIBRATION_TARGETS, cache, jobs, tuple(HELD_OUT)) if todo else []
    if dsp_todo:
        runs += measure(dsp_todo, DSP_TARGETS, cache, jobs, tuple(DSP_HELD_OUT), dsp=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", default=".synth_cache", help="yosys results cache (default: .synth_cache)")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--refit", action="store_true",
                      help="fit the stored runs again, no yosys (after a feature changed)")  # fmt: skip
    mode.add_argument("--missing", action="store_true",
                      help="synthesize only the designs the stored runs lack, keep the others, refit")  # fmt: skip
    args = parser.parse_args()
    designs = [*CALIBRATION, *HELD_OUT]
    dsp_designs = [*DSP_CALIBRATION, *DSP_HELD_OUT]
    if args.refit or args.missing:
        runs = json.loads(CALIBRATION_FILE.read_text())["runs"]
        if args.missing:
            stored = {stored_run_key(run) for run in runs}

            def lacking(specs: list[DesignSpec], targets: tuple[str, ...], dsp: bool) -> list[DesignSpec]:
                return [spec for spec in specs if any(run_key(spec, target, dsp)
                                                      not in stored for target in targets)]  # fmt: skip

            todo, dsp_todo = lacking(designs, CALIBRATION_TARGETS, False), lacking(dsp_designs, DSP_TARGETS, True)
            print(
                f"synthesizing {len(todo) + len(dsp_todo)} designs the stored runs lack: "
                f"{', '.join(s.label() for s in todo)}; with DSPs: {', '.join(s.label() for s in dsp_todo)}"
            )
            new = _measure_all(todo, dsp_todo, Path(args.cache), args.jobs)
            runs += [run for run in new if stored_run_key(run) not in stored]
    else:
        runs = _measure_all(designs, dsp_designs, Path(args.cache), args.jobs)
    names = [*CALIBRATION_TARGETS, *(f"{target}+dsp" for target in DSP_TARGETS)]
    models = {name: fit([r for r in runs if _model_name(r) == name]) for name in names}
    CALIBRATION_FILE.write_text(json.dumps({"yosys": version(), "runs": runs, "models": models}, indent=1) + "\n")
    for name, model in models.items():
        print(f"{name}: MAPE {model['mape']:.1%} in sample, {model['loo_mape']:.1%} leave-one-out, "
              f"{len(model['errors'])} designs; held out {model['held_out_mape']:.1%} on "
              f"{len(model['held_out'])} designs")  # fmt: skip
    print(f"wrote {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
