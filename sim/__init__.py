"""cocotb + Verilator co-simulation of the generated hardware against numerics.

Exports load lazily: testbench modules (sim.tb_*) run inside the simulator and import only
`sim._tbio`, so importing the package must not pull in amaranth and numba.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DecoderBank": "_bank",
    "port_name": "_bank",
    "MacReport": "_golden",
    "check_mac": "_golden",
    "expected_mac": "_golden",
    "hardware_flags": "_golden",
    "operand_stream": "_golden",
    "MacStream": "_mac_stream",
    "play_mac": "_mac_player",
    "mac_stream": "_mac_stream",
    "extreme_pairs": "_mac_stream",
    "special_codes": "_mac_stream",
    "Testbench": "_testbench",
    "mac_testbench": "_testbench",
    "systolic_testbench": "_testbench",
    "GemmReport": "_gemm",
    "cosim_gemm": "_gemm",
    "cosim_bitserial": "_gemm",
    "expected_gemm": "_gemm",
    "in_units": "_gemm",
    "check_stage": "_requant",
    "cosim_requant": "_requant",
    "cosim_requant_bitserial": "_requant",
    "bitserial_lsb": "_requant",
    "expected_codes": "_requant",
    "stage_output": "_requant",
    "RoundReport": "_round_check",
    "RounderBank": "_round_check",
    "RounderLane": "_round_check",
    "cosim_rounders": "_round_check",
    "rounder_formats": "_round_check",
    "rounder_lanes": "_round_check",
    "build": "_runner",
    "run": "_runner",
    "primitive_sources": "_runner",
    "SimulationError": "_tools",
    "ToolMissing": "_tools",
    "log_excerpt": "_tools",
    "lint": "_tools",
    "setup_verilator": "_tools",
}

__all__ = [
    "DecoderBank",
    "GemmReport",
    "MacReport",
    "MacStream",
    "RoundReport",
    "RounderBank",
    "RounderLane",
    "SimulationError",
    "Testbench",
    "ToolMissing",
    "bitserial_lsb",
    "build",
    "check_mac",
    "check_stage",
    "cosim_bitserial",
    "cosim_gemm",
    "cosim_requant",
    "cosim_requant_bitserial",
    "cosim_rounders",
    "expected_codes",
    "expected_gemm",
    "expected_mac",
    "extreme_pairs",
    "hardware_flags",
    "in_units",
    "lint",
    "log_excerpt",
    "mac_stream",
    "mac_testbench",
    "operand_stream",
    "play_mac",
    "port_name",
    "primitive_sources",
    "rounder_formats",
    "rounder_lanes",
    "run",
    "setup_verilator",
    "special_codes",
    "stage_output",
    "systolic_testbench",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
