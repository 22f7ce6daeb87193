"""The analytic FPGA cost model: resources from format parameters, without running synthesis.

LUT equivalents, carry cells and flip-flops are each a non-negative combination of the design features of
`synth._designs.features` (multiplier partial-product bits, aligner shift stages, accumulator and
partial-sum widths, edge decoders, fold controller, output accumulators, a per-PE constant; the
output stage's multiplier, lane logic, parameter memory and controller), with coefficients per target
fitted against yosys by `python -m synth.calibrate` and stored in synth/data/calibration.json, with
the errors on held-out designs the fit never saw. The fit minimizes relative error (the rows are
weighted by 1/y), so small PEs count as much as 8x8 arrays. DSP blocks are counted, not fitted: one
per multiplier of <= 18 x 18 bits when DSPs are used, and 18 x 18 pieces of each output-stage
product (then those multiplier features drop out of the LUTs). Designs with DSPs have their own
coefficients where a target was calibrated with them (`ecp5+dsp`: yosys packs adders and registers
around a DSP differently from a LUT multiplier's, so the LUT-only fit over-prices them by ~50%).
LUT equivalents are what the accuracy goal is measured on: LUT4 + 2 x CCU2C on ECP5 (a carry cell
occupies two LUT4s of a slice; yosys trades one for the other from design to design), the LUT
count on Xilinx 7 (CARRY4s sit beside the LUTs); `luts` is the equivalents minus the carry LUTs.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import numpy as np

from ._designs import STAGE_FEATURES, DesignSpec, features

CALIBRATION_FILE = Path(__file__).parent / "data" / "calibration.json"
FEATURES = ("pe", "multiplier", "aligner", "accumulator", "float_pe", "specials", "decoders", "control", "output",
            "weights", "mx_shift", "float_add", "bs_lane", "bs_pe", "bs_unit", *STAGE_FEATURES)  # fmt: skip
DSP_FEATURES = (*FEATURES, "array", "ws_rows", "dsp_pack")  # the DSP fit's: see synth._designs._dsp_mode_features
QUANTITIES = ("lut_equivalents", "carry", "ffs")


def _row(spec: DesignSpec, dsp: bool = False) -> np.ndarray:
    """The features (DSP_FEATURES with `dsp`, where the multipliers that become DSP blocks count
    zero LUTs)."""
    f = features(spec)
    gone = spec.dsp_features() if dsp else ()
    return np.array([0.0 if name in gone else f[name] for name in (DSP_FEATURES if dsp else FEATURES)],
                    dtype=np.float64)  # fmt: skip


def _nnls_relative(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    from scipy.optimize import nnls

    weight = 1.0 / np.maximum(y, 1.0)
    coefficients, _ = nnls(x * weight[:, None], y * weight)
    return coefficients


def fit(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Coefficients per quantity from measured runs ({"spec", "resources"}), with the LUT errors:
    in sample, leave-one-out, and on the runs marked "held_out" (never fitted)."""
    held = [run for run in runs if run.get("held_out")]
    runs = [run for run in runs if not run.get("held_out")]
    specs = [DesignSpec(**run["spec"]) for run in runs]
    dsp = any(run.get("dsp", False) for run in runs)
    if any(run.get("dsp", False) != dsp for run in [*runs, *held]):
        raise ValueError("fit one model on runs with DSPs or on runs without, not both")
    x = np.stack([_row(spec, dsp) for spec in specs])
    model: dict[str, Any] = {"features": list(DSP_FEATURES if dsp else FEATURES)}
    for quantity in QUANTITIES:
        y = np.array([_measured(run, quantity) for run in runs], dtype=np.float64)
        model[quantity] = _nnls_relative(x, y).tolist()
    luts = np.array([_measured(run, "lut_equivalents") for run in runs], dtype=np.float64)
    predicted = x @ np.array(model["lut_equivalents"])
    loo = np.array([
        x[i] @ _nnls_relative(np.delete(x, i, axis=0), np.delete(luts, i)) for i in range(len(runs))
    ])  # fmt: skip
    model["errors"] = [{"design": spec.label(), "measured": int(m), "predicted": round(float(p), 1),
                        "leave_one_out": round(float(q), 1)}
                       for spec, m, p, q in zip(specs, luts, predicted, loo, strict=True)]  # fmt: skip
    model["mape"] = float(np.mean(np.abs(predicted - luts) / luts))
    model["loo_mape"] = float(np.mean(np.abs(loo - luts) / luts))
    model["held_out"] = []
    for run in held:
        spec, measured = DesignSpec(**run["spec"]), _measured(run, "lut_equivalents")
        guess = float(_row(spec, dsp) @ np.array(model["lut_equivalents"]))
        model["held_out"].append({"design": spec.label(), "measured": int(measured), "predicted": round(guess, 1)})
    errors = [abs(e["predicted"] / e["measured"] - 1) for e in model["held_out"]]
    model["held_out_mape"] = float(np.mean(errors)) if errors else None
    return model


