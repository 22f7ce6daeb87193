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


def test_pareto_labels_never_overlap_and_arrays_get_their_own_markers(tmp_path: Path) -> None:
    from itertools import combinations

    import matplotlib.pyplot as plt

    from synth.explore import pareto_figure

    arrays = ("2x2", "4x4", "8x8")
    # seven points within 5% of cost and 0.2 points of accuracy, three far off: labels at one offset would collide
    far = {7: (4000, 1000, 0.86), 8: (16_000, 30, 0.93), 9: (64_000, 3, 0.95)}
    rows = [{"name": f"fp8_e4m3 #{i}", "array": arrays[i % 3], "luts": far[i][0] if i in far else 1000 + 8 * i,
             "energy": far[i][1] if i in far else 300 + 3 * i, "accuracy": far[i][2] if i in far else 0.9 + 0.0003 * i}
            for i in range(10)]  # fmt: skip
    costs = [("luts", "LUTs"), ("energy", "pJ")]
    figure, boxes = pareto_figure(rows, costs, "t", lambda r: f"{r['name']} {r['array']}")
    figure.canvas.draw()  # the boxes still hold once drawn: nothing moved the axes after the labels were placed
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    for axis, placed in zip(figure.axes, boxes, strict=True):
        assert len(placed) == len(rows)
        assert not [(a, b) for a, b in combinations(placed, 2) if a.overlaps(b)]
        drawn = [text.get_window_extent(renderer) for text in axis.texts if text.get_text()]
        assert [box.bounds for box in drawn] == [box.bounds for box in placed]
        assert [len(c.get_offsets()) for c in axis.collections] == [4, 3, 3]  # one scatter (marker) per array
        assert len({c.get_paths()[0].vertices.tobytes() for c in axis.collections}) == 3
        ticks = [t.get_window_extent(renderer) for t in axis.get_xticklabels() if t.get_text()]
        assert not [(a, b) for a, b in combinations(ticks, 2) if a.overlaps(b)]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["array 2x2", "array 4x4", "array 8x8",
                                                                     "Pareto front"]  # fmt: skip
    plt.close(figure)
    synth.plot_pareto(rows, costs, tmp_path / "p.png", "t", lambda r: f"{r['name']} {r['array']}")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]  # the temporary file was renamed onto it


def test_an_interrupted_pool_stops_its_workers_and_passes_the_interrupt_on() -> None:
    """Ctrl-C in a sweep: the KeyboardInterrupt reaches the caller (not an error from the pool's
    shutdown) and the running worker is stopped."""
    import time

    with pytest.raises(KeyboardInterrupt), synth.executor_for(None, 1) as pool:
        future = pool.submit(time.sleep, 600)
        while not future.running():
            time.sleep(0.05)
        workers = list(pool._processes.values())  # type: ignore[attr-defined]
        raise KeyboardInterrupt
    for worker in workers:  # generous under load (2 busy cores): a worker left running sleeps 600 s
        worker.join(timeout=60)
        assert not worker.is_alive()
