"""The line budget of scripts/loc.py holds for every source file."""

import importlib.util
import pathlib

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_every_source_file_is_within_the_line_budget() -> None:
    spec = importlib.util.spec_from_file_location("loc", ROOT / "scripts" / "loc.py")
    assert spec and spec.loader
    loc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loc)
    counts = loc.line_counts(ROOT)
    assert "numerics/_format.py" in counts
    assert {name: n for name, n in counts.items() if n > loc.MAX_LINES} == {}
