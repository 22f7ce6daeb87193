# amaranth: UnusedElaboratable=no
"""Whole networks on one generated array with an output stage (bitfab/network.py): every layer in
Verilator in turn, the hardware's codes carried from layer to layer.

Power-of-two models (the bundled MLP and CNN in `int8_pow2`; a residual block of stock Brevitas
layers with FixedPoint quantizers and Int32Bias) must equal numerics bit for bit with the modelled
cycles *and* equal Brevitas' integers at every layer boundary. Float-scale INT8 models run the same
integer-only hardware: equal to numerics, and their deviation from Brevitas is reported and bounded.
The hardware cases share their maxima, so one Verilator build per dataflow serves them all.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import models
from bitfab.cli import main
from bitfab.endtoend import Hardware
from bitfab.network import NetworkRun, run_network

from . import zoo

SPLIT = models.digits()
BUILDS = Path(os.environ["BITFAB_CACHE"]) / "verilator"
MAXIMA = (288, 64, 256)  # K, N, M: the CNN's conv2 K, the widest N, 2 CNN images of 64 rows (with room)


@pytest.fixture(scope="module")
def pow2_models() -> dict[str, nn.Module]:
    cache = Path(os.environ["BITFAB_CACHE"]) / "models"
    return {name: models.quantized_model(name, "int8_pow2", models.float_model(name, SPLIT, cache=cache), SPLIT)
            for name in ("mlp", "cnn")}  # fmt: skip


def network(model: nn.Module, fmt: str | None, images: int, dataflow: str, tmp_path: Path,
            simulate: bool = True) -> NetworkRun:  # fmt: skip
    return run_network("model", model, fmt, SPLIT.test_images[:images], SPLIT.test_labels[:images],
                       Hardware("systolic", 4, 4, dataflow), BUILDS, tmp_path, simulate=simulate,
                       maxima=MAXIMA if simulate else None)  # fmt: skip


def assert_equal_to_brevitas(run: NetworkRun) -> None:
    assert run.exact and run.passed, run.summary()
    for record in run.layers:
        assert record.bit_exact and record.cycles == record.model_cycles, record
        assert record.brevitas_differing == 0 and record.brevitas_max_lsb == 0, record
    assert run.host_differing == 0 and run.same_predictions == run.images


@pytest.mark.parametrize(("name", "images", "layers"), [("mlp", 3, ["fc1", "fc2"]),
                                                        ("cnn", 2, ["conv1", "conv2", "fc"])])  # fmt: skip
def test_the_bundled_pow2_models_run_whole_on_hardware_equal_to_brevitas(pow2_models: dict[str, nn.Module],
                                                                         name: str, images: int, layers: list[str],
                                                                         tmp_path: Path) -> None:  # fmt: skip
    run = network(pow2_models[name], "int8_pow2", images, "ws", tmp_path)
    assert [r.layer for r in run.layers] == layers
    assert_equal_to_brevitas(run)
    assert run.simulated and run.cycles_per_inference > 0 and run.energy_pj_per_inference > 0
    assert run.layers[0].stage.startswith("bias, x 2**-") and "ReLU, to int8" in run.layers[0].stage
    if name == "cnn":  # the pooling between conv2 and fc runs on the host, on conv2's accumulator-unit output
        assert (
            "avg_pool2d 2x2, flatten" in run.host
            and "im2col for conv2 (kernel 3x3, stride 1x1, padding 1x1), on codes" in run.host
        )
        assert run.layers[1].stage == "bias, ReLU, accumulator units (int32) to the host"


def test_a_residual_block_of_stock_brevitas_layers_runs_as_hardware_segments(tmp_path: Path) -> None:
    run = network(zoo.residual_pow2(), None, 3, "os", tmp_path)
    assert [r.layer for r in run.layers] == ["embed", "fc_a", "fc_b", "head"]
    assert "residual add: embed + fc_b" in run.host
    assert_equal_to_brevitas(run)
    # the same hardware with float scales: still equal to numerics, and the run says it is not exact
    floats = network(zoo.residual(), None, 3, "os", tmp_path / "float")
    assert floats.passed and not floats.exact
    assert all(r.bit_exact and r.cycles == r.model_cycles for r in floats.layers)
    assert floats.layers[1].stage.startswith("bias, x ") and "/ 2**" in floats.layers[1].stage


@pytest.mark.parametrize("fmt", ["int8", "fp8_e4m3"])
def test_float_scale_deviation_from_brevitas_is_reported_and_bounded(fmt: str, tmp_path: Path) -> None:
    """The bundled float-scale INT8 and FP8 MLP and CNN on all 360 test images (numerics' golden
    model of the same hardware): one LSB (FP8: one code step) at most from the stage alone, and
    accuracy within one image."""
    cache = Path(os.environ["BITFAB_CACHE"]) / "models"
    for name in ("mlp", "cnn"):
        model = models.quantized_model(name, fmt, models.float_model(name, SPLIT, cache=cache), SPLIT)
        run = network(model, fmt, 360, "ws", tmp_path, simulate=False)
        assert not run.exact and run.passed
        requantized = [r for r in run.layers if f"to {fmt}" in r.stage]
        assert requantized and all(r.stage_max_lsb <= 1 for r in requantized), run.layers
        assert any(r.stage_max_lsb > 0 for r in requantized) or fmt != "int8"
        assert all(r.stage_max_lsb <= 1 for r in run.layers)  # host-bound: the bias rounded to whole units
        assert run.brevitas_accuracy is not None and run.hardware_accuracy is not None
        assert abs(run.hardware_accuracy - run.brevitas_accuracy) <= 1 / 360
        assert run.same_predictions >= 357


def test_an_fp8_network_runs_on_a_minifloat_stage_equal_to_numerics(tmp_path: Path) -> None:
    """The FP8 MLP in Verilator: fc1's stage rounds to FP8 E4M3 (fc2's input codes), fc2's to
    integers for the host, on one design; every layer equals numerics with the modelled cycles."""
    cache = Path(os.environ["BITFAB_CACHE"]) / "models"
    model = models.quantized_model("mlp", "fp8_e4m3", models.float_model("mlp", SPLIT, cache=cache), SPLIT)
    run = network(model, "fp8_e4m3", 3, "ws", tmp_path)
    assert run.design is not None and run.design.config.kind == "minifloat"
    assert run.hardware_ok and run.passed and not run.exact, run.summary()
    fc1, fc2 = run.layers
    assert "to fp8_e4m3 (fc2's input)" in fc1.stage and "(int32) to the host" in fc2.stage
    assert fc1.stage_max_lsb <= 1 and fc1.brevitas_max_lsb <= 1
    assert run.same_predictions == 3


def test_a_residual_block_of_stock_fp8_layers_reads_its_formats_from_the_quantizers(tmp_path: Path) -> None:
    run = network(zoo.residual_fp8(), None, 8, "ws", tmp_path, simulate=False)
    assert run.passed and not run.exact and run.hardware_ok, run.summary()
    assert "fp8_e4m3 x fp8_e4m3" in run.hardware and "to fp8_e4m3 (fc_b's input)" in run.layers[1].stage
    assert all(r.stage_max_lsb <= 1 for r in run.layers) and run.host_differing == 0


def test_cli_cosim_network_from_a_users_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """A user's model file and .npy inputs given by relative paths; the report lands in -o."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo.py").write_text(Path(zoo.__file__).read_text())
    np.save("x.npy", SPLIT.test_images[:5])
    np.save("y.npy", SPLIT.test_labels[:5])
    code = main(["cosim", "network", "--model", "zoo.py:residual_pow2", "--inputs", "x.npy", "--labels", "y.npy",
                 "--numerics-only", "--fmax", "125", "-o", "out"])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "PASS (bit-exact against numerics and Brevitas at every layer)" in printed
    assert "one inference alone: " in printed and "at 125.0 MHz (given with --fmax)" in printed
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["passed"] and report["images"] == 5 and len(report["layers"]) == 4
    assert report["latency_us"] == pytest.approx(report["latency_cycles"] / 125)
    assert report["latency_cycles"] > report["cycles_per_inference"]  # a batch shares weight loads
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "x.npy", "y.npy", "zoo.py"]


