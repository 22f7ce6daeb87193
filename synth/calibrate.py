"""Calibrate the analytic LUT model against real yosys runs and store the result in the repo.

    python -m synth.calibrate [--jobs 2] [--cache .synth_cache] [--refit]

Synthesizes every design of `CALIBRATION` (MAC PEs, systolic arrays, the bit-serial unit) for ECP5
and Xilinx 7 (LUT-only multipliers), fits the
per-feature coefficients of `synth.cost` by non-negative least squares, and writes
synth/data/calibration.json (the measured resources, the coefficients, the in-sample and
leave-one-out errors). Takes ~10 minutes on 2 cores the first time; yosys runs are cached.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import hw

from ._designs import DesignSpec
from ._yosys import Resources, synthesize, version
from .cost import CALIBRATION_FILE, fit

CALIBRATION_TARGETS = ("ecp5", "xilinx7")
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
]


def _run(job: tuple[DesignSpec, str, str]) -> Resources:
    spec, target, cache = job
    design = spec.build()
    return synthesize(hw.to_verilog(design, "top"), target, Path(cache), dsp=False)


def measure(specs: list[DesignSpec], targets: tuple[str, ...], cache: Path, jobs: int) -> list[dict]:
    work = [(spec, target, str(cache)) for spec in specs for target in targets]
    with ProcessPoolExecutor(jobs) as pool:
        results = list(pool.map(_run, work))
    return [{"spec": spec.to_json(), "target": target, "resources": r.to_json()}
            for (spec, target, _), r in zip(work, results, strict=True)]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", default=".synth_cache", help="yosys results cache (default: .synth_cache)")
    parser.add_argument("--refit", action="store_true",
                        help="fit the stored runs again, no yosys (after a feature changed)")  # fmt: skip
    args = parser.parse_args()
    if args.refit:
        runs = json.loads(CALIBRATION_FILE.read_text())["runs"]
    else:
        runs = measure(CALIBRATION, CALIBRATION_TARGETS, Path(args.cache), args.jobs)
        for run in runs:
            run["resources"].pop("cells", None)
    models = {target: fit([r for r in runs if r["target"] == target]) for target in CALIBRATION_TARGETS}
    CALIBRATION_FILE.write_text(json.dumps({"yosys": version(), "runs": runs, "models": models}, indent=1) + "\n")
    for target, model in models.items():
        print(f"{target}: MAPE {model['mape']:.1%} in sample, {model['loo_mape']:.1%} leave-one-out, "
              f"{len(model['errors'])} designs")  # fmt: skip
    print(f"wrote {CALIBRATION_FILE}")


if __name__ == "__main__":
    main()
