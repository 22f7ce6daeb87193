"""Sweeps on a local process pool and on a Dask LocalCluster, resuming from cached points."""

from __future__ import annotations

import os
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import synth


def square(point: dict[str, Any]) -> dict[str, Any]:
    Path(point["log"], f"{point['x']}.{os.getpid()}").touch()  # one file per evaluation
    return {"y": point["x"] ** 2}


def points(log: Path, n: int) -> list[dict[str, Any]]:
    return [{"x": x, "log": str(log)} for x in range(n)]


def test_a_process_pool_sweep_resumes_from_cached_points(tmp_path: Path) -> None:
    log = tmp_path / "log"
    log.mkdir()
    with ProcessPoolExecutor(2) as pool:
        first = synth.sweep(points(log, 3), square, pool, tmp_path / "cache")
        assert [r["y"] for r in first] == [0, 1, 4] and len(list(log.iterdir())) == 3
        seen: list[tuple[int, int]] = []
        again = synth.sweep(points(log, 5), square, pool, tmp_path / "cache", lambda d, t: seen.append((d, t)))
    assert [r["y"] for r in again] == [0, 1, 4, 9, 16]
    assert len(list(log.iterdir())) == 5  # only the two new points ran
    assert seen[0] == (3, 5) and seen[-1] == (5, 5)


def test_a_dask_cluster_runs_the_same_sweep(tmp_path: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from distributed import LocalCluster

        log = tmp_path / "log"
        log.mkdir()
        cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None)
        with cluster, synth.executor_for(cluster.scheduler_address) as executor:
            rows = synth.sweep(points(log, 4), square, executor, tmp_path / "cache")
    assert [r["y"] for r in rows] == [0, 1, 4, 9]


def test_bad_scheduler_addresses_are_refused() -> None:
    message = "must be a Dask scheduler address like tcp://HOST:PORT, got 'localhost:8786'"
    with pytest.raises(ValueError, match=message), synth.executor_for("localhost:8786"):
        pass


def test_pareto_front_and_plot(tmp_path: Path) -> None:
    rows = [{"name": "a", "luts": 100, "energy": 5.0, "accuracy": 0.90},
            {"name": "b", "luts": 200, "energy": 4.0, "accuracy": 0.95},
            {"name": "c", "luts": 300, "energy": 6.0, "accuracy": 0.94},
            {"name": "d", "luts": 100, "energy": 7.0, "accuracy": 0.85}]  # fmt: skip
    assert [r["name"] for r in synth.pareto(rows, "luts")] == ["a", "b"]
    assert [r["name"] for r in synth.pareto(rows, "energy")] == ["b"]
    synth.plot_pareto(rows, [("luts", "LUTs"), ("energy", "pJ")], tmp_path / "p.png", "t", lambda r: r["name"])
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