def test_a_program_that_is_not_the_forward_pass_fails_even_with_float_scales(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo.py").write_text(Path(zoo.__file__).read_text())
    np.save("x.npy", SPLIT.test_images[:4])
    code = main(["cosim", "network", "--model", "zoo.py:residual_norelu", "--inputs", "x.npy", "--numerics-only"])
    printed = capsys.readouterr().out
    assert code == 1 and "FAIL (fed Brevitas' own inputs, a stage differs from Brevitas by more than one LSB" in printed


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--model", "zoo.py:int8_tensor", "--inputs", "x.npy"], "TwoLayer has no hardware_program(net) method"),
        (["--model", "mlp", "--format", "mxfp8_e4m3"], "a whole-network run takes per-tensor activation scales"),
        (["--model", "mlp", "--format", "fp8_e4m3", "--bitserial"], "the bit-serial unit takes signed INT activations"),
        (["--model", "mlp", "--fmax", "0"], "argument --fmax: must be a positive number, got '0'"),
        (["--model", "mlp", "--fmax", "90", "--pnr"], "give --fmax MHZ or --pnr (measure it), not both"),
        (["--model", "mlp", "--bitserial", "--dataflow", "os"], "--dataflow os is a systolic array's; the bit-serial"),
        (["--model", "zoo.py:residual", "--inputs", "x.npy", "--format", "int8"], "--format is for a bundled model"),
        (["--model", "zoo.py:residual"], "--inputs X.npy is required for a user's model"),
        (
            ["--model", "zoo.py:misnamed", "--inputs", "x.npy"],
            "the hardware program names layer 'fc9'; the model's quantized layers: embed, fc_a, fc_b, head",
        ),
    ],
)
def test_cli_cosim_network_refusals(argv: list[str], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    (tmp_path / "zoo.py").write_text(Path(zoo.__file__).read_text())
    np.save("x.npy", SPLIT.test_images[:2])
    assert main(["cosim", "network", *argv, "--images", "2", "--numerics-only", "-o", "out"]) != 0
    assert re.search(re.escape(message), capsys.readouterr().err)
    assert not (tmp_path / "out").exists()


def test_a_weight_only_model_runs_on_the_bit_serial_unit_behind_the_same_stage(tmp_path: Path) -> None:
    """The MLP with INT4 weights (per channel) and INT8 activations (float scales) on
    hw.RequantBitSerial: equal to numerics with its cycle model at every layer; Brevitas within
    one LSB at the requantized boundary, predictions the same."""
    cache = Path(os.environ["BITFAB_CACHE"]) / "models"
    model = models.quantized_model("mlp", "int4_a8", models.float_model("mlp", SPLIT, cache=cache), SPLIT)
    run = run_network("mlp", model, "int4_a8", SPLIT.test_images[:3], SPLIT.test_labels[:3],
                      Hardware("bitserial", 8, 4), BUILDS, tmp_path)  # fmt: skip
    assert run.passed and not run.exact and run.energy_pj_per_inference is None
    assert all(r.bit_exact and r.cycles == r.model_cycles for r in run.layers), run.layers
    assert run.layers[0].stage_max_lsb <= 1 and run.layers[1].stage_max_lsb <= 1
    assert run.same_predictions == 3 and "bit-serial 4 PEs x 8 lanes" in run.hardware
