"""The analytic cost model against the yosys runs stored in synth/data/calibration.json (measured
by `python -m synth.calibrate`): the fitted designs, the held-out ones, the output stage; and the
energy model against its anchors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import synth
from hw import ArrayConfig
from synth._designs import STAGE_FEATURES, features
from synth.cost import CALIBRATION_FILE, FEATURES, _measured, _row, calibration, fit, predict
from synth.energy import SCALING, add_pj, gemm_energy, mac_pj, mult_pj

RUNS = json.loads(CALIBRATION_FILE.read_text())["runs"]


@pytest.mark.parametrize("target", ["ecp5", "xilinx7"])
def test_lut_model_is_within_ten_percent_of_yosys(target: str) -> None:
    """Recomputed here from the stored measurements, not read from the stored summary."""
    runs = [r for r in RUNS if r["target"] == target and not r.get("held_out") and not r.get("dsp")]
    assert len(runs) >= 20
    kinds = {r["spec"]["a"] for r in runs}
    assert {"int2", "int8", "fp4_e2m1", "fp8_e4m3", "posit8_2", "mxfp4", "ovp4"} <= kinds
    predicted = [predict(synth.DesignSpec(**r["spec"]), target)["lut_equivalents"] for r in runs]
    errors = [abs(p / _measured(r, "lut_equivalents") - 1) for p, r in zip(predicted, runs, strict=True)]
    assert np.mean(errors) <= 0.10  # LUT4 + 2 x CCU2C on ECP5, LUTs on Xilinx 7


@pytest.mark.parametrize("target", ["ecp5", "xilinx7"])
def test_held_out_designs_are_predicted_within_ten_percent(target: str) -> None:
    """Designs measured but never fitted: an 8x8 array with its int32 output stage (twice the lanes
    of any fitted stage) and a 4x4 int4 array with a narrow stage."""
    held = [r for r in RUNS if r["target"] == target and r.get("held_out") and not r.get("dsp")]
    labels = {synth.DesignSpec(**r["spec"]).label() for r in held}
    assert "8x8 os int8xint8 exact, stage int32 b32 m16 n64" in labels and len(held) >= 2
    assert not labels & {e["design"] for e in calibration()["models"][target]["errors"]}  # not in the fit
    for run in held:
        predicted = predict(synth.DesignSpec(**run["spec"]), target)["lut_equivalents"]
        assert abs(predicted / _measured(run, "lut_equivalents") - 1) <= 0.10


def test_the_calibration_holds_output_stages_on_both_dataflows() -> None:
    for target in ("ecp5", "xilinx7"):
        staged = [r["spec"] for r in RUNS if r["target"] == target and r["spec"].get("output_stage")]
        assert {(s["rows"], s["cols"], s["dataflow"]) for s in staged} >= {(2, 2, "os"), (2, 2, "ws"), (4, 4, "ws")}
        assert set(STAGE_FEATURES) <= set(calibration()["models"][target]["features"])
    bare = [r for r in RUNS if not r["spec"].get("output_stage")]
    assert all("n_max" not in r["spec"] for r in bare)  # records without a stage kept their old form


@pytest.mark.parametrize(("target", "per_lane"), [("ecp5", (1500, 3500)), ("xilinx7", (1000, 3000))])
def test_the_output_stage_costs_a_multiplier_and_a_shifter_per_lane(target: str, per_lane: tuple[int, int]) -> None:
    """int32 codes, 32-bit bias, 16-bit multiplier behind a 4x4 INT8 array: a 33 x 16 bit LUT
    multiplier and a 52-bit rounding shifter per lane (plus the shared controller and memory)."""
    for dataflow in ("os", "ws"):
        bare = synth.DesignSpec("array", "int8", "int8", 4, 4, dataflow, dataflow == "ws")
        staged = synth.DesignSpec("array", "int8", "int8", 4, 4, dataflow, dataflow == "ws", output_stage=True)
        stage = predict(staged, target)["lut_equivalents"] - predict(bare, target)["lut_equivalents"]
        assert per_lane[0] < stage / 4 < per_lane[1]
        assert predict(staged, target)["ffs"] > predict(bare, target)["ffs"] + 4 * 32  # at least the code registers
    wide = synth.DesignSpec("array", "int4", "int4", 4, 4, "ws", True, output_stage=True)
    narrow = synth.DesignSpec("array", "int4", "int4", 4, 4, "ws", True, output_stage=True, out_bits=8, bias_bits=16,
                              multiplier_bits=8)  # fmt: skip
    assert predict(narrow, target)["lut_equivalents"] < predict(wide, target)["lut_equivalents"]
    with_dsp = predict(wide, target, dsp=True)
    assert with_dsp["dsps"] == 16 + 4 * 2 and with_dsp["luts"] < predict(wide, target)["luts"]


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


def test_dsp_designs_have_their_own_fit_on_ecp5() -> None:
    """With DSPs the LUT-only coefficients over-price a design (the demo's 8x8 WS array: +50%); the
    `ecp5+dsp` model is fitted on designs synthesized with DSP inference, the multipliers' features
    zeroed, and checked on held-out DSP designs it never saw."""
    runs = [r for r in RUNS if r.get("dsp")]
    fitted, held = [r for r in runs if not r.get("held_out")], [r for r in runs if r.get("held_out")]
    assert len(fitted) >= 20 and len(held) >= 3 and {r["target"] for r in runs} == {"ecp5"}
    assert all(r["resources"]["dsps"] > 0 for r in runs)
    demo = synth.DesignSpec("array", "int8", "int8", 8, 8, "ws", True, k=64, m_max=64)
    assert demo.to_json() in [r["spec"] for r in fitted]
    errors = []
    for run in fitted:
        spec = synth.DesignSpec(**run["spec"])
        predicted = predict(spec, "ecp5", dsp=True)
        assert predicted["dsps"] == spec.dsp_blocks()
        errors.append(abs(predicted["lut_equivalents"] / _measured(run, "lut_equivalents") - 1))
    assert np.mean(errors) <= 0.10
    model = calibration()["models"]["ecp5+dsp"]
    assert {e["design"] for e in model["held_out"]} == {synth.DesignSpec(**r["spec"]).label() for r in held}
    assert not {e["design"] for e in model["held_out"]} & {e["design"] for e in model["errors"]}
    lut_only = predict(demo, "ecp5", dsp=False)["lut_equivalents"]
    assert predict(demo, "ecp5", dsp=True)["lut_equivalents"] < lut_only  # the multipliers left the LUTs


def test_every_dsp_run_measured_the_dsp_blocks_the_spec_counts() -> None:
    """yosys' DSP count on every calibration run with DSPs is `dsp_blocks`: one per PE, one per
    pair of PEs when DSP-packed (two INT4 x INT8 or INT4 x INT4 products per MULT18X18D), and the
    output stage's product pieces."""
    runs = [r for r in RUNS if r.get("dsp")]
    packed = [r for r in runs if r["spec"].get("dsp_pack")]
    assert len([r for r in packed if not r.get("held_out")]) >= 3 and len([r for r in packed if r.get("held_out")]) >= 2
    for run in runs:
        spec = synth.DesignSpec(**run["spec"])
        assert run["resources"]["dsps"] == spec.dsp_blocks(), spec.label()
    assert all(synth.DesignSpec(**r["spec"]).dsp_blocks() == synth.DesignSpec(**r["spec"]).pes // 2 for r in packed)


def test_a_packed_design_is_priced_with_its_split_logic_and_half_the_dsps() -> None:
    plain = synth.DesignSpec("array", "int8", "int4", 8, 8, "os")
    packed = synth.DesignSpec("array", "int8", "int4", 8, 8, "os", dsp_pack=True)
    with_dsps, paired = predict(plain, "ecp5", dsp=True), predict(packed, "ecp5", dsp=True)
    assert (with_dsps["dsps"], paired["dsps"]) == (64, 32)
    assert paired["lut_equivalents"] > with_dsps["lut_equivalents"]  # the split costs fabric
    assert features(packed)["dsp_pack"] == 32 * (12 + 17) and features(plain)["dsp_pack"] == 0
    assert "dsp_pack" not in plain.to_json() and packed.to_json()["dsp_pack"] is True
    with pytest.raises(ValueError, match=r"^8x8 os int8xint4 exact, dsp-packed puts two products on each DSP "
                                         r"multiplier: predict it with dsp=True$"):  # fmt: skip
        predict(packed, "ecp5", dsp=False)
    with pytest.raises(ValueError, match=r"build it with DSPs$"):
        packed.build(dsp=False)
    with pytest.raises(ValueError, match=r"^DSP packing pairs an array's columns: it needs kind 'array', got 'pe'$"):
        synth.DesignSpec("pe", "int8", "int4", dsp_pack=True)
