# amaranth: UnusedElaboratable=no
"""`bitfab explore` on a tiny sweep and `bitfab demo --quick` (the demo's full run places and routes
an 8x8 array, minutes on 2 cores; the quick mode runs the same steps on a 4x4 array without
place and route)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bitfab.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_explore_sweeps_resumes_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = (
        "explore",
        "--model",
        "mlp",
        "--formats",
        "int8,int4,mxfp4",
        "--arrays",
        "2x2",
        "-o",
        str(tmp_path),
        "--json",
    )
    code, out, _ = run(capsys, *argv)
    rows = json.loads(out)
    assert code == 0 and [r["format"] for r in rows] == ["int8", "int4", "mxfp4"]
    assert all(r["accuracy"] > 0.9 and r["lut_equivalents"] > 0 and r["cycles"] > 0 and r["energy_pj"] > 0
               for r in rows)  # fmt: skip
    by = {r["format"]: r for r in rows}
    assert by["int4"]["lut_equivalents"] < by["int8"]["lut_equivalents"] < by["mxfp4"]["lut_equivalents"]
    assert by["int4"]["energy_pj"] < by["int8"]["energy_pj"]
    assert {p.name for p in tmp_path.iterdir()} >= {"explore.csv", "explore.json", "pareto.png", "points"}
    stamps = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "points").iterdir()}
    code, again, _ = run(capsys, *argv)
    assert code == 0 and json.loads(again) == rows  # resumed: every point came from the cache
    assert {p.name: p.stat().st_mtime_ns for p in (tmp_path / "points").iterdir()} == stamps
    code, _, err = run(capsys, "explore", "--arrays", "8", "-o", str(tmp_path))
    assert code == 2 and "--arrays takes RxC shapes like 4x4,8x8, got '8'" in err


@pytest.mark.slow
def test_quick_demo_runs_every_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_dir = tmp_path / "demo"
    code, out, _ = run(capsys, "demo", "--quick", "-o", str(out_dir), "--json")
    report = json.loads(out)
    assert code == 0 and report["cosim"]["bit_exact"] and report["cosim"]["images"] == 64
    assert report["cosim"]["cycles_measured"] == report["cosim"]["cycles_model"]
    assert report["accuracy"]["hardware_in_the_loop"] == report["cosim"]["brevitas_accuracy_on_these_images"]
    synthesis = report["synthesis"]
    assert synthesis["luts"] > 100 and synthesis["dsps"] == 16 == synthesis["model_dsps"]
    assert report["energy"]["pj_per_inference"] > 0 and len(report["comparison"]) == 7
    assert any(row["pareto"] for row in report["comparison"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # nothing outside the chosen directory
    assert {"report.json", "pareto.png", "explore.csv", "hardware"} <= {p.name for p in out_dir.iterdir()}


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
