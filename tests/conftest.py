"""The CLI's build cache (Verilator builds, synthesis runs, trained weights) for the whole suite:
.bitfab_cache/ at the repository root, shared by the pytest workers and kept between runs."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure() -> None:
    os.environ.setdefault("BITFAB_CACHE", str(ROOT / ".bitfab_cache"))
