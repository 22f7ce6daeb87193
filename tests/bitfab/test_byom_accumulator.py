# amaranth: UnusedElaboratable=no
"""Verdict (e), narrow integer accumulators: the bundled A2Q MLP (Brevitas' accumulator-aware
weights for 16 bits) passes on a 4x4 array whose accumulator is an int16 register that wraps, and
fails, naming the overflow, on an int12 one; a user's file of stock-Brevitas layers runs with
--acc; the verdict never passes a register that overflowed, even where wrap-around hid it."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import hw
import models
import numerics
from bitfab.accumulator_verdict import accumulator_verdict, layer_partial_sums
from bitfab.cli import main
from bitfab.partial_sums import PartialSums

from . import zoo

CACHE = Path(os.environ["BITFAB_CACHE"])
SPLIT = models.digits()
IMAGES = 16  # short Verilator runs: the whole test set is measured in the closing notes of issue 15


def _config(accumulator: str) -> hw.ArrayConfig:
    return hw.ArrayConfig.build("uint8", "int8", numerics.parse_accumulator(accumulator), rows=4, cols=4,
                                dataflow="ws", k_max=64, m_max=64)  # fmt: skip


def _sums(**fields: object) -> PartialSums:
    base = {"order": "k order", "largest": 1000, "smallest": -500, "abs_product_sum": 1500, "results": 20,
            "register": (-2048, 2047), "any_input": (-1800, 1900)}  # fmt: skip
    return PartialSums(**{**base, **fields})  # type: ignore[arg-type]


def test_a2q_weights_bound_every_sum_of_any_input_for_their_width() -> None:
    """Measured in the array's order (no Verilator): A2Q for 16 bits fits int16 for any uint8 input,
    these digits overflow int12; plain INT8 weights are allowed sums beyond int16."""
    a2q16 = models.a2q_model("a2q16", SPLIT, cache=CACHE / "models")
    for layer in ("fc1", "fc2"):
        product = models.capture(a2q16, layer, SPLIT.test_images[:IMAGES])
        held = layer_partial_sums(product, _config("int16"))
        assert held is not None and held.any_input is not None
        assert not held.overflowed and held.register == (-(1 << 15), (1 << 15) - 1)
        assert held.max_abs <= max(-held.any_input[0], held.any_input[1]) < 1 << 15  # every order, every input
        assert held.max_abs <= held.abs_product_sum < 1 << 15  # A2Q: 255 x sum |w| < 2**15
        narrow = layer_partial_sums(product, _config("int12"))
        assert narrow is not None and narrow.overflowed and narrow.results_wrapped <= narrow.results_overflowing
        assert (narrow.max_abs, narrow.any_input) == (held.max_abs, held.any_input)  # the register changes nothing else
    plain = models.capture(models.a2q_model("a2q_ref", SPLIT, cache=CACHE / "models"), "fc1", SPLIT.test_images[:1])
    bound = layer_partial_sums(plain, _config("int16"))
    assert bound is not None and bound.any_input_bits is not None and bound.any_input_bits > 16


def test_an_overflow_fails_even_when_wrap_around_brings_every_result_back() -> None:
    lucky = _sums(largest=3000, results_overflowing=2, results_wrapped=0)
    failure, warnings = accumulator_verdict(lucky, numerics.FixedAccumulator(12))
    assert warnings == []
    assert failure == ("(e) accumulator overflow: 2 of 20 results had a partial sum outside the int12 register (range "
                       "-2,048..2,047); 0 of them wrapped to a value that differs from the framework's exact sum (2 "
                       "came back into range by wrap-around luck); the largest |partial sum| is 3,000 (13 bits) in "
                       "the array's order (k order), and the weights allow sums of -1,800..1,900 (12 bits) for any "
                       "input: use --acc int13 or wider, or weights trained (A2Q) for int12")  # fmt: skip


def test_a_register_that_held_these_inputs_but_not_any_input_warns() -> None:
    assert accumulator_verdict(_sums(), numerics.FixedAccumulator(12)) == (None, [])
    failure, warnings = accumulator_verdict(_sums(any_input=(-1800, 4000)), numerics.FixedAccumulator(12))
    assert failure is None
    assert warnings == ["no partial sum of these inputs left the int12 register (range -2,048..2,047), but the "
                        "weights allow sums of -1,800..4,000 (13 bits) for any input: other inputs may overflow "
                        "it"]  # fmt: skip
    assert accumulator_verdict(_sums(register=None), numerics.ExactAccumulator()) == (None, [])


@pytest.mark.parametrize(("argv", "message"), [
    (["--model", "a2q16", "--acc", "int16_sat"], "--acc int16_sat: a systolic array adds partial sums in dataflow "
     "order, so a saturating register has no order-free result; use int16 (wraps)"),
    (["--model", "a2q16", "--acc", "fp32"], "--acc fp32: model layers run with exact or int{W} (wrapping) "
     "accumulators; float accumulators are not checked against a model's output yet"),
    (["--model", "a2q16", "--acc", "int16", "--bitserial"], "--acc int16: the bit-serial unit accumulates exactly; "
     "a narrow accumulator runs on a systolic array (drop --bitserial)"),
    (["--model", "mlp", "--format", "int8", "--acc", "int16"], "--acc int16: the bundled mlp runs with an exact "
     "accumulator; a narrow one runs with the bring-your-own-model checks, e.g. --model a2q16 (Brevitas A2Q weights "
     "for a 16-bit accumulator) or your own model file"),
    (["--model", "a2q9", "--acc", "int16"], "a2q9: the accumulator width P must be between 10 and 32 bits (uint8 "
     "inputs need 2**(P-1) - 1 >= 255 for one non-zero weight), got 9"),
])  # fmt: skip
def test_narrow_accumulator_errors_are_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str], argv: list[str],
                                                message: str) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    assert main(["cosim", "model", *argv, "-o", "out"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if not line.startswith("[")]
    assert errors == [f"bitfab: error: {message}"]
    assert not (tmp_path / "out").exists()


def _cosim(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, dict[str, object]]:
    code = main(["cosim", "model", *argv, "--array", "4x4", "-o", "out", "--cache-dir", str(CACHE)])
    printed = capsys.readouterr().out
    return code, printed, json.loads(Path("out/report.json").read_text())


@pytest.mark.slow
def test_a2q16_runs_on_an_int16_register_without_overflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # the user's directory: a relative -o
    code, printed, report = _cosim(["--model", "a2q16", "--acc", "int16", "--images", str(IMAGES)], capsys)
    assert code == 0, printed
    assert report["passed"] and report["accumulator"] == "int16" and report["warnings"] == []
    for layer in report["layers"]:  # type: ignore[attr-defined]
        sums = layer["partial_sums"]
        assert layer["hardware_exact"] and layer["predictions_equal"] and layer["accumulator_holds"]
        assert sums["register_range"] == [-32768, 32767] and 0 < sums["max_abs_partial_sum"] <= 32767
        assert sums["results_with_overflowing_partial_sum"] == sums["results_wrapped"] == 0
        assert sums["any_input_sum_bits"] <= 16  # what A2Q guarantees for any uint8 input
        assert f"{layer['layer']} (sums in product lsbs): largest |partial sum| {sums['max_abs_partial_sum']:,} (" \
            in printed  # fmt: skip
    assert "the int16 register (-32,768..32,767) held every partial sum (and holds any input's)" in printed
    assert "PASS: 2 of 2 layers pass all five verdicts ((e): the int16 accumulator)" in printed


@pytest.mark.slow
def test_a2q16_on_an_int12_register_fails_naming_the_overflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)
    code, printed, report = _cosim(["--model", "a2q16", "--acc", "int12", "--images", str(IMAGES)], capsys)
    assert code == 1 and not report["passed"]
    for layer in report["layers"]:  # type: ignore[attr-defined]
        sums = layer["partial_sums"]
        overflowing, results = sums["results_with_overflowing_partial_sum"], sums["results"]
        assert layer["hardware_exact"] and not layer["accumulator_holds"] and overflowing > 0
        assert layer["failures"][0].startswith(f"(e) accumulator overflow: {overflowing:,} of {results:,} results had "
                                               "a partial sum outside the int12 register (range -2,048..2,047); "
                                               f"{sums['results_wrapped']:,} of them wrapped")  # fmt: skip
    assert "FAIL: 0 of 2 layers pass all five verdicts ((e): the int12 accumulator)" in printed


@pytest.mark.slow
def test_a_users_brevitas_file_runs_on_a_narrow_register(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    """zoo.py:binary_a2q: bipolar weights on int8 inputs (|sum| <= 64 x 128), then
    Int8AccumulatorAwareWeightQuant for 16 bits on uint8 inputs: both fit int16."""
    monkeypatch.chdir(tmp_path)
    np.save("x.npy", SPLIT.test_images[:IMAGES])
    np.save("y.npy", SPLIT.test_labels[:IMAGES])
    Path("zoo.py").write_text(Path(zoo.__file__).read_text())
    argv = ["--model", "zoo.py:binary_a2q", "--inputs", "x.npy", "--labels", "y.npy", "--acc", "int16"]
    code, printed, report = _cosim(argv, capsys)
    assert code == 0, printed
    assert [layer["formats"] for layer in report["layers"]] == [["int8", "int2"], ["uint8", "int8"]]  # type: ignore[attr-defined]
    for layer in report["layers"]:  # type: ignore[attr-defined]
        sums = layer["partial_sums"]
        assert sums["results_with_overflowing_partial_sum"] == 0 and sums["any_input_sum_bits"] <= 16
