"""Verilator builds persist in the suite's build cache (tests/conftest.py), keyed by the design:
the same directory the CLI's tests build into, so a design both use is built once."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def build_root() -> Path:
    return Path(os.environ["BITFAB_CACHE"]) / "verilator"
