# amaranth: UnusedElaboratable=no
"""Bring your own model: the zoo of stock-Brevitas models (tests/bitfab/zoo.py) end to end on a
4x4 array in Verilator, every mappable layer PASSing all four verdicts, the rest refused with a
reason; the verdicts fail when the extraction or the output is wrong; the CLI as a user runs it."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import models
from bitfab.byom import TorchSource, extraction_failures, run_layer
from bitfab.cli import main
from bitfab.endtoend import Hardware

from . import zoo

SPLIT = models.digits()
INPUTS, LABELS = SPLIT.test_images[:4], SPLIT.test_labels[:4]
WS = Hardware("systolic", 4, 4, "ws")
BUILDS = Path(os.environ["BITFAB_CACHE"]) / "verilator"
ZOO = Path(zoo.__file__)

# (factory, the formats discovery must read, layer by layer: input, weight)
CASES = {
    "int8_tensor": [("int8", "int8"), ("int8", "int8")],
    "int8_channel_relu": [("int8", "int8"), ("uint8", "int8")],
    "shifted_uint8": [("uint8", "int8"), ("uint8", "int8")],
    "int4_channel": [("int4", "int4"), ("int4", "int4")],
    "fp8_ocp_tensor": [("fp8_e4m3", "fp8_e4m3")] * 2,
    "fp8_ocp_channel": [("fp8_e4m3", "fp8_e4m3")] * 2,
    "fp8_brevitas": [("fp8_e4m3_finite", "fp8_e4m3_finite")] * 2,
    "fixed_point": [("int8", "int8")] * 2,
    "strided_conv": [("int8", "int8")] * 2,
    "residual": [("int8", "int8")] * 4,
}


def _formats(product: models.Product) -> tuple[str, str]:
    return models.format_name(product.a.format), models.format_name(product.b.format)


@pytest.mark.parametrize("factory", list(CASES))
def test_formats_are_read_from_the_quantizers(factory: str) -> None:
    model = getattr(zoo, factory)()
    names = models.layers(model)
    assert [_formats(models.capture(model, name, INPUTS)) for name in names] == CASES[factory]
    for name in names:
        product = models.capture(model, name, INPUTS)
        assert product.bias is not None, "every zoo layer has a bias"
        assert extraction_failures(product, None, 0) == []


def test_zero_points_and_unsigned_codes_are_not_clipped() -> None:
    product = models.capture(zoo.shifted_uint8(), "fc1", INPUTS)
    assert product.a.zero_point > 0 and "subtracted at the array edge" in product.a.description
    info = models.describe(zoo.shifted_uint8(), INPUTS[:1])[0]
    assert info.formats == ("uint8", "int8") and info.zero_points == (product.a.zero_point, 0)
    values = product.a.decoded()
    assert values.min() < -64 and values.max() > 127  # code - zero point: beyond int8 and uint8 alike
    relu = models.capture(zoo.int8_channel_relu(), "fc2", INPUTS)
    assert relu.a.decoded().max() > 127  # unsigned codes above int8's range reach the array as uint8


def test_integer_bias_is_exact_in_accumulator_units() -> None:
    product = models.capture(zoo.int8_tensor(), "fc1", INPUTS)
    assert product.bias_codes is not None and "exact" in product.bias_description
    float_bias = models.capture(zoo.int8_channel_relu(), "fc1", INPUTS)
    assert float_bias.bias_codes is None and float_bias.bias_description.startswith("float")


def _run(model: Any, layer: str, tmp_path: Path, source: Any = None, inputs: np.ndarray = INPUTS) -> Any:
    source = source or TorchSource(model, "zoo")
    return run_layer(source, layer, inputs, LABELS[: len(inputs)], WS, BUILDS, tmp_path / layer)


RUNS = [(factory, layer) for factory, layers in {
    "int8_tensor": ["fc1", "fc2"], "int8_channel_relu": ["fc2"], "shifted_uint8": ["fc1"], "int4_channel": ["fc1"],
    "fp8_ocp_tensor": ["fc1"], "fp8_ocp_channel": ["fc2"], "fp8_brevitas": ["fc1"], "mxfp8": ["fc1"],
    "fixed_point": ["fc2"], "strided_conv": ["conv"], "residual": ["fc_b"], "wide_mlp": ["fc1"],
    "attention": ["attention.qk", "attention.av"]}.items() for layer in layers]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "layer"), RUNS, ids=[f"{f}-{layer}" for f, layer in RUNS])
def test_zoo_layer_passes_all_four_verdicts(factory: str, layer: str, tmp_path: Path) -> None:
    model = getattr(zoo, factory)()
    inputs = np.random.default_rng(0).standard_normal((2, 784)).astype(np.float32) if factory == "wide_mlp" else INPUTS
    verdict = _run(model, layer, tmp_path, inputs=inputs)
    assert verdict.failures == []
    assert verdict.hardware_exact and verdict.cycles == verdict.model_cycles
    assert verdict.extraction_faithful and verdict.within_bound and verdict.predictions_equal


def test_unmappable_layers_are_refused_with_the_reason() -> None:
    infos = {info.name: info for info in models.describe(zoo.grouped(), INPUTS[:1])}
    assert infos["conv"].mappable
    assert "groups=4" in str(infos["depthwise"].reason)
    weight_only = {info.name: info for info in models.describe(zoo.weight_only(), INPUTS[:1])}
    assert "not quantized" in str(weight_only["fc1"].reason) and weight_only["fc2"].mappable
    with pytest.raises(models.Unmappable, match="groups=4"):
        models.capture(zoo.grouped(), "depthwise", INPUTS)


class _Dropping:
    """A source whose extraction forgets the bias (or a scale): the verdicts must catch it."""

    def __init__(self, source: TorchSource, change: dict[str, Any]) -> None:
        self.source, self.change = source, change

    def __getattr__(self, name: str) -> Any:
        return getattr(self.source, name)

    def capture(self, layer: str, inputs: np.ndarray) -> models.Product:
        product = self.source.capture(layer, inputs)
        return dataclasses.replace(product, **{k: v(product) for k, v in self.change.items()})


@pytest.mark.slow
def test_verdicts_fail_when_the_extraction_or_the_output_is_wrong(tmp_path: Path) -> None:
    model = zoo.int8_channel_relu()
    source = TorchSource(model, "zoo")
    no_bias = _run(model, "fc1", tmp_path / "bias", _Dropping(source, {"bias": lambda p: None}))
    assert not no_bias.passed and any(f.startswith("(c)") for f in no_bias.failures)
    scaled = dataclasses.replace
    wrong_scale = _Dropping(source, {"b": lambda p: scaled(p.b, scale=p.b.scale * 2)})
    halved = _run(model, "fc1", tmp_path / "scale", wrong_scale)
    assert not halved.passed and any(f.startswith("(b)") for f in halved.failures)


@pytest.fixture()
def user_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user's working directory: inputs and labels as .npy files, the zoo next to them."""
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", INPUTS)
    np.save("y.npy", LABELS)
    (tmp_path / "zoo.py").write_text(ZOO.read_text())
    return tmp_path


