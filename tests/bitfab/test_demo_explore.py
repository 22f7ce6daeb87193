# amaranth: UnusedElaboratable=no
"""`bitfab explore` on a tiny sweep and `bitfab demo --quick` (the demo's full run places and routes
an 8x8 array, minutes on 2 cores; the quick mode runs the same steps on a 4x4 array without
place and route)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bitfab.cli import main
from bitfab.demo import COMPARED, compared_formats


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explore_sweeps_resumes_and_plots(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the user's path: a relative -o in the directory they started in
    argv = (
        "explore",
        "--model",
        "mlp",
        "--formats",
        "int8,int4,mxfp4",
        "--arrays",
        "2x2",
        "-o",
        "sweep",
        "--json",
    )
    code, out, _ = run(capsys, *argv)
    rows = json.loads(out)
    assert code == 0 and [r["format"] for r in rows] == ["int8", "int4", "mxfp4"]
    assert all(r["accuracy"] > 0.9 and r["lut_equivalents"] > 0 and r["cycles_per_inference"] > 0 and r["energy_pj"] > 0
               for r in rows)  # fmt: skip
    by = {r["format"]: r for r in rows}
    assert by["int4"]["lut_equivalents"] < by["int8"]["lut_equivalents"] < by["mxfp4"]["lut_equivalents"]
    assert by["int4"]["energy_pj"] < by["int8"]["energy_pj"]
    out = tmp_path / "sweep"
    assert {p.name for p in out.iterdir()} == {"explore.csv", "explore.json", "pareto.png", "points"}
    assert [p.name for p in tmp_path.iterdir()] == ["sweep"]  # caches went to the cache directory
    saved = json.loads((out / "explore.json").read_text())
    assert [p["format"] for p in saved["points"]] == ["int8", "int4", "mxfp4"]
    assert saved["provenance"]["command"].startswith("bitfab explore --model mlp")
    assert any(p["pareto"] for p in saved["points"]) and "pareto" in (out / "explore.csv").read_text()
    stamps = {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()}
    code, again, _ = run(capsys, *argv)
    assert code == 0 and json.loads(again) == rows  # resumed: every point came from the cache
    assert {p.name: p.stat().st_mtime_ns for p in (out / "points").iterdir()} == stamps
    code, _, err = run(capsys, "explore", "--arrays", "8", "-o", "sweep")
    assert code == 2 and "--arrays takes RxC shapes like 4x4,8x8, got '8'" in err


def test_explore_ranks_by_throughput_and_energy_delay_at_the_modelled_fmax(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bitfab.explore import design
    from synth.fmax import predict_fmax

    argv = ("explore", "--formats", "int4,int8", "--arrays", "2x2,4x4", "-o", str(tmp_path / "sweep"), "--rank")
    code, out, _ = run(capsys, *argv, "throughput", "--json")
    rows = {(r["format"], r["array"]): r for r in json.loads(out)}
    assert code == 0 and len(rows) == 4
    for (fmt, array), row in rows.items():
        rows_, cols = (int(v) for v in array.split("x"))
        assert row["model_fmax_mhz"] == pytest.approx(predict_fmax(design(fmt, rows_, cols, "ws"), "ecp5"), abs=0.05)
        latency_us = row["cycles_per_inference"] / row["model_fmax_mhz"]
        assert row["edp_pj_us"] == pytest.approx(row["energy_pj"] * latency_us, rel=1e-3)
        assert 0 < row["throughput_gmacs"] * 1000 * latency_us <= rows_ * cols * row["cycles_per_inference"]
    saved = {
        (p["format"], p["array"]): p for p in json.loads((tmp_path / "sweep" / "explore.json").read_text())["points"]
    }
    fastest = max(rows.values(), key=lambda row: row["throughput_gmacs"])
    assert saved[(fastest["format"], fastest["array"])]["pareto"]  # the front is taken against throughput
    code, out, _ = run(capsys, *argv, "edp")
    assert code == 0 and "by edp" in out and "GMAC/s" in out and "at no higher energy-delay product" in out


@pytest.mark.slow
def test_quick_demo_runs_every_step_from_a_relative_directory(tmp_path: Path) -> None:
    """The newcomer's path: the console entry point run in their own directory with a relative -o,
    output piped (not a terminal): progress lines on stderr while it runs, results on stdout."""
    started = subprocess.run([sys.executable, "-m", "bitfab", "demo", "--quick", "-o", "demo"], cwd=tmp_path,
                             capture_output=True, text=True, timeout=1200, check=False)  # fmt: skip
    assert started.returncode == 0, started.stdout + started.stderr
    out_dir = tmp_path / "demo"
    report = json.loads((out_dir / "report.json").read_text())
    cosim = report["cosim"]
    assert cosim["passed"] and cosim["bit_exact"] and cosim["images"] == 64 and cosim["within_float32_bound"]
    assert cosim["cycles_layer_all_images_measured"] == cosim["cycles_layer_all_images_model"] > 0
    assert cosim["hardware_in_the_loop_accuracy"] == cosim["brevitas_accuracy"] and cosim["same_predictions"]
    synthesis = report["synthesis"]
    assert synthesis["lut4"] > 100 and synthesis["dsps"] == 16 == synthesis["model_dsps"]
    assert report["energy"]["pj_per_inference"] > 0 and report["energy"]["cycles_per_inference"] > 0
    assert [row["format"] for row in report["comparison"]] == list(COMPARED)
    assert any(row["pareto"] for row in report["comparison"])
    assert report["provenance"]["command"] == "bitfab demo --quick -o demo"
    assert report["provenance"]["tools"]["verilator"] and report["provenance"]["tools"]["brevitas"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # nothing outside the chosen directory
    assert {p.name for p in out_dir.iterdir()} == {
        "report.json",
        "pareto.png",
        "explore.csv",
        "explore.json",
        "points",
        "hardware",
        "run",
    }  # results; builds are cached elsewhere
    # each stage printed its result on stdout as it finished, and its start and end on stderr
    for line in (
        "accuracy on all 360 test images",
        "co-simulation of fc1 (GEMM 64x64x64, 64 images): PASS",
        "accuracy on the same 64 images: Brevitas",
        "ECP5 synthesis (yosys):",
        "Pareto",
    ):
        assert line in started.stdout, line
    for stage in ("training the MLP", "co-simulating fc1", "synthesizing the array", "comparing 7 formats"):
        assert re.search(rf"\] {stage}.*: done in [\d.]+ s", started.stderr), stage


def test_the_demo_compares_its_own_format_too() -> None:
    assert compared_formats("int8") == list(COMPARED)
    assert compared_formats("int6") == [*COMPARED, "int6"]


@pytest.mark.slow
def test_explore_on_a_dask_cluster_with_real_synthesis(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real point evaluator on Dask workers, with yosys and nextpnr for each point."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from distributed import LocalCluster

        cluster = LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None)
        with cluster:
            code, out, _ = run(capsys, "explore", "--formats", "int4", "--arrays", "2x2", "--synth", "--scheduler",
                               cluster.scheduler_address, "-o", str(tmp_path), "--json")  # fmt: skip
    (row,) = json.loads(out)
    assert code == 0 and row["synth_luts"] > 100 and 20 < row["fmax_mhz"] < 400
    assert abs(row["lut_equivalents"] / row["synth_lut_equivalents"] - 1) < 0.3


def test_explore_prices_accumulators_and_their_accuracy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--accumulators: every product of the model through numerics with each accumulator. MX
    formats default to the FP32 datapath; FP8 E4M3 products on the code grid (up to 448**2) overflow
    an fp16 accumulator, so every image meets Inf and counts as wrong; a 14-bit window costs little."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "explore", "--formats", "fp8_e4m3,mxfp4", "--arrays", "2x2", "--dataflow", "os",
                       "--accumulators", "default,exact,fp16,fp32_w14", "-o", "accs", "--json")  # fmt: skip
    rows = {(r["format"], r["accumulator"]): r for r in json.loads(out)}
    assert code == 0 and set(rows) == {("fp8_e4m3", "exact"), ("fp8_e4m3", "fp16"), ("fp8_e4m3", "fp32_w14"),
                                       ("mxfp4", "fp32"), ("mxfp4", "exact"), ("mxfp4", "fp16"),
                                       ("mxfp4", "fp32_w14")}  # fmt: skip
    assert rows["fp8_e4m3", "fp16"]["accuracy"] == 0.0
    assert rows["fp8_e4m3", "fp32_w14"]["accuracy"] > 0.9
    assert rows["mxfp4", "fp32"]["accuracy"] > 0.9
    mx_exact, mx_fp32 = rows["mxfp4", "exact"], rows["mxfp4", "fp32"]
    assert mx_fp32["lut_equivalents"] < mx_exact["lut_equivalents"] and mx_fp32["energy_pj"] < mx_exact["energy_pj"]
    assert mx_fp32["partial_sums_share"] < mx_exact["partial_sums_share"]
    code, _, err = run(capsys, "explore", "--formats", "int8", "--accumulators", "fp33", "-o", "bad")
    assert code == 2 and "accumulator must be exact, int{W} (wrapping)" in err and "got 'fp33'" in err


def test_explore_runs_an_a2q_model_on_narrow_registers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """An A2Q model trained for 16 bits keeps its accuracy on a 16-bit register; at 12 bits its sums wrap."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "explore", "--model", "a2q16", "--arrays", "2x2", "--accumulators", "int12,int16,exact",
                       "-o", "a2q", "--json")  # fmt: skip
    rows = {r["accumulator"]: r for r in json.loads(out)}
    assert code == 0 and {r["format"] for r in rows.values()} == {"int8"}
    assert rows["int16"]["accuracy"] == rows["exact"]["accuracy"] > 0.9 > rows["int12"]["accuracy"]
    assert rows["int16"]["lut_equivalents"] <= rows["exact"]["lut_equivalents"]
    code, _, err = run(capsys, "explore", "--model", "a2q16", "--formats", "fp8_e4m3", "-o", "bad")
    assert code == 2 and "a2q16 has INT8 weights and uint8 activations of its own: --formats must be int8, got " \
        "'fp8_e4m3'" in err  # fmt: skip
    code, _, err = run(capsys, "explore", "--model", "a2q9", "-o", "bad")
    assert code == 2 and "the accumulator width P must be between 10 and 32 bits" in err


