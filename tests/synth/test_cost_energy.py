"""The analytic cost model against the yosys runs stored in synth/data/calibration.json (measured
by `python -m synth.calibrate`), and the energy model against its anchors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import synth
from hw import ArrayConfig
from synth.cost import CALIBRATION_FILE, FEATURES, _measured, _row, fit, predict
from synth.energy import SCALING, add_pj, gemm_energy, mac_pj, mult_pj

RUNS = json.loads(CALIBRATION_FILE.read_text())["runs"]


@pytest.mark.parametrize("target", ["ecp5", "xilinx7"])
def test_lut_model_is_within_ten_percent_of_yosys(target: str) -> None:
    """Recomputed here from the stored measurements, not read from the stored summary."""
    runs = [r for r in RUNS if r["target"] == target]
    assert len(runs) >= 20
    kinds = {r["spec"]["a"] for r in runs}
    assert {"int2", "int8", "fp4_e2m1", "fp8_e4m3", "posit8_2", "mxfp4", "ovp4"} <= kinds
    predicted = [predict(synth.DesignSpec(**r["spec"]), target)["lut_equivalents"] for r in runs]
    errors = [abs(p / _measured(r, "lut_equivalents") - 1) for p, r in zip(predicted, runs, strict=True)]
    assert np.mean(errors) <= 0.10  # LUT4 + 2 x CCU2C on ECP5, LUTs on Xilinx 7


def test_fit_recovers_known_coefficients() -> None:
    specs = [synth.DesignSpec(**r["spec"]) for r in RUNS if r["target"] == "ecp5"]
    truth = np.arange(1.0, len(FEATURES) + 1)
    runs = [{"spec": s.to_json(), "target": "xilinx7",
             "resources": {q: float(_row(s) @ truth) for q in ("luts", "carry", "ffs")}} for s in specs]  # fmt: skip
    model = fit(runs)
    np.testing.assert_allclose(model["lut_equivalents"], truth, rtol=1e-6)
    assert model["mape"] < 1e-9


def test_dsps_replace_the_multiplier_luts() -> None:
    spec = synth.DesignSpec("array", "int8", "int8", 4, 4, "os")
    lut_only, with_dsp = predict(spec, "ecp5"), predict(spec, "ecp5", dsp=True)
    assert with_dsp["dsps"] == 16 and lut_only["dsps"] == 0 and with_dsp["luts"] < lut_only["luts"]
    wide = synth.DesignSpec("pe", "fp32", "fp32")  # 24 x 24 significands: no 18 x 18 multiplier holds them
    assert wide.dsp_blocks() == 0
    with pytest.raises(ValueError, match="calibrated for ecp5, xilinx7, not 'ice40'"):
        predict(spec, "ice40")


def test_cost_grows_with_the_format() -> None:
    pes = {f: synth.DesignSpec("pe", f, f) for f in ("int2", "int4", "int8", "fp8_e4m3")}
    luts = {f: predict(spec, "ecp5")["lut_equivalents"] for f, spec in pes.items()}
    assert luts["int2"] < luts["int4"] < luts["int8"] < luts["fp8_e4m3"]


def test_energy_anchors_and_scaling() -> None:
    assert mult_pj(8, 8) == pytest.approx(0.2) and mult_pj(32, 32) == pytest.approx(3.2)  # Horowitz: 0.2, 3.1
    assert add_pj(32) == pytest.approx(0.1) and add_pj(16) == pytest.approx(0.05)
    assert SCALING[7] == 0.094 and SCALING[32] > SCALING[28] > SCALING[20]
    with pytest.raises(ValueError, match="technology node 10 nm is not in the table"):
        gemm_energy(ArrayConfig.build("int8", "int8", rows=2, cols=2), 2, 2, 2, node_nm=10)


def test_energy_counts_follow_the_dataflow() -> None:
    """A 4 x 8 @ 8 x 4 product on a 2 x 2 INT8 array, bits moved counted by hand."""
    os_cfg = ArrayConfig.build("int8", "int8", rows=2, cols=2, dataflow="os", k_max=8)
    ws_cfg = ArrayConfig.build("int8", "int8", rows=2, cols=2, dataflow="ws", k_max=8)
    m = k = 8
    n = 4
    os_bits = m * k * 2 * 8 + k * n * 4 * 8 + m * n * os_cfg.acc_width  # A per column fold, B per row fold
    ws_bits = k * n * 8 + m * k * 2 * 8 + 2 * m * n * 4 * ws_cfg.acc_width  # psums read + written per k fold
    assert gemm_energy(os_cfg, m, k, n).memory_pj == pytest.approx(os_bits / 64 * 20)
    assert gemm_energy(ws_cfg, m, k, n).memory_pj == pytest.approx(ws_bits / 64 * 20)
    assert gemm_energy(os_cfg, m, k, n, 7).total_pj == pytest.approx(0.094 * gemm_energy(os_cfg, m, k, n).total_pj)
    fp8 = ArrayConfig.build("fp8_e4m3", "fp8_e4m3", rows=2, cols=2)
    assert mac_pj(fp8) > mac_pj(os_cfg)  # the aligner and the wide exact accumulator
