# amaranth: UnusedElaboratable=no
"""A real layer end to end: a Brevitas INT8 MLP's first layer on an 8x8 systolic array in
Verilator, with real test-set activations. The hardware equals numerics bit for bit, equals
Brevitas within float32 rounding (the bound of tests/models/test_extract.py), and feeding its
output through the rest of the model gives Brevitas' predictions.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hw
import models
import sim


@pytest.mark.slow
def test_mlp_layer_on_the_array_matches_brevitas_and_keeps_the_predictions(build_root: Path, tmp_path: Path) -> None:
    split = models.digits()
    model = models.quantized_model("mlp", "int8", models.float_model("mlp", split, cache=tmp_path), split)
    images = split.test_images[:64]
    codes = models.extract(model, "fc1", images, "int8")
    array = hw.SystolicArray("int8", "int8", rows=8, cols=8, dataflow="ws", double_buffer=True, pipeline=1,
                             k_max=256, m_max=256)  # fmt: skip
    report = sim.cosim_gemm(array, codes.input_codes, codes.weight_codes, build_root, tmp_path / "run")
    assert report.passed, report.failure()
    assert report.result is not None
    hardware = report.result.astype(np.float64) * codes.input_scale * codes.weight_scale
    k = codes.input_codes.shape[1]
    u = 2.0**-24
    x = np.asarray(codes.input_codes.astype(np.int8), np.float64) * codes.input_scale
    w = np.asarray(codes.weight_codes.astype(np.int8), np.float64) * codes.weight_scale
    bound = (k + 3) * u / (1 - (k + 3) * u) * (np.abs(x) @ np.abs(w))
    assert np.all(np.abs(hardware - codes.brevitas_output) <= bound)
    # Hardware in the loop: the array's fc1 (plus the float bias) feeds the rest of the Brevitas model.
    with torch.no_grad():
        hidden = torch.relu(torch.from_numpy(hardware.astype(np.float32)) + model.fc1.bias)
        ours = model.fc2(hidden).argmax(dim=1).numpy()
        theirs = model(torch.from_numpy(images)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(ours, theirs)