def test_explore_prices_the_output_stage(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--output-stage: every array with its output stage (hw.RequantArray); the stage's LUT
    equivalents beside the whole design's, its register one more cycle per layer (the MLP has two),
    its energy on top; MX formats take the exact accumulator it needs."""
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "explore", "--formats", "int8", "--arrays", "2x2", "-o", "bare", "--json")
    (bare,) = json.loads(out)
    argv = ("explore", "--formats", "int8,mxfp4", "--arrays", "2x2", "--output-stage", "-o", "staged")
    code, out, _ = run(capsys, *argv, "--json")
    staged = {r["format"]: r for r in json.loads(out)}
    assert code == 0 and not bare["output_stage"] and bare["stage_lut_equivalents"] is None
    int8 = staged["int8"]
    assert int8["output_stage"] and int8["accumulator"] == "exact" and int8["accuracy"] == bare["accuracy"]
    assert abs(int8["lut_equivalents"] - bare["lut_equivalents"] - int8["stage_lut_equivalents"]) <= 1
    assert 2 * 1000 < int8["stage_lut_equivalents"] < 2 * 4000  # two lanes of an int32 stage
    assert int8["cycles_per_inference"] == bare["cycles_per_inference"] + 2
    assert int8["energy_pj"] > bare["energy_pj"]
    assert staged["mxfp4"]["accumulator"] == "exact"
    assert staged["mxfp4"]["stage_lut_equivalents"] > 5 * int8["stage_lut_equivalents"]  # a 500-bit sum to requantize
    code, out, _ = run(capsys, *argv)  # the cached points, as a table
    assert code == 0 and "stage" in out and "with the output stage" in out
    code, _, err = run(capsys, "explore", "--output-stage", "--accumulators", "fp32", "-o", "bad")
    assert code == 2 and "--output-stage requantizes an integer sum: --accumulators must be exact or int{W} with " \
        "it, got 'fp32'" in err  # fmt: skip
