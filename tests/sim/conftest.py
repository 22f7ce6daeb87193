"""Verilator builds persist in .sim_build/ at the repository root (a cache keyed by the Verilog)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def build_root() -> Path:
    return ROOT / ".sim_build"
