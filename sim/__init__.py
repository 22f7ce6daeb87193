"""cocotb + Verilator co-simulation of the generated hardware against numerics."""

from ._bank import DecoderBank, port_name
from ._golden import MacReport, check_mac, expected_mac, hardware_flags, operand_pairs
from ._runner import build, run
from ._tools import ToolMissing, lint, setup_verilator

__all__ = [
    "DecoderBank",
    "MacReport",
    "ToolMissing",
    "build",
    "check_mac",
    "expected_mac",
    "hardware_flags",
    "lint",
    "operand_pairs",
    "port_name",
    "run",
    "setup_verilator",
]
