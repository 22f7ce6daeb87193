"""The CLI's build cache (Verilator builds, synthesis runs, trained weights) for the whole suite:
.bitfab_cache/ at the repository root, shared by the pytest workers and kept between runs."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from amaranth.hdl import UnusedElaboratable

ROOT = Path(__file__).resolve().parents[1]


def pytest_configure() -> None:
    os.environ.setdefault("BITFAB_CACHE", str(ROOT / ".bitfab_cache"))


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow cases first: the two workers then share out the long ones early instead of one
    worker finishing a minutes-long case alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


def pytest_collection_finish() -> None:
    """What the imports made is kept for the session: frozen, the collector need not rescan it at
    every teardown below (0.19 s a collection with torch loaded, microseconds after freezing)."""
    gc.collect()
    gc.freeze()
    # Amaranth arms its never-elaborated warning at the process's first elaboration (before it, an
    # unused design likely means a crash); armed from the start, it fires the same way in any test order.
    UnusedElaboratable._MustUse__silence = False  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _collect_garbage_inside_the_test() -> Iterator[None]:
    """Objects on reference cycles (Amaranth components among them) are finalized when the cycle
    collector runs, which may be during any later test: an `UnusedElaboratable` warning, an error
    under `-W error`, would then fail an unrelated test on one run and not on the next. Collecting
    at each test's teardown pins such a failure on the test that left the object behind."""
    yield
    gc.collect()
