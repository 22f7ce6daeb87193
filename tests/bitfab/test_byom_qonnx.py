"""Bring your own model as a QONNX file: stock-Brevitas zoo models (tests/bitfab/zoo.py) exported
with `brevitas.export.export_qonnx` and given to the CLI as `--model m.onnx` from a user's
directory: the layers listed with their formats, every layer PASSing all four verdicts on a 4x4
array in Verilator, and the formats read from the file equal to those read from the PyTorch model."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import models
from bitfab.cli import main
from models._qonnx import QonnxModel

from . import zoo

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from brevitas.export import export_qonnx

SPLIT = models.digits()
INPUTS, LABELS = SPLIT.test_images[:4], SPLIT.test_labels[:4]  # batch 4: the export's batch is 1

# factory -> its layers as `bitfab layers` lists them: (kind, GEMM per sample)
LAYERS = {
    "int8_tensor": [("linear", [1, 64, 32]), ("linear", [1, 32, 10])],
    "strided_conv": [("conv2d", [16, 9, 8]), ("linear", [1, 128, 10])],
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[nn.Module, Path]]:
    """Each zoo model (calibrated on the digits) and its QONNX export, made at batch 1."""
    out = {}
    for factory in LAYERS:
        model = getattr(zoo, factory)()
        path = tmp_path_factory.mktemp(factory) / "m.onnx"
        example = torch.from_numpy(SPLIT.test_images[:1])
        # the exporter warns (Brevitas, torch.onnx) and prints its progress: neither is the test's
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            export_qonnx(model, example, export_path=str(path))
        out[factory] = model, path
    return out


@pytest.fixture(params=list(LAYERS))
def user_onnx(request: pytest.FixtureRequest, exported: dict[str, tuple[nn.Module, Path]], tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> str:  # fmt: skip
    """A user's working directory: m.onnx, inputs and labels as .npy files; the factory's name."""
    monkeypatch.chdir(tmp_path)
    shutil.copy(exported[request.param][1], tmp_path / "m.onnx")
    np.save("x.npy", INPUTS)
    np.save("y.npy", LABELS)
    return request.param


def test_cli_layers_lists_the_qonnx_layers(user_onnx: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", "--model", "m.onnx", "--inputs", "x.npy", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["gemm_per_sample"]) for r in rows] == LAYERS[user_onnx]
    assert all(r["maps"] and r["reason"] is None for r in rows), rows
    assert all(r["input"].startswith("int8, ") and r["weight"].startswith("int8 ") for r in rows), rows


@pytest.mark.slow
def test_cli_cosim_model_passes_every_qonnx_layer(user_onnx: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cosim", "model", "--model", "m.onnx", "--inputs", "x.npy", "--labels", "y.npy", "--array", "4x4",
                 "-o", "out", "--cache-dir", str(Path(os.environ["BITFAB_CACHE"]))])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads(Path("out/report.json").read_text())
    assert report["passed"] and report["inputs"] == len(INPUTS) and report["refused"] == []
    expected = [(kind, gemm[1:]) for kind, gemm in LAYERS[user_onnx]]  # (K, N): M counts every input's rows
    assert [(layer["kind"], layer["gemm"][1:]) for layer in report["layers"]] == expected
    for layer in report["layers"]:
        verdicts = ("hardware_exact", "extraction_faithful", "within_bound", "predictions_equal", "passed")
        assert all(layer[v] for v in verdicts) and layer["failures"] == [], layer


@pytest.mark.parametrize("factory", list(LAYERS))
def test_qonnx_formats_equal_the_pytorch_models(factory: str, exported: dict[str, tuple[nn.Module, Path]]) -> None:
    model, path = exported[factory]
    qonnx = QonnxModel(path)
    theirs, ours = models.describe(model, INPUTS), qonnx.describe(INPUTS)
    assert [(i.kind, i.gemm, i.bias, i.mappable) for i in ours] == [
        (i.kind, i.gemm, i.bias, i.mappable) for i in theirs
    ]
    for name, torch_name in zip(qonnx.layers(), models.layers(model), strict=True):
        read, expected = qonnx.capture(name, INPUTS), models.capture(model, torch_name, INPUTS)
        for got, want in ((read.a, expected.a), (read.b, expected.b)):
            assert models.format_name(got.format) == models.format_name(want.format) == "int8"
            assert np.array_equal(got.codes, want.codes) and np.array_equal(got.scale, want.scale)
