# amaranth: UnusedElaboratable=no
"""`bitfab generate systolic` and `bitfab cosim systolic` with float accumulators: MX arrays take
OCP's datapath (exact block dots, scaled, added in fp32) unless --acc says otherwise; other
operands stay exact; an accumulator an array cannot take is one error line naming it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bitfab.cli import main

MX_4X4_OS = ["--a", "mxfp8_e4m3", "--b", "mxfp8_e4m3", "--rows", "4", "--cols", "4", "--dataflow", "os"]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a fresh working directory, so -o is relative as a person types it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize(
    ("argv", "accumulator", "order", "block", "acc_width"),
    [
        ([*MX_4X4_OS, "--acc", "fp32"], "fp32", "blocked", 32, 32),
        ([*MX_4X4_OS[:4], "--rows", "2", "--cols", "2", "--dataflow", "os"], "fp32", "blocked", 32, 32),  # no --acc
        (["--a", "mxfp4", "--b", "mxfp4", "--rows", "4", "--cols", "2", "--acc", "bf16_w6"], "bf16_w6", "blocked", 4,
         16),
        (["--a", "fp8_e4m3", "--b", "fp8_e4m3", "--rows", "2", "--cols", "2", "--dataflow", "os", "--acc", "fp16_rz"],
         "fp16_rz", "sequential", None, 16),
    ],
)  # fmt: skip
def test_generate_systolic_with_a_float_accumulator(argv: list[str], accumulator: str, order: str, block: int | None,
                                                    acc_width: int, in_tmp: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code, out, err = run(capsys, "generate", "systolic", *argv, "-o", "design", "--json")
    assert code == 0, err
    info = json.loads(out)
    assert sorted(p.name for p in (in_tmp / "design").iterdir()) == ["systolic_array.json", "systolic_array.v"]
    assert json.loads((in_tmp / "design" / "systolic_array.json").read_text())["accumulator"] == accumulator
    assert (info["accumulator"], info["accumulator_order"], info["accumulator_block"]) == (accumulator, order, block)
    assert (info["acc_width"], info["acc_lsb_exponent"]) == (acc_width, None)  # acc is a format code
    ports = {p["name"]: p["width"] for p in info["ports"]}
    assert ports["out__payload"] == int(argv[argv.index("--cols") + 1]) * (acc_width + 3)


@pytest.mark.parametrize(("fmt", "acc", "accumulator"), [("mxfp4", "exact", "exact"), ("int8", None, "exact")])
def test_exact_stays_available_and_the_default_elsewhere(fmt: str, acc: str | None, accumulator: str, in_tmp: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    extra = [] if acc is None else ["--acc", acc]
    code, out, err = run(capsys, "generate", "systolic", "--a", fmt, "--b", fmt, "--rows", "2", "--cols", "2", *extra,
                         "-o", "design", "--json")  # fmt: skip
    assert code == 0, err
    info = json.loads(out)
    assert info["accumulator"] == accumulator and "accumulator_order" not in info
    assert (info["acc_width"] > 508) == fmt.startswith("mx")  # MX exact: both scales' 2 * 254 bits wider


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--a", "ovp4", "--b", "ovp4", "--acc", "fp32"],
         "OliVe arrays compute on the integer grid and apply the fp32 scale outside, once per result: a float "
         "accumulator would round before it; use ExactAccumulator ('exact') or a wrapping FixedAccumulator "
         "('int{W}'); got fp32"),
        (["--a", "mxfp4", "--b", "mxfp4", "--acc", "int32"],
         "MX arrays accumulate exactly (ExactAccumulator, 'exact') or in a float format (FloatAccumulator, e.g. "
         "'fp32', the default): block scales shift sums by up to 2**508; got int32"),
        (["--a", "int8", "--b", "int8", "--acc", "int24_sat"],
         "--acc int24_sat: an array adds partial sums in dataflow order, so a saturating register would not match "
         "the model's k-order clamping; use exact, a wrapping int{W} or a float accumulator (e.g. fp32)"),
        (["--a", "int8", "--b", "int8", "--acc", "fp16_w14"], "argument --acc: "),  # numerics refuses the window
        (["--a", "mxfp4", "--b", "mxfp4", "--acc", "fp64"], "argument --acc: "),  # and 52 mantissa bits
    ],
)  # fmt: skip
@pytest.mark.parametrize("command", ["generate", "cosim"])
def test_accumulators_an_array_cannot_take_are_one_line(argv: list[str], message: str, command: str, in_tmp: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    gemm = ["--gemm", "4x4x4"] if command == "cosim" else []
    code, out, err = run(capsys, command, "systolic", "--rows", "2", "--cols", "2", *argv, *gemm, "-o", "out")
    lines = err.splitlines()
    assert code == 2 and out == "" and len(lines) == 1, err
    assert lines[0].startswith(f"bitfab: error: {message}"), lines[0]
    assert argv[-1] in lines[0]
    assert list(in_tmp.iterdir()) == []  # refused before anything is written


@pytest.mark.slow
@pytest.mark.parametrize("extra", [["--acc", "fp32"], ["--dataflow", "ws", "--acc", "bf16_rz"]])
def test_cosim_systolic_runs_float_mx_arrays_bit_exactly(extra: list[str], in_tmp: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    code, out, _ = run(capsys, "cosim", "systolic", *MX_4X4_OS, "--k-max", "128", *extra, "--gemm", "5x40x6",
                         "-o", "run", "--json")  # fmt: skip
    report = json.loads(out)
    assert code == 0 and report["passed"] and report["mismatches"] == 0, report
    assert report["cycles_measured"] == report["cycles_model"]
    assert "fp32" in report["design"] or "bf16_rz" in report["design"]
    assert json.loads((in_tmp / "run" / "report.json").read_text())["passed"]
