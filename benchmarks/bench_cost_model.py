"""The analytic LUT model against yosys, per design, with its MAPE (in sample, leave-one-out, and
on the held-out designs the fit never saw); what the output stage costs per lane; FINN-R's analytic
model on the same INT MAC PEs for comparison (its per-lane multiplier + accumulator formula, x1.1).

    python benchmarks/bench_cost_model.py            # from synth/data/calibration.json
    python -m synth.calibrate && python benchmarks/bench_cost_model.py   # rerun yosys first
    python -m synth.fmax                                                  # place and route the Fmax set again

Accuracy goal (the cost issue): MAPE <= 10% in LUTs over >= 20 designs on ECP5 and on Xilinx 7;
with DSPs (issue 17): within 10% in sample on the demo's family (INT8 WS double-buffered arrays).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

import synth
from synth.cost import _measured, calibration, predict
from synth.fmax import fmax_model


def finn_r_luts(bits_w: int, bits_a: int, acc_bits: int) -> float:
    width = bits_w + bits_a
    return 1.1 * ((2 * math.ceil(width / 6) - 1) * width + acc_bits)


def main() -> None:
    data = calibration()
    print(f"yosys: {data['yosys']}")
    for target, dsp in (("ecp5", False), ("xilinx7", False), ("ecp5", True)):
        name = target + ("+dsp" if dsp else "")
        runs = [r for r in data["runs"] if r["target"] == target and bool(r.get("dsp")) == dsp]
        held = [r for r in runs if r.get("held_out")]
        runs = [r for r in runs if not r.get("held_out")]
        loo = {e["design"]: e["leave_one_out"] for e in data["models"][name]["errors"]}
        unit = "LUT4 + 2 x CCU2C" if target == "ecp5" else "LUTs"
        kind = "DSP inference on (multipliers <= 18 x 18 in MULT18X18D)" if dsp else "LUT-only multipliers"
        print(f"\n{name}: {unit}, yosys ({kind}) vs the cost model")
        print(f"{'design':<52} {'yosys':>7} {'model':>7} {'error':>7} {'leave-one-out':>14}")
        errors, loo_errors = [], []
        for run in runs:
            spec = synth.DesignSpec(**run["spec"])
            measured = _measured(run, "lut_equivalents")
            model = predict(spec, target, dsp=dsp)["lut_equivalents"]
            errors.append(abs(model / measured - 1))
            loo_errors.append(abs(loo[spec.label()] / measured - 1))
            print(f"{spec.label():<52} {measured:7.0f} {model:7.0f} {model / measured - 1:+7.1%} "
                  f"{loo[spec.label()] / measured - 1:+14.1%}")  # fmt: skip
        print(f"MAPE {np.mean(errors):.1%} over {len(runs)} designs (leave-one-out {np.mean(loo_errors):.1%}); "
              "goal <= 10%")  # fmt: skip
        held_errors = []
        for run in held:
            spec = synth.DesignSpec(**run["spec"])
            measured, model = _measured(run, "lut_equivalents"), predict(spec, target, dsp=dsp)["lut_equivalents"]
            held_errors.append(abs(model / measured - 1))
            print(f"held out: {spec.label():<42} {measured:7.0f} {model:7.0f} {model / measured - 1:+7.1%}")
        if held:
            print(f"held-out MAPE {np.mean(held_errors):.1%} over {len(held)} designs (never fitted)")
        if dsp:
            continue
        bare = synth.DesignSpec("array", "int8", "int8", 4, 4, "ws", True)  # the stage's features ignore the dataflow
        staged = dataclasses.replace(bare, output_stage=True)
        lane = (predict(staged, target)["lut_equivalents"] - predict(bare, target)["lut_equivalents"]) / 4
        print(f"output stage (int32 codes, 32-bit bias, 16-bit multiplier, 64 channels) on a 4x4 int8 exact array: "
              f"{lane:,.0f} LUT eq. per lane, its share of the controller included")  # fmt: skip
    fmax = fmax_model()
    print("\nthe Fmax model (synth.fmax) on routed designs, per target (goal: >= 15 designs; error reported):")
    for target, model in fmax["models"].items():
        held = "; ".join(f"held out {e['design']}: {e['measured']:.1f} MHz, model {e['predicted']:.1f}"
                         for e in model["held_out"])  # fmt: skip
        print(f"  {target:<6} {model['designs']} designs, Fmax MAPE {model['mape']:.1%} in sample, "
              f"{model['loo_mape']:.1%} leave-one-out" + (f"; {held}" if held else ""))  # fmt: skip
    print("\nFINN-R's model on the INT MAC PEs (Xilinx 7 LUTs):")
    finn, ours = [], []
    for run in (r for r in data["runs"] if r["target"] == "xilinx7" and r["spec"]["kind"] == "pe"):
        spec = synth.DesignSpec(**run["spec"])
        integer = spec.a.startswith("int") and spec.b.startswith("int")
        if not (integer and spec.accumulator.startswith(("exact", "int"))):
            continue  # FINN-R models integer MACs with integer accumulators
        cfg = spec.config()
        estimate = finn_r_luts(cfg.a_format.bits, cfg.b_format.bits, cfg.acc_width)
        measured = run["resources"]["luts"]
        finn.append(abs(estimate / measured - 1))
        ours.append(abs(predict(spec, "xilinx7")["lut_equivalents"] / measured - 1))
        print(f"  {spec.label():<30} yosys {measured:5d}  FINN-R {estimate:6.0f} ({estimate / measured - 1:+.0%})")
    print(f"MAPE on these: FINN-R {np.mean(finn):.1%}, bitfab {np.mean(ours):.1%}")


if __name__ == "__main__":
    main()
