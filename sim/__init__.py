"""cocotb + Verilator co-simulation of the generated hardware against numerics."""

from ._bank import DecoderBank, port_name
from ._runner import build, run
from ._tools import ToolMissing, lint, setup_verilator

__all__ = ["DecoderBank", "ToolMissing", "build", "lint", "port_name", "run", "setup_verilator"]
