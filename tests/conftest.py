"""The CLI's build cache (Verilator builds, synthesis runs, trained weights) for the whole suite:
.bitfab_cache/ at the repository root, shared by the pytest workers and kept between runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure() -> None:
    os.environ.setdefault("BITFAB_CACHE", str(ROOT / ".bitfab_cache"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow cases first: the two workers then share out the long ones early instead of one
    worker finishing a minutes-long case alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
