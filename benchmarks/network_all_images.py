"""Whole networks on one generated array with an output stage, on all 360 digits test images in
Verilator (`bitfab cosim network` runs a few by default).

    python benchmarks/network_all_images.py [--array 4x4] [--dataflow ws] [--formats int8_pow2,int8]

For each bundled MLP and CNN and each format: per layer, the hardware against numerics (bit-exact,
cycles measured = model) and against Brevitas' integers at the layer boundary (max |difference| in
LSBs, outputs that differ; the stage alone fed Brevitas' own inputs), then accuracy from the
hardware's last-layer codes next to Brevitas'. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import time
import warnings

import models
from bitfab.endtoend import parse_hardware
from bitfab.network import run_network
from bitfab.paths import cache_directory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--array", default="4x4")
    parser.add_argument("--dataflow", default="ws", choices=["ws", "os"])
    parser.add_argument("--formats", default="int8_pow2,int8")
    parser.add_argument("--images", type=int, default=360)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    split = models.digits()
    cache = cache_directory()
    hardware = parse_hardware(args.array, args.dataflow)
    images, labels = split.test_images[: args.images], split.test_labels[: args.images]
    for name in ("mlp", "cnn"):
        base = models.float_model(name, split, cache=cache / "models")
        for fmt in args.formats.split(","):
            model = models.quantized_model(name, fmt, base, split)
            started = time.perf_counter()
            run = run_network(name, model, fmt, images, labels, hardware, cache / "verilator",
                              cache / "bench_network" / f"{name}_{fmt}")  # fmt: skip
            verdict = "PASS" if run.passed else "FAIL"
            exact = "exact stages" if run.exact else "float scales"
            print(f"{verdict} {name} {fmt} ({exact}) on {run.hardware}: {run.images} images, {run.chunks} chunks, "
                  f"{time.perf_counter() - started:.0f} s")  # fmt: skip
            for r in run.layers:
                m, k, n = r.gemm
                print(f"  {r.layer:6} {m}x{k}x{n}  {r.stage}: bit-exact {r.bit_exact}, cycles {r.cycles:,} (model "
                      f"{r.model_cycles:,}), vs Brevitas max {r.brevitas_max_lsb:.3g} LSB, {r.brevitas_differing:,} "
                      f"of {r.outputs:,} differ; stage alone max {r.stage_max_lsb:.3g} LSB")  # fmt: skip
            print(f"  host: {'; '.join(run.host)}")
            print(f"  accuracy: hardware {run.hardware_accuracy:.2%}, Brevitas {run.brevitas_accuracy:.2%}, same "
                  f"prediction on {run.same_predictions} of {run.images}; {run.cycles_per_inference:,.0f} cycles and "
                  f"{run.energy_pj_per_inference:,.0f} pJ per inference")  # fmt: skip


if __name__ == "__main__":
    main()
