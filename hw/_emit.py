"""Verilog output: `emit(component, path)` and the lint waivers that go with it."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

# The only warnings `verilator --lint-only -Wall` raises on Amaranth output, and why they are fine:
# WIDTHEXPAND/WIDTHTRUNC: Amaranth sizes intermediate expressions itself; the widths are defined
#   by Amaranth's semantics and checked by simulation against numerics.
# UNUSEDSIGNAL: a generic generator slices fields some parameter sets leave unused.
# DECLFILENAME: the module name is chosen by the caller, not the file name.
# PROCASSINIT: every register carries an initial (FPGA power-on) value besides its reset.
# CASEINCOMPLETE: an FSM of 3 states uses 2 bits; the unused encoding keeps its value (unreachable).
LINT_WAIVERS = (
    "-Wno-WIDTHEXPAND",
    "-Wno-WIDTHTRUNC",
    "-Wno-UNUSEDSIGNAL",
    "-Wno-DECLFILENAME",
    "-Wno-PROCASSINIT",
    "-Wno-CASEINCOMPLETE",
)


def to_verilog(component: wiring.Component, name: str = "top") -> str:
    return str(verilog.convert(component, name=name, emit_src=False))


def emit(component: wiring.Component, path: str | Path, name: str = "top") -> Path:
    """Write the component as Verilog module `name` to `path` (parents created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_verilog(component, name))
    return out
