"""Design-space sweeps on any `concurrent.futures.Executor`, resumable, with Pareto fronts.

`sweep` evaluates points (JSON-able dicts) with a picklable function on a local process pool or a
Dask cluster (`executor_for("tcp://host:port")` gives the cluster's executor), writes each result
to <cache>/<hash of the point>.json as it completes, and skips points already there: an
interrupted sweep picks up where it stopped. `pareto` and `plot_pareto` find and draw the front.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import Any

Point = dict[str, Any]


def point_key(point: Point) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:20]


@contextmanager
def executor_for(scheduler: str | None, workers: int = 2) -> Iterator[Executor]:
    """A local process pool, or the executor of the Dask cluster at `scheduler` (tcp://host:port)."""
    if scheduler is None:
        # spawn, not fork: a forked child of a process whose torch / OpenMP threads are running can deadlock
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            yield pool
        return
    if not scheduler.startswith(("tcp://", "tls://", "inproc://")):
        raise ValueError(f"--scheduler must be a Dask scheduler address like tcp://HOST:PORT, got {scheduler!r}")
    from distributed import Client

    try:
        client = Client(scheduler, timeout="10s")
    except OSError as error:
        raise ValueError(f"no Dask scheduler answers at {scheduler}: {error}") from error
    try:
        yield client.get_executor()
    finally:
        client.close()


def sweep(points: list[Point], evaluate: Callable[[Point], dict[str, Any]], executor: Executor, cache: Path,
          progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Results in the order of `points` (each the point merged with what `evaluate` returned)."""
    cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    for point in points:
        path = cache / f"{point_key(point)}.json"
        if path.exists():
            results[point_key(point)] = json.loads(path.read_text())
    todo = [p for p in points if point_key(p) not in results]
    done = len(points) - len(todo)
    if progress is not None:
        progress(done, len(points))
    futures = {executor.submit(evaluate, point): point for point in todo}
    for future in as_completed(futures):
        point = futures[future]
        result = {**point, **future.result()}
        key = point_key(point)
        temporary = cache / f"{key}.tmp"
        temporary.write_text(json.dumps(result, indent=1))
        temporary.replace(cache / f"{key}.json")  # a result file is whole or absent
        results[key] = result
        done += 1
        if progress is not None:
            progress(done, len(points))
    return [results[point_key(p)] for p in points]


def pareto(rows: list[dict[str, Any]], cost: str, value: str = "accuracy") -> list[dict[str, Any]]:
    """Rows no other row beats (lower or equal `cost` and higher or equal `value`, one strictly)."""
    front = []
    for row in rows:
        here = (row[cost], row[value])
        better = [o for o in rows if o[cost] <= here[0] and o[value] >= here[1] and (o[cost], o[value]) != here]
        if not better:
            front.append(row)
    return sorted(front, key=lambda r: r[cost])


def plot_pareto(rows: list[dict[str, Any]], costs: list[tuple[str, str]], path: Path, title: str,
                label: Callable[[dict[str, Any]], str]) -> None:  # fmt: skip
    """One panel per (cost key, axis label): every point, its label, the front as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(costs), figsize=(6 * len(costs), 4.5))
    for axis, (key, axis_label) in zip(list(getattr(axes, "flat", [axes])), costs, strict=True):
        axis.scatter([r[key] for r in rows], [100 * r["accuracy"] for r in rows], color="tab:blue", s=18)
        for row in rows:
            axis.annotate(label(row), (row[key], 100 * row["accuracy"]), fontsize=7, xytext=(3, 3),
                          textcoords="offset points")  # fmt: skip
        front = pareto(rows, key)
        axis.step([r[key] for r in front], [100 * r["accuracy"] for r in front], where="post", color="tab:red",
                  label="Pareto front")  # fmt: skip
        axis.set_xscale("log")
        axis.set_xlabel(axis_label)
        axis.set_ylabel("test accuracy (%)")
        axis.legend(loc="lower right")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)
