"""Verilog output: `emit(component, path)` and the lint waivers that go with it."""

from __future__ import annotations

from pathlib import Path

from amaranth.back import verilog
from amaranth.lib import wiring

# Amaranth's Verilog backend sizes intermediate expressions its own way; Verilator's -Wall then
# flags width changes that are intended (Amaranth semantics define them), and signals that a
# generic generator declares but a particular parameter set leaves unused.
LINT_WAIVERS = ("-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL", "-Wno-DECLFILENAME")


def to_verilog(component: wiring.Component, name: str = "top") -> str:
    return str(verilog.convert(component, name=name, emit_src=False))


def emit(component: wiring.Component, path: str | Path, name: str = "top") -> Path:
    """Write the component as Verilog module `name` to `path` (parents created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(to_verilog(component, name))
    return out
