"""Imports point down the layers only: numerics <- models, hw <- sim, synth <- bitfab."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
HIGHER_LAYERS = {
    "numerics": {"hw", "sim", "models", "synth", "bitfab"},
    "models": {"hw", "sim", "synth", "bitfab"},
    "hw": {"sim", "models", "synth", "bitfab"},
    "sim": {"models", "synth", "bitfab"},
    "synth": {"sim", "models", "bitfab"},
}
# numerics stays light at import: these may only be imported lazily, inside a function.
NUMERICS_LAZY_ONLY = {"torch", "amaranth", "cocotb", "brevitas", "matplotlib"}


def _imports(path: pathlib.Path) -> tuple[set[str], set[str]]:
    """(every absolute import anywhere, the module-level ones) as top-level package names."""
    tree = ast.parse(path.read_text(), filename=str(path))

    def names(nodes: list[ast.AST]) -> set[str]:
        found = set()
        for node in nodes:
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
        return found

    return names(list(ast.walk(tree))), names(list(tree.body))


@pytest.mark.parametrize("package", sorted(HIGHER_LAYERS))
def test_package_imports_only_lower_layers(package: str) -> None:
    offenders = {}
    for path in (ROOT / package).rglob("*.py"):
        anywhere, module_level = _imports(path)
        bad = anywhere & HIGHER_LAYERS[package]
        if package == "numerics":
            bad |= module_level & NUMERICS_LAZY_ONLY
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_layering_check_catches_an_upward_import(tmp_path: pathlib.Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("import numpy\nfrom hw import emit\n\ndef f():\n    import torch\n")
    anywhere, module_level = _imports(module)
    assert anywhere == {"numpy", "hw", "torch"} and module_level == {"numpy", "hw"}
