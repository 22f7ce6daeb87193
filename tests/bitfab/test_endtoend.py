# amaranth: UnusedElaboratable=no
"""Real layers of trained Brevitas models on generated hardware, end to end (the regression matrix).

Each case trains (float weights cached for the session), quantizes, extracts one layer's real
test-set inputs and runs them in Verilator: the hardware equals numerics bit for bit with the
modelled cycle count, every output is within gamma(K + 3) * sum |a b| of Brevitas' float32 output
(bitfab/endtoend.py says why), and the model with the hardware's output in the loop predicts
exactly what the Brevitas model predicts. The CNN cases take 8 images (512 im2col rows of 288).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from torch import nn

import models
from bitfab.endtoend import Hardware, LayerRun, check_mapping, run_layer

SPLIT = models.digits()


@pytest.fixture(scope="module")
def float_models() -> dict[str, nn.Module]:
    cache = Path(os.environ["BITFAB_CACHE"]) / "models"  # the weights the CLI's tests train and cache too
    return {name: models.float_model(name, SPLIT, cache=cache) for name in ("mlp", "cnn")}


def run(float_models: dict[str, nn.Module], name: str, fmt: str, layer: str, hardware: Hardware, images: int,
        tmp_path: Path) -> LayerRun:  # fmt: skip
    model = models.quantized_model(name, fmt, float_models[name], SPLIT)
    return run_layer(name, fmt, model, layer, SPLIT.test_images[:images], SPLIT.test_labels[:images], hardware,
                     Path(os.environ["BITFAB_CACHE"]) / "verilator", tmp_path)  # fmt: skip


MATRIX = [
    ("mlp", "int8", "fc1", Hardware("systolic", 8, 8, "ws"), 64),
    ("mlp", "fp8_e4m3", "fc2", Hardware("systolic", 4, 4, "os"), 64),
    ("mlp", "mxfp4", "fc1", Hardware("systolic", 4, 4, "ws"), 32),
    ("mlp", "ovp4", "fc1", Hardware("systolic", 4, 4, "ws"), 64),
    ("mlp", "int4_a8", "fc1", Hardware("bitserial", 8, 4), 32),
    ("cnn", "int8", "conv2", Hardware("systolic", 4, 4, "ws"), 8),
    ("cnn", "mxfp8_e4m3", "conv2", Hardware("systolic", 4, 4, "ws"), 8),
]


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt", "layer", "hardware", "images"), MATRIX, ids=[f"{c[0]}-{c[1]}" for c in MATRIX])
def test_layer_on_hardware_matches_numerics_and_brevitas(float_models: dict[str, nn.Module], name: str, fmt: str,
                                                         layer: str, hardware: Hardware, images: int,
                                                         tmp_path: Path) -> None:  # fmt: skip
    result = run(float_models, name, fmt, layer, hardware, images, tmp_path)
    assert result.bit_exact, result.first_mismatch
    assert result.cycles == result.model_cycles
    assert (result.within_bound and result.max_deviation > 0) or fmt.startswith("mx")
    assert result.predictions_equal and result.hil_accuracy == result.brevitas_accuracy
    assert result.gemm[0] == images * (64 if name == "cnn" else 1)


def test_the_hardware_output_really_is_in_the_loop(float_models: dict[str, nn.Module], tmp_path: Path) -> None:
    """The replacement path changes the predictions when the layer output is wrong (so a passing
    hardware-in-the-loop check is not the model ignoring the hardware)."""
    from bitfab.endtoend import _logits

    model = models.quantized_model("mlp", "int8", float_models["mlp"], SPLIT)
    images = SPLIT.test_images[:32]
    zeros = np.zeros((32, 64))
    assert not np.array_equal(_logits(model, images).argmax(1), _logits(model, images, "fc1", zeros).argmax(1))


@pytest.mark.parametrize(
    ("fmt", "kind", "hardware", "message"),
    [
        ("fp8_e4m3", "linear", Hardware("bitserial", 8, 4), "the bit-serial unit takes signed INT activations"),
        ("mxfp4", "linear", Hardware("bitserial", 8, 4), r"\(weight-only formats: int4_a8, int2_a8, fp4_e2m1_a8\)"),
        ("ovp4", "linear", Hardware("systolic", 4, 4, "os"), "ovp4 activations pair along K"),
        ("int8", "attention", Hardware("systolic", 4, 4), "layer kind 'attention' does not map"),
        ("posit16_1", "linear", Hardware("systolic", 4, 4), "no Brevitas quantizer for 'posit16_1'"),
    ],
)
def test_unmappable_combinations_fail_before_simulation(fmt: str, kind: str, hardware: Hardware, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_mapping(fmt, kind, hardware)


@pytest.mark.parametrize(
    ("name", "fmt", "layer", "message"),
    [
        ("cnn", "mxfp8_e4m3", "conv1", "has 1 input channels: mxfp8_e4m3 blocks along the channels"),
        ("cnn", "ovp4", "conv2", "convolutions are not mapped for ovp4"),
        ("cnn", "posit8_2", "conv2", "posit8_2 activations take one scale per row"),
        ("mlp", "int8", "fc3", "layer 'fc3' is not a quantized layer of this model; available: fc1, fc2"),
    ],
)
def test_unmappable_layers_fail_before_simulation(float_models: dict[str, nn.Module], name: str, fmt: str,
                                                  layer: str, message: str, tmp_path: Path) -> None:  # fmt: skip
    with pytest.raises(ValueError, match=message):
        run(float_models, name, fmt, layer, Hardware("systolic", 4, 4), 2, tmp_path)
    assert not (tmp_path / "chunk0").exists()