def _measured(run: dict[str, Any], quantity: str) -> float:
    resources = run["resources"]
    if quantity == "lut_equivalents":  # an ECP5 CCU2C occupies two LUT4s; Xilinx CARRY4s sit beside LUTs
        return float(resources["luts"] + (2 * resources["carry"] if run["target"] == "ecp5" else 0))
    return float(resources[quantity])


def run_key(spec: DesignSpec, target: str, dsp: bool) -> str:
    """Identifies a stored measurement (calibration or Fmax run): the design, its target, DSPs on."""
    return json.dumps([spec.to_json(), target, dsp], sort_keys=True)


def stored_run_key(run: dict[str, Any]) -> str:
    return run_key(DesignSpec(**run["spec"]), run["target"], run.get("dsp", False))


@functools.cache
def stored_model(path: Path, what: str, remedy: str) -> dict[str, Any]:
    """A fitted model stored under synth/data (the calibration, the Fmax model), read once."""
    if not path.exists():
        raise FileNotFoundError(f"no {what} at {path}; run {remedy}")
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def calibration() -> dict[str, Any]:
    return stored_model(CALIBRATION_FILE, "cost model calibration", "python -m synth.calibrate")


def predict(spec: DesignSpec, target: str = "ecp5", dsp: bool = False) -> dict[str, float]:
    """Predicted LUT equivalents, LUTs, carry cells, flip-flops and DSP blocks of `spec`. A design
    with ECP5 DSP registers (`dsp_registers`) is priced as the one whose `*` yosys maps: the same
    logic, with the product registers the DSP now holds still counted as flip-flops."""
    models = calibration()["models"]
    if spec.dsp_pack and not dsp:
        raise ValueError(f"{spec.label()} puts two products on each DSP multiplier: predict it with dsp=True")
    if spec.dsp_registers and (not dsp or target != "ecp5"):
        raise ValueError(f"{spec.label()} instantiates ECP5 MULT18X18Ds: predict it for ecp5 with dsp=True")
    if target not in models:
        raise ValueError(f"the cost model is calibrated for {', '.join(m for m in models if '+' not in m)}, "
                         f"not {target!r}")  # fmt: skip
    dsp_fit = dsp and f"{target}+dsp" in models
    model = models[f"{target}+dsp"] if dsp_fit else models[target]
    values = features(spec)
    known = model["features"]
    missing = [name for name in (DSP_FEATURES if dsp_fit else FEATURES) if name not in known and values[name]]
    if missing:
        raise ValueError(f"the cost model's calibration has no {', '.join(missing)} feature, which {spec.label()} "
                         "needs: run python -m synth.calibrate")  # fmt: skip
    row = np.array([values[name] for name in known], dtype=np.float64)
    dsps = spec.dsp_blocks() if dsp else 0
    for name in spec.dsp_features() if dsp else ():  # those multipliers are DSP blocks now
        row[known.index(name)] = 0.0
    out = {quantity: float(row @ np.array(model[quantity])) for quantity in QUANTITIES}
    out["luts"] = out["lut_equivalents"] - (2 * out["carry"] if target == "ecp5" else 0.0)
    out["dsps"] = float(dsps)
    return out
