"""Co-simulation speed: Verilator build time and checked MACs per second under cocotb, with the
numerics golden model on the same stimulus for scale.

    python benchmarks/bench_cosim.py [--pairs 65536]

Builds go to a fresh temporary directory (so the build time is real, not a cache hit).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import hw
import numerics
import sim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=65536)
    args = parser.parse_args()
    print(f"{'PE':<22} {'build s':>8} {'sim s':>7} {'cycles/s':>10} {'MACs/s':>10} {'golden MACs/s':>14}")
    for a_name, b_name in (("int8", "int8"), ("fp8_e4m3", "fp8_e4m3")):
        pe = hw.MacPE(a_name, b_name, k_terms=16, pipeline=1)
        a, b = sim.operand_pairs(pe, exhaustive=False, random_pairs=args.pairs, seed=1)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            sim.build(pe, root / "build")
            built = time.perf_counter()
            stimulus = {"a": a, "b": b, "en": np.ones(a.size, np.uint8),
                        "clear": (np.arange(a.size) % 16 == 0).astype(np.uint8)}  # fmt: skip
            sim.run(pe, "sim.tb_mac", stimulus, root / "build", root / "run", parameters={"latency": pe.latency})
            simulated = time.perf_counter()
        golden_start = time.perf_counter()
        sim.expected_mac(a, b, 16, pe.a_format, pe.b_format, numerics.ExactAccumulator(), pe.acc_width)
        golden = time.perf_counter() - golden_start
        cycles = a.size + pe.latency
        sim_s = simulated - built
        print(f"{a_name + ' x ' + b_name:<22} {built - start:8.1f} {sim_s:7.1f} {cycles / sim_s:10.0f} "
              f"{a.size / sim_s:10.0f} {a.size / golden:14.0f}")  # fmt: skip


if __name__ == "__main__":
    main()
