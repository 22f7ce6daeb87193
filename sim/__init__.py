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
    "operand_pairs": "_golden",
    "GemmReport": "_gemm",
    "cosim_gemm": "_gemm",
    "cosim_bitserial": "_gemm",
    "expected_gemm": "_gemm",
    "in_units": "_gemm",
    "build": "_runner",
    "run": "_runner",
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
    "SimulationError",
    "ToolMissing",
    "build",
    "check_mac",
    "cosim_bitserial",
    "cosim_gemm",
    "expected_gemm",
    "expected_mac",
    "hardware_flags",
    "in_units",
    "lint",
    "log_excerpt",
    "operand_pairs",
    "port_name",
    "run",
    "setup_verilator",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'sim' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
