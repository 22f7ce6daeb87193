# amaranth: UnusedElaboratable=no
"""The CLI's one rule for failures: a user error exits 2 with one line `bitfab: error: ...`; a tool
failure exits 1 with the first lines of its log and the log's path; Ctrl-C exits 130 saying what
was interrupted and where partial results are; no traceback unless --debug."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

import sim
import synth
from bitfab import cli, paths
from bitfab.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("bitfab: error: "), err
    assert "Traceback" not in err
    return lines[0]


ARRAY_2X2 = ["--rows", "2", "--cols", "2", "--a", "int8", "--b", "int8"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["cost", "--rows", "0", "--cols", "4"], "argument --rows: must be a positive integer, got 0"),
        (["cost", "--rows", "-3", "--cols", "4"], "argument --rows: must be a positive integer, got -3"),
        (
            ["cost", "--rows", "3", "--cols", "1"],
            "cols must be between 2 and 64 (rows = cols = 1 is a single PE), got 1",
        ),
        (["cosim", "pe", "--a", "int8", "--b", "int8", "--random", "0"], "argument --random: must be a positive"),
        (["cosim", "pe", "--a", "int8", "--b", "int8", "--random", "-5"], "argument --random: must be a positive"),
        (
            ["cosim", "pe", "--a", "int16", "--b", "int16", "--exhaustive"],
            "--exhaustive on int16 x int16 is 4,294,967,296 operand pairs; at most 1,048,576 run exhaustively: "
            "use --random N instead",
        ),
        (
            ["cosim", "systolic", "--rows", "2", "--cols", "2", "--a", "int8", "--b", "int8", "--gemm", "-4x8x8"],
            "argument --gemm: must be MxKxN with positive integers (e.g. 8x8x8), got '-4x8x8'",
        ),
        (
            ["cosim", "systolic", "--rows", "2", "--cols", "2", "--a", "int8", "--b", "int8", "--gemm", "4x0x8"],
            "argument --gemm: must be MxKxN with positive integers",
        ),
        (["explore", "--jobs", "0"], "argument --jobs: must be a positive integer, got 0"),
        (["cost", "--acc", "int99"], "argument --acc: must be exact, int{W}"),
        (["generate", "pe", "--a", "int8", "--b", "int8", "-o", "/proc/x"], "-o /proc/x: cannot create the directory"),
        (["generate", "pe", "--a", "int8", "--b", "int8", "-o", "{file}"], "is a file; give a directory"),
        (["cosim", "pe", "--a", "int4", "--b", "int4", "-o", "{file}"], "is a file; give a directory"),
        (["demo", "-o", "{file}"], "is a file; give a directory"),
        (["demo", "--format", "int9x", "-o", "{file}_not"], "no Brevitas quantizer for 'int9x'; available: "),
        (["explore", "--arrays", "0x4", "-o", "{file}_dir"], "--arrays 0x4 with int4: rows must be between 2 and 64"),
        (["explore", "--scheduler", "nonsense", "-o", "{file}_dir"], "--scheduler must be a Dask scheduler address"),
        (
            ["explore", "--target", "xilinx7", "--rank", "edp", "-o", "{file}_dir"],
            "--rank edp needs an Fmax model, fitted for ecp5, ice40, nexus; --target xilinx7 has none",
        ),
        (
            ["cosim", "systolic", *ARRAY_2X2, "--gemm", "8x2000x8", "-o", "{file}_dir"],
            "K=2000 exceeds this array's k_max=1024",
        ),
        (
            ["generate", "systolic", *ARRAY_2X2, "--acc", "int24_sat", "-o", "{file}_dir"],
            "--acc int24_sat: an array adds partial sums in dataflow order",
        ),
        (
            ["generate", "systolic", "--rows", "65", "--cols", "2", "--a", "int8", "--b", "int8", "-o", "{file}_dir"],
            "rows must be between 2 and 64, got 65",
        ),
        (
            ["cosim", "pe", "--a", "int4", "--b", "int4", "--cache-dir", "{file}", "-o", "{file}_dir"],
            "--cache-dir {file} is a file; give a directory",
        ),
        (
            ["compare", "{file}", "--png", "/proc/x.png"],
            "--png /proc/x.png: its directory /proc: the directory is not writable",
        ),
        (["cost", "--bogus"], "unrecognized arguments: --bogus (see `bitfab --help`)"),
        (["nonsense"], "argument COMMAND: invalid choice: 'nonsense'"),
    ],
)
def test_user_errors_exit_2_with_one_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "taken").write_text("a file where a directory should go")
    code, out, err = run(capsys, *[a.format(file=tmp_path / "taken") for a in argv])
    assert code == 2 and out == ""
    assert message.replace("{file}", str(tmp_path / "taken")) in one_line(err)
    assert (tmp_path / "taken").read_text().startswith("a file")
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]  # refused before anything was written


def test_a_check_of_nothing_is_refused_before_any_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "cosim", "pe", "--a", "int8", "--b", "int8", "--random", "0", "-o", str(tmp_path / "o"))
    assert code == 2 and "must be a positive integer, got 0" in one_line(err)
    assert not (tmp_path / "o").exists()  # nothing was written: no "PASS ... 0 MACs"


def failing_log(tmp_path: Path, name: str, text: str) -> Path:
    log = tmp_path / name
    log.write_text(text)
    return log


def test_a_verilator_failure_exits_1_with_its_log_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = failing_log(tmp_path, "sim.log", "starting\n%Warning: /x/a.hex:0: $readmem file not found\nmore\n")

    def fails(pe: object, *_args: object, **_kwargs: object) -> None:
        import hw

        hw.to_verilog(pe, "top")  # what a real run does before its simulation fails
        raise sim.SimulationError("the simulation (sim.play_mac) wrote no results", log)

    monkeypatch.setattr(sim, "check_mac", fails)
    code, _, err = run(capsys, "cosim", "pe", "--a", "int4", "--b", "int4", "-o", str(tmp_path / "o"))
    assert code == 1 and "Traceback" not in err
    assert err.splitlines()[-2:] == [
        f"bitfab: error: the simulation (sim.play_mac) wrote no results; log: {log}",
        "  %Warning: /x/a.hex:0: $readmem file not found",
    ]


def test_a_real_verilator_build_failure_names_the_cause(tmp_path: Path) -> None:
    import hw
    import numerics

    pe = hw.MacPE("int4", "int4", numerics.ExactAccumulator(), k_terms=16)
    with pytest.raises(sim.SimulationError) as failed:
        sim.build(pe, tmp_path, harness=("harness", "module harness(input wire clk;\nendmodule\n"))
    assert failed.value.log == tmp_path.absolute() / failed.value.log.parent.name / "build.log"
    assert any("%Error" in line for line in failed.value.excerpt)
    assert str(failed.value).startswith("Verilator could not build harness; log: ")


def test_a_yosys_failure_exits_1_with_its_log_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    log = failing_log(tmp_path, "yosys.log", "read\nERROR: Module `\\top' not found!\n")

    def fails(*_args: object, **_kwargs: object) -> None:
        raise synth.SynthError("yosys (ecp5) failed with exit 1", log)

    monkeypatch.setattr(synth, "synthesize", fails)
    code, _, err = run(capsys, "synth", "--rows", "1", "--cols", "1", "-o", str(tmp_path / "o"))
    assert code == 1
    assert err.splitlines()[-2:] == [f"bitfab: error: yosys (ecp5) failed with exit 1; log: {log}",
                                     "  ERROR: Module `\\top' not found!"]  # fmt: skip


def interrupt(args: argparse.Namespace, console: object) -> int:
    paths.output_directory(args.output)
    with args.reporter.stage("co-simulating fc1"):
        raise KeyboardInterrupt


def test_ctrl_c_exits_130_naming_the_stage_and_the_partial_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "cmd_demo", interrupt)
    code, _, err = run(capsys, "demo", "-o", str(tmp_path / "d"))
    assert code == 130 and "Traceback" not in err
    assert err.splitlines()[-1] == (f"bitfab: interrupted during co-simulating fc1; partial results (each file "
                                    f"whole) are in {tmp_path / 'd'}")  # fmt: skip


def test_results_are_written_whole_or_not_at_all(tmp_path: Path) -> None:
    target = tmp_path / "report.json"
    paths.write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), paths.atomic(target) as temporary:
        temporary.write_text("half of a new")
        raise KeyboardInterrupt
    assert target.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_internal_errors_show_a_traceback_only_with_debug(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*_args: object) -> int:
        raise KeyError("oops")

    monkeypatch.setattr(cli, "cmd_formats", broken)
    code, _, err = run(capsys, "formats")
    assert code == 1 and err == "bitfab: internal error: KeyError: 'oops' (rerun with --debug for the traceback)\n"
    code, _, err = run(capsys, "formats", "--debug")
    assert code == 1 and err.startswith("Traceback") and "KeyError: 'oops'" in err
    monkeypatch.setenv("BITFAB_DEBUG", "1")
    code, _, err = run(capsys, "cost", "--rows", "0")
    assert code == 2 and err.startswith("Traceback")


def test_a_closed_pipe_is_not_an_error() -> None:
    """`bitfab formats --json | head -1`: no BrokenPipeError traceback."""
    pipeline = subprocess.run(f"{sys.executable} -m bitfab formats --json | head -1", shell=True,
                              capture_output=True, text=True, timeout=120, check=False)  # fmt: skip
    assert pipeline.stdout == "[\n" and pipeline.stderr == ""


def test_piped_tables_keep_every_name_and_number_whole() -> None:
    listing = subprocess.run([sys.executable, "-m", "bitfab", "formats"], capture_output=True, text=True,
                             timeout=120, check=True).stdout  # fmt: skip
    assert "…" not in listing and "fp8_e4m3_finite" in listing and "57344" in listing
    names = {row["name"] for row in json.loads(subprocess.run([sys.executable, "-m", "bitfab", "formats", "--json"],
             capture_output=True, text=True, timeout=120, check=True).stdout)}  # fmt: skip
    assert all(name in listing for name in names)


def test_version_and_every_default_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("bitfab 0.")
    parser = cli.build_parser()
    checked = 0
    for command, sub in _subparsers(parser):
        formatter = sub._get_formatter()
        for action in sub._actions:
            if action.option_strings and action.nargs != 0 and not action.required and action.dest != "help":
                assert "default" in formatter._get_help_string(action), (command, action.dest)  # type: ignore[attr-defined]
                checked += 1
    assert checked > 60
    assert "(default: 1024)" in " ".join(_subparsers_by_name(parser)["cosim systolic"].format_help().split())


def _subparsers_by_name(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return dict(_subparsers(parser))


def _subparsers(parser: argparse.ArgumentParser, prefix: str = "") -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += _subparsers(sub, f"{prefix}{name} ")
    return found
