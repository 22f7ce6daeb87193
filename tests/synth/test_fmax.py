"""The Fmax model (synth.fmax): its fit on synthetic data, and the stored fit against the routed
designs stored beside it (measured by `python -m synth.fmax`). Timing itself is never asserted."""

from __future__ import annotations

import json

import numpy as np
import pytest

import synth
from synth.fmax import FMAX_DESIGNS, FMAX_FILE, fit_fmax, fmax_features, predict_fmax

STORED = json.loads(FMAX_FILE.read_text())


def test_fit_recovers_a_known_period() -> None:
    designs = FMAX_DESIGNS["ecp5"]
    truth = np.array([4.0, 1.5, 3.0, 2.0, 0.7, 0.4, 0.9])
    runs = [{"spec": spec.to_json(), "dsp": dsp, "fmax_mhz": 1000.0 / float(fmax_features(spec, dsp) @ truth)}
            for spec, dsp in designs]  # fmt: skip
    model = fit_fmax(runs)
    np.testing.assert_allclose(model["period_ns"], truth, rtol=1e-6)
    assert model["mape"] < 1e-9 and model["loo_mape"] < 1e-6


def test_features_follow_the_design() -> None:
    """A DSP takes the LUT multiplier's depth off the path; a float PE adds its aligner; an array its size."""
    pe = synth.DesignSpec("pe", "int8", "int8", accumulator="int32")
    lut, dsp = fmax_features(pe, False), fmax_features(pe, True)
    assert lut[1] > 0 and lut[2] == 0 and dsp[1] == 0 and dsp[2] == 1
    assert fmax_features(synth.DesignSpec("pe", "fp8_e4m3", "fp8_e4m3"), False)[4] > 0 == lut[4]
    array = synth.DesignSpec("array", "int8", "int8", 4, 4, "os")
    assert fmax_features(array, False)[5] == 4.0 and lut[5] == 0.0
    assert (
        fmax_features(array, False)[6]
        == 0.0
        < fmax_features(synth.DesignSpec("array", "int8", "int8", 4, 4, "ws"), False)[6]
    )


@pytest.mark.parametrize("target", ["ecp5", "ice40", "nexus"])
def test_the_stored_model_is_the_fit_of_at_least_15_routed_designs(target: str) -> None:
    runs = [run for run in STORED["runs"] if run["target"] == target]
    assert len(runs) >= 15
    assert {run["spec"]["kind"] for run in runs} == {"pe", "array"} and {run["dsp"] for run in runs} == {False, True}
    refit = fit_fmax(runs)
    np.testing.assert_allclose(refit["period_ns"], STORED["models"][target]["period_ns"], rtol=1e-9)
    spec, dsp = FMAX_DESIGNS[target][0]
    predicted = predict_fmax(spec, target, dsp)
    assert predicted == pytest.approx(1000.0 / float(fmax_features(spec, dsp) @ refit["period_ns"]))
    with pytest.raises(ValueError, match=r"^the Fmax model is fitted for .*, not 'xilinx7'$"):
        predict_fmax(spec, "xilinx7")
