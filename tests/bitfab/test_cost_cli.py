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


def test_synth_a_pe_and_compare_the_cost_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    design = ("--a", "int4", "--b", "int4", "--rows", "1", "--cols", "1", "--no-dsp", "--json")
    code, out, _ = run(capsys, "synth", *design, "-o", str(tmp_path))
    real = json.loads(out)
    assert code == 0 and real["design"] == "PE int4xint4 exact" and real["luts"] > 20 and real["dsps"] == 0
    code, out, _ = run(capsys, "cost", *design)
    model = json.loads(out)
    assert code == 0 and abs(model["lut_equivalents"] / (real["luts"] + 2 * real["carry"]) - 1) < 0.25
    assert all(p.is_relative_to(tmp_path) for p in tmp_path.rglob("*"))


def test_cost_of_an_array_with_dsps_and_energy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cost", "--a", "int8", "--b", "int8", "--rows", "8", "--cols", "8", "--gemm", "64x64x64",
                       "--node", "7", "--json")  # fmt: skip
    report = json.loads(out)
    assert code == 0 and report["dsps"] == 64 and report["cycles"] > 64 * 64 * 64 // 64
    assert report["node_nm"] == 7 and 0 < report["pj_per_mac"] < 1
    code, _, err = run(capsys, "cost", "--target", "ice40")
    assert code == 2 and "the cost model is calibrated for ecp5, xilinx7, not 'ice40'" in err
    code, _, err = run(
        capsys, "synth", "--target", "xilinx7", "--pnr", "--rows", "1", "--cols", "1", "-o", str(tmp_path)
    )
    assert code == 2 and "--pnr runs nextpnr-ecp5; the target must be ecp5, got xilinx7" in err
    assert not any(tmp_path.iterdir())  # refused before any tool ran
