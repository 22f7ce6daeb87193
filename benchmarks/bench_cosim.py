"""Co-simulation speed and the cycle model.

1. A MAC PE driven one cycle per cocotb await: build time, checked MACs/s, and the numerics golden
   model on the same stimulus for scale.
2. An 8x8 INT8 systolic array running a whole GEMM through the stream player: verified MACs per
   second (simulation plus the numerics check; target >= 1,000,000), measured vs modelled cycles.
3. The cycle model next to SCALE-Sim 3.0.0's closed forms on a table of layer shapes.

    python benchmarks/bench_cosim.py [--pairs 65536] [--gemm 256x512x256]

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
    parser.add_argument("--gemm", default="256x512x256", metavar="MxKxN")
    args = parser.parse_args()
    print(f"{'PE':<22} {'build s':>8} {'sim s':>7} {'cycles/s':>10} {'MACs/s':>10} {'golden MACs/s':>14}")
    for a_name, b_name in (("int8", "int8"), ("fp8_e4m3", "fp8_e4m3")):
        pe = hw.MacPE(a_name, b_name, k_terms=16, pipeline=1)
        rng = np.random.default_rng(1)
        a, b = rng.integers(0, 256, args.pairs), rng.integers(0, 256, args.pairs)
        stream = sim.MacStream.segmented(a, b, 16)
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            start = time.perf_counter()  # the build, timed with a one-segment stream (what check_mac runs)
            first = sim.MacStream.segmented(a[:16], b[:16], 16)
            sim.play_mac(pe, first, pe.acc_width, True, pe.latency, root / "build", root / "first")
            built = time.perf_counter()
            sim.play_mac(pe, stream, pe.acc_width, True, pe.latency, root / "build", root / "run")
            simulated = time.perf_counter()
        golden_start = time.perf_counter()
        sim.expected_mac(stream, pe.a_format, pe.b_format, numerics.ExactAccumulator(), pe.acc_width)
        golden = time.perf_counter() - golden_start
        cycles = a.size + pe.latency
        sim_s = simulated - built
        print(f"{a_name + ' x ' + b_name:<22} {built - start:8.1f} {sim_s:7.1f} {cycles / sim_s:10.0f} "
              f"{a.size / sim_s:10.0f} {a.size / golden:14.0f}")  # fmt: skip
    array_gemm(args.gemm)
    cycle_table()


def array_gemm(shape: str) -> None:
    m, k, n = (int(v) for v in shape.split("x"))
    print(f"\n8x8 INT8 weight-stationary array (double-buffered), GEMM {m}x{k}x{n} = {m * k * n:,} MACs")
    print(
        f"{'build':<10} {'build s':>8} {'run s':>7} {'check s':>8} {'verified MACs/s':>16} {'cycles':>9} {'model':>9}"
    )
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (m, k)), rng.integers(0, 256, (k, n))
    array = hw.SystolicArray("int8", "int8", rows=8, cols=8, double_buffer=True, pipeline=1, k_max=k, m_max=m)
    for optimize in (False, True):
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp)
            start = time.perf_counter()
            sim.build(array, root / "build", harness=_harness(array), optimize=optimize)
            built = time.perf_counter()
            report = sim.cosim_gemm(array, a, b, root / "build", root / "run", optimize=optimize)
            done = time.perf_counter()
        assert report.passed, report.failure()
        check = done - built - report.seconds
        print(f"{'-O2/-Os' if optimize else '-O0':<10} {built - start:8.1f} {report.seconds:7.1f} {check:8.1f} "
              f"{report.macs / (done - built):16,.0f} {report.cycles:9} {report.model_cycles:9}")  # fmt: skip


def _harness(array: hw.SystolicArray) -> tuple[str, str]:
    from sim._player import harness_verilog

    cfg = array.config
    widths = [("a", cfg.rows * cfg.a_format.bits), ("b", cfg.cols * cfg.b_format.bits)]
    return "harness", harness_verilog(widths, cfg.cols * (cfg.acc_width + 3), True)


LAYERS = [  # (name, M, K, N): GEMM views of common layers
    ("fc 64x784x128", 64, 784, 128),
    ("conv3x3 28x28x32->64", 784, 288, 64),
    ("attn qk 128x64x128", 128, 64, 128),
    ("bert ffn 128x768x3072", 128, 768, 3072),
    ("resnet conv 3136x576x64", 3136, 576, 64),
]


def cycle_table() -> None:
    print("\nCycle model vs SCALE-Sim closed forms (8x8, pipeline 1; ours counts first and last cycle)")
    print(f"{'layer':<26} {'OS ours':>10} {'OS ss':>10} {'WS ours':>10} {'WS ss':>10} {'WS dbuf':>10} {'dbuf gain':>9}")
    for name, m, k, n in LAYERS:
        os_, ws, db = (hw.ArrayConfig.build("int8", "int8", rows=8, cols=8, dataflow=df, double_buffer=buffered,
                                            pipeline=1, k_max=k, m_max=m)
                       for df, buffered in (("os", False), ("ws", False), ("ws", True)))  # fmt: skip
        ours_ws, ours_db = hw.cycles(ws, m, k, n), hw.cycles(db, m, k, n)
        print(f"{name:<26} {hw.cycles(os_, m, k, n):10} {hw.scalesim_cycles('os', m, k, n, 8, 8):10} {ours_ws:10} "
              f"{hw.scalesim_cycles('ws', m, k, n, 8, 8):10} {ours_db:10} {ours_ws / ours_db:8.2f}x")  # fmt: skip


if __name__ == "__main__":
    main()
