"""A user's model from a spec: `path/to/file.py:factory` (a function that returns the model, e.g.
after loading its own weights) or a QONNX `.onnx` file. The model is used as given."""

from __future__ import annotations

import importlib.util
import inspect
import sys
import warnings
from pathlib import Path
from typing import Any

from torch import nn

from ._discover import ModelError, first_line

SPEC_HELP = "a bundled name (mlp, cnn, transformer with --format; a2q{P}: the digits MLP with A2Q weights for a " \
    "P-bit accumulator, a2q_ref: with plain INT8 weights), path/to/file.py:factory (a function returning the model), " \
    "or a QONNX file model.onnx"  # fmt: skip


def load(spec: str) -> Any:
    """The `nn.Module` a `file.py:factory` spec returns, or a `QonnxModel` for a `.onnx` file."""
    if spec.endswith(".onnx"):
        from ._qonnx import QonnxModel

        return QonnxModel(Path(spec).absolute())
    file, _, factory = spec.rpartition(":")
    if not file.endswith(".py") or not factory.isidentifier():
        raise ValueError(f"--model {spec!r}: expected {SPEC_HELP}")
    path = Path(file).absolute()
    if not path.is_file():
        raise ValueError(f"--model {spec!r}: no such file {path}")
    try:
        module = _import(path)
    except Exception as error:  # the user's file: a user error with its cause, not an internal one
        raise ModelError(f"--model {spec!r}: importing {path.name} failed: {type(error).__name__}: "
                         f"{first_line(error)}") from error  # fmt: skip
    function = getattr(module, factory, None)
    if not callable(function):
        found = [name for name, value in vars(module).items()
                 if inspect.isfunction(value) and value.__module__ == module.__name__]  # fmt: skip
        raise ValueError(f"--model {spec!r}: {path.name} has no function {factory!r}; its functions: "
                         f"{', '.join(found) or 'none'}")  # fmt: skip
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = function()
    except Exception as error:
        raise ModelError(f"--model {spec!r}: {factory}() failed: {type(error).__name__}: {first_line(error)}") \
            from error  # fmt: skip
    if not isinstance(model, nn.Module):
        raise ValueError(f"--model {spec!r}: {factory}() returned {type(model).__name__}, not a torch.nn.Module")
    return model.eval()


def _import(path: Path) -> Any:
    """Import a user's file as a module; its own directory is importable while it loads."""
    name = f"bitfab_user_model_{abs(hash(str(path)))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ValueError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, str(path.parent))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(path.parent))
    return module
