"""The mutation check (scripts/mutate.py, `make mutate`) still plants every mutant: each site is
found exactly once in today's generator sources, and each names tests that exist. (Whether the
tests kill the mutants is what `make mutate` itself checks, in CI.)"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("mutate", ROOT / "scripts" / "mutate.py")
assert spec is not None and spec.loader is not None
mutate = importlib.util.module_from_spec(spec)
sys.modules["mutate"] = mutate  # its dataclasses look their module up
spec.loader.exec_module(mutate)


@pytest.mark.parametrize("mutant", mutate.MUTANTS, ids=[m.name for m in mutate.MUTANTS])
def test_every_mutant_applies_once_and_names_existing_tests(mutant: object, tmp_path: Path) -> None:
    source = ROOT / mutant.path  # type: ignore[attr-defined]
    (tmp_path / mutant.path).parent.mkdir(parents=True)  # type: ignore[attr-defined]
    (tmp_path / mutant.path).write_text(source.read_text())  # type: ignore[attr-defined]
    mutate.apply(mutant, tmp_path)
    assert (tmp_path / mutant.path).read_text() != source.read_text()  # type: ignore[attr-defined]
    for node in mutant.tests:  # type: ignore[attr-defined]
        path, _, name = node.partition("::")
        function = re.sub(r"\[.*\]$", "", name)
        assert f"def {function}(" in (ROOT / path).read_text(), node


def test_a_site_that_is_gone_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "hw").mkdir()
    (tmp_path / "hw" / "x.py").write_text("a = 1\na = 1\n")
    with pytest.raises(ValueError, match=r"^gone: hw/x.py holds its site 2 times, expected once: 'a = 1'$"):
        mutate.apply(mutate.Mutant("gone", "hw/x.py", "a = 1", "a = 2", (), ""), tmp_path)