def test_cli_layers_lists_formats_and_reasons(user_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["layers", "--model", "zoo.py:grouped", "--inputs", "x.npy", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["layer"], r["maps"]) for r in rows] == [("conv", True), ("depthwise", False)]
    assert rows[0]["gemm_per_sample"] == [64, 9, 4] and "groups=4" in rows[1]["reason"]
    assert rows[0]["formats"] == ["int8", "int8"] and rows[0]["zero_points"] == [0, 0]


@pytest.mark.slow
def test_cli_cosim_model_runs_every_mappable_layer(user_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cosim", "model", "--model", "zoo.py:int8_tensor", "--inputs", "x.npy", "--labels", "y.npy",
                 "--array", "4x4", "-o", "out", "--cache-dir", str(BUILDS.parent)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    report = json.loads((user_files / "out" / "report.json").read_text())
    assert report["passed"] and [layer["layer"] for layer in report["layers"]] == ["fc1", "fc2"]
    assert "PASS: 2 of 2 layers" in printed


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "zoo.py:nothing"], "has no function 'nothing'"),
    (["--model", "missing.py:build"], "no such file"),
    (["--model", "zoo.py:int8_tensor", "--format", "fp8_e4m3"], "does not match layer 'fc1'"),
    (["--model", "zoo.py:grouped", "--layer", "depthwise"], "groups=4"),
    (["--model", "zoo.py:int8_tensor", "--layer", "fc9"], "available: fc1, fc2"),
])  # fmt: skip
def test_cli_refuses_with_one_line_and_writes_nothing(user_files: Path, capsys: pytest.CaptureFixture[str],
                                                      argv: list[str], message: str) -> None:  # fmt: skip
    assert main(["cosim", "model", *argv, "--inputs", "x.npy", "-o", "out"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[")]  # not progress
    assert len(errors) == 1 and errors[0].startswith("bitfab: error:") and message in errors[0]
    assert not (user_files / "out").exists()


# conv "0" on one image (64 im2col rows) and the pointwise conv "2" (K = 32) share their designs with the zoo's
FLOAT_RUNS = [("float_cnn", "int8", "0"), ("float_cnn", "fp8_e4m3", "0"), ("float_cnn", "mxfp8_e4m3", "2")]


@pytest.mark.slow
@pytest.mark.parametrize(("factory", "fmt", "layer"), FLOAT_RUNS, ids=[f"{f}-{fmt}" for f, fmt, _ in FLOAT_RUNS])
def test_float_model_quantized_by_bitfab_maps_like_any_brevitas_model(factory: str, fmt: str, layer: str,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    model = models.quantize(getattr(zoo, factory)(), fmt, SPLIT.train_images[:128])
    verdict = _run(model, layer, tmp_path, inputs=INPUTS[:1] if factory == "float_cnn" else INPUTS)
    assert verdict.failures == []
    assert models.format_name(models.capture(model, layer, INPUTS).a.format) == fmt


def test_float_model_refuses_what_does_not_map() -> None:
    model = models.quantize(zoo.float_cnn(), "mxfp8_e4m3", SPLIT.train_images[:16])
    infos = {info.name: info for info in models.describe(model, INPUTS[:1])}
    assert "partial group" in str(infos["0"].reason)  # one input channel: a 9-element K in groups of 32
    assert infos["2"].mappable and infos["5"].mappable
    olive = models.quantize(zoo.float_cnn(), "ovp8", SPLIT.train_images[:16])
    assert "varies along the reduction axis" in str(models.describe(olive, INPUTS[:1])[0].reason)


def test_cli_accuracy_of_a_float_model_per_format(user_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["accuracy", "--model", "zoo.py:float_cnn", "--inputs", "x.npy", "--labels", "y.npy",
                 "--formats", "int8,mxfp4", "--json"]) == 0  # fmt: skip
    rows = json.loads(capsys.readouterr().out)
    assert [r["format"] for r in rows] == ["float", "int8", "mxfp4"]
    assert rows[1]["relative_output_error"] < rows[2]["relative_output_error"] < 0.5
    assert main(["accuracy", "--model", "zoo.py:int8_tensor", "--inputs", "x.npy"]) == 2  # already quantized


@pytest.mark.slow
def test_cli_cosim_float_model_with_a_format(user_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["cosim", "model", "--model", "zoo.py:float_mlp", "--format", "int8", "--inputs", "x.npy", "--labels",
                 "y.npy", "--array", "4x4", "-o", "out", "--cache-dir", str(BUILDS.parent), "--json"])  # fmt: skip
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["passed"] and [layer["layer"] for layer in report["layers"]] == ["1", "3"]


def test_shared_layers_are_refused_not_half_captured() -> None:
    (info,) = models.describe(zoo.shared(), INPUTS[:1])
    assert not info.mappable and "runs 2 times in one forward pass" in str(info.reason)


def test_bipolar_and_accumulator_aware_weights_are_read() -> None:
    model = zoo.binary_a2q()
    binary, a2q = (models.capture(model, name, INPUTS) for name in ("fc1", "fc2"))
    assert binary.b.description.startswith("bipolar") and set(np.unique(binary.b.decoded())) == {-1.0, 1.0}
    assert models.format_name(a2q.b.format) == "int8" and models.format_name(a2q.a.format) == "uint8"
    for product in (binary, a2q):
        assert extraction_failures(product, None, 0) == []


@pytest.mark.parametrize("fmt", ["ovp8", "posit8_1"])
def test_float_model_in_bitfabs_own_formats_is_read_faithfully(fmt: str) -> None:
    """OliVe and posit quantizers (bitfab's own: Brevitas has none) in the generic reader; the
    arrays run these formats in tests/bitfab/test_endtoend.py and tests/sim."""
    model = models.quantize(zoo.float_mlp(), fmt, SPLIT.train_images[:128])
    for layer in ("1", "3"):
        product = models.capture(model, layer, INPUTS)
        assert models.format_name(product.a.format) == fmt and extraction_failures(product, None, 0) == []


def test_user_code_errors_are_user_errors(user_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (user_files / "broken.py").write_text("def build(:\n")
    np.save("wrong.npy", np.zeros((2, 7), np.float32))
    cases = [(["--model", "broken.py:build", "--inputs", "x.npy"], "importing broken.py failed: SyntaxError"),
             (["--model", "zoo.py:int8_tensor", "--inputs", "wrong.npy"], "forward pass failed on inputs of shape"),
             (["--model", "zoo.py:int8_tensor", "--inputs", "x.npy", "--format", "int9x"], "unknown format 'int9x'"),
             (["--model", "zoo.py:int8_tensor", "--inputs", "x.npy", "--array", "4x0"], "between 2 and 64"),
             (["--model", "zoo.py:shifted_uint8", "--inputs", "x.npy", "--bitserial"], "no layer of the model runs on "
              "the bit-serial")]  # fmt: skip
    for argv, message in cases:
        assert main(["cosim", "model", *argv, "-o", "out"]) == 2, argv
        errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[")]
        assert len(errors) == 1 and message in errors[0], (argv, errors)
        assert not (user_files / "out").exists()


@pytest.mark.slow
def test_strict_fails_when_a_layer_is_not_verified(user_files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["cosim", "model", "--model", "zoo.py:grouped", "--inputs", "x.npy", "--images", "1", "--array", "4x4",
            "--cache-dir", str(BUILDS.parent), "--json"]  # fmt: skip
    assert main(argv) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["passed"] and not report["all_layers_verified"] and report["refused"][0]["layer"] == "depthwise"
    assert main([*argv, "--strict"]) == 1


BUNDLED = ["int8", "int8_channel", "int4", "fp8_e4m3", "fp6_e3m2", "mxfp4", "mxint8", "ovp4", "posit8_2", "int4_a8",
           "fp4_e2m1_a8", "fp5_e2m2_finite"]  # fmt: skip


@pytest.mark.parametrize("fmt", BUNDLED)
def test_bundled_formats_equal_what_the_reader_finds_in_the_model(fmt: str) -> None:
    from bitfab.endtoend import _faithful

    model = models.build("mlp", fmt)
    models.forward(model, INPUTS)
    assert _faithful(model, "fc1", INPUTS, models.extract(model, "fc1", INPUTS, fmt))


def test_a_typed_format_that_is_not_the_models_is_caught() -> None:
    from bitfab.endtoend import _faithful

    model = models.build("mlp", "int8")
    assert not _faithful(model, "fc1", INPUTS, models.extract(model, "fc1", INPUTS, "int4"))
