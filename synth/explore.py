"""Design-space sweeps on any `concurrent.futures.Executor`, resumable, with Pareto fronts.

`sweep` evaluates points (JSON-able dicts) with a picklable function on a local process pool or a
Dask cluster (`executor_for("tcp://host:port")` gives the cluster's executor), writes each result
to <cache>/<hash of the point>.json as it completes, and skips points already there: an
interrupted sweep picks up where it stopped. `pareto` and `plot_pareto` find and draw the front.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Executor, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.backend_bases import RendererBase
    from matplotlib.figure import Figure
    from matplotlib.text import Annotation
    from matplotlib.transforms import Bbox

Point = dict[str, Any]


def point_key(point: Point) -> str:
    return hashlib.sha256(json.dumps(point, sort_keys=True).encode()).hexdigest()[:20]


@contextmanager
def executor_for(scheduler: str | None, workers: int = 2) -> Iterator[Executor]:
    """A local process pool, or the executor of the Dask cluster at `scheduler` (tcp://host:port)."""
    if scheduler is None:
        # spawn, not fork: a forked child of a process whose torch / OpenMP threads are running can deadlock
        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_leave_interrupts_to_the_parent)  # fmt: skip
        try:
            yield pool
        except BaseException:  # Ctrl-C or a failure: drop the queued points, stop the running ones
            running = list((getattr(pool, "_processes", None) or {}).values())  # shutdown() forgets them
            pool.shutdown(wait=False, cancel_futures=True)
            for process in running:
                process.terminate()
            raise
        pool.shutdown(wait=True)
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


def _leave_interrupts_to_the_parent() -> None:
    """Workers ignore Ctrl-C (the terminal sends it to the whole process group): the parent stops
    them and reports the interruption once, without a traceback from every worker."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


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


DPI = 120
MARKER_AREA_PT2 = 30
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*", "h", "<", ">", "p")
COLOURS = ("tab:blue", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:cyan", "tab:olive", "tab:pink")
LABEL_FONT_PT = 7
LEADER_FROM_PT = 8  # labels placed farther than this from their point get a thin line to it
# Candidate label offsets (points), nearest first; on each ring upper right first, then the other corners and sides.
_ANGLES_DEG = (45, 135, -45, -135, 0, 180, 90, -90, 22.5, 157.5, -22.5, -157.5, 67.5, 112.5, -67.5, -112.5)
_OFFSETS_PT = [(r * math.cos(math.radians(a)), r * math.sin(math.radians(a))) for r in (4, 10, 18, 28, 40, 56, 76)
               for a in _ANGLES_DEG]  # fmt: skip
# Mantissas of labelled log ticks, densest first, each with the smallest gap between two of its ticks (decades).
_TICK_SUBS = (((1, 2, 3, 4, 5, 6, 7, 8, 9), 0.046), ((1, 2, 3, 5), 0.125), ((1, 2, 5), 0.3), ((1,), 1.0))


def plot_pareto(rows: list[dict[str, Any]], costs: list[tuple[str, str]], path: Path, title: str,
                label: Callable[[dict[str, Any]], str]) -> None:  # fmt: skip
    """One panel per (cost key, axis label): every point (one marker per "array"), its label, the front as a step line.

    The PNG is written to a temporary file beside `path` and renamed onto it, so `path` is whole or absent.
    """
    import matplotlib.pyplot as plt

    figure, _ = pareto_figure(rows, costs, title, label)
    try:
        save_figure(figure, path)
    finally:
        plt.close(figure)


def pareto_figure(rows: list[dict[str, Any]], costs: list[tuple[str, str]], title: str,
                  label: Callable[[dict[str, Any]], str]) -> tuple[Figure, list[list[Bbox]]]:  # fmt: skip
    """The figure of `plot_pareto` and, per panel, the display-space boxes of its point labels (which never overlap)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(costs), figsize=(6.5 * len(costs), 5.2), dpi=DPI, squeeze=False,
                                layout="constrained")  # fmt: skip
    groups = sorted({row.get("array") for row in rows}, key=_array_order)
    for axis, (key, axis_label) in zip(axes.flat, costs, strict=True):
        for index, group in enumerate(groups):
            members = [row for row in rows if row.get("array") == group]
            axis.scatter([r[key] for r in members], [100 * r["accuracy"] for r in members], s=MARKER_AREA_PT2,
                         marker=MARKERS[index % len(MARKERS)], color=COLOURS[index % len(COLOURS)], zorder=3,
                         label="design point" if group is None else f"array {group}")  # fmt: skip
        front = pareto(rows, key)
        axis.step([r[key] for r in front], [100 * r["accuracy"] for r in front], where="post", color="tab:red",
                  linewidth=1.2, zorder=2, label="Pareto front")  # fmt: skip
        axis.set_xscale("log")
        axis.margins(x=0.06, y=0.1)
        axis.grid(alpha=0.3)
        axis.set_xlabel(axis_label)
        axis.set_ylabel("test accuracy (%)")
    handles, names = axes.flat[0].get_legend_handles_labels()
    figure.legend(handles, names, loc="outside lower center", ncols=len(handles), frameon=False)
    figure.suptitle(title)
    figure.draw_without_rendering()  # lay out, space the ticks for the panels' widths, lay out again, then freeze:
    for axis in axes.flat:  # the labels are placed in final display coordinates
        _log_ticks(axis)
    figure.draw_without_rendering()
    figure.set_layout_engine("none")
    renderer = figure.canvas.get_renderer()  # type: ignore[attr-defined]
    boxes = []
    for axis, (key, _) in zip(axes.flat, costs, strict=True):
        front = pareto(rows, key)
        on_front = {id(r) for r in front}
        ordered = sorted(rows, key=lambda r: id(r) not in on_front)  # the front's labels get the best places
        points = [(float(r[key]), 100 * float(r["accuracy"])) for r in ordered]
        steps = [(r[key], 100 * r["accuracy"]) for r in front[:1]]
        for here, after in itertools.pairwise(front):  # the step line's corners: across, then up
            steps += [(after[key], 100 * here["accuracy"]), (after[key], 100 * after["accuracy"])]
        avoid = _along(axis.transData.transform(steps), spacing=3 * figure.dpi / 72) if steps else None
        boxes.append(place_labels(axis, points, [label(r) for r in ordered], renderer, avoid))
    return figure, boxes


def place_labels(axis: Axes, points: list[tuple[float, float]], texts: list[str], renderer: RendererBase,
                 avoid: np.ndarray | None = None) -> list[Bbox]:  # fmt: skip
    """Annotate each data point with its text greedily, in order, at the first candidate offset whose text box
    (measured by `renderer`) stays inside the axes and clears every placed label, leader line, point's marker and
    display point of `avoid` (an (n, 2) array, say samples along a line), and whose own leader line (drawn when the
    offset is far) crosses no placed label.
    Where no candidate is clear, the one with the least overlap wins. Returns the label boxes in display pixels.
    """
    from matplotlib.transforms import Bbox

    pixels_per_pt = axis.figure.dpi / 72
    half = (math.sqrt(MARKER_AREA_PT2) / 2 + 0.5) * pixels_per_pt
    centres = axis.transData.transform(points) if points else []
    markers = [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in centres]
    placed: list[Bbox] = []
    leaders = np.empty((0, 2))  # points sampled along the leader lines drawn so far, in display pixels
    for (x, y), text, centre in zip(points, texts, centres, strict=True):
        note = axis.annotate(
            text, (x, y), xytext=(0, 0), textcoords="offset points", fontsize=LABEL_FONT_PT, annotation_clip=False
        )
        note.set_in_layout(False)
        least, best, best_leader = math.inf, _OFFSETS_PT[0], leaders[:0]
        for offset in _OFFSETS_PT:
            box = _aim(note, offset, renderer).padded(pixels_per_pt)  # keep a point of air around every label
            leader = _leader(centre, offset, pixels_per_pt, half)
            crossings = box.count_contains(leaders) + sum(b.count_contains(leader) for b in placed)
            if avoid is not None:
                crossings += box.count_contains(avoid)
            clash = (
                10 * (_overlap(box, placed) + crossings) + _overlap(box, markers) + _area(box) - _area(box, axis.bbox)
            )
            if clash < least:
                least, best, best_leader = clash, offset, leader
            if clash <= 0:
                break
        placed.append(_aim(note, best, renderer))
        if len(best_leader):
            leaders = np.concatenate([leaders, best_leader])
            axis.annotate("", (x, y), xytext=best, textcoords="offset points", annotation_clip=False,
                          arrowprops={"arrowstyle": "-", "linewidth": 0.5, "color": "0.45", "shrinkA": 0,
                                      "shrinkB": half / pixels_per_pt}).set_in_layout(False)  # fmt: skip
    return placed


def _leader(centre: np.ndarray, offset: tuple[float, float], pixels_per_pt: float, skip: float) -> np.ndarray:
    """Points along the leader line from a marker's edge (`skip` pixels from its centre) to a label `offset` points
    away, in display pixels; none when the label is near enough to need no line."""
    if math.hypot(*offset) <= LEADER_FROM_PT:
        return np.empty((0, 2))
    end = np.asarray(offset) * pixels_per_pt
    fractions = np.linspace(skip / np.hypot(*end), 1, 16)[:, None]
    return centre + fractions * end


def _along(corners: np.ndarray, spacing: float) -> np.ndarray:
    """Points at most `spacing` apart along the polyline through `corners` (display pixels)."""
    parts = [corners[:1]]
    for start, end in itertools.pairwise(corners):
        count = max(int(np.hypot(*(end - start)) // spacing), 1)
        parts.append(start + np.linspace(0, 1, count + 1)[1:, None] * (end - start))
    return np.concatenate(parts)


def _aim(note: Annotation, offset: tuple[float, float], renderer: RendererBase) -> Bbox:
    """Put the text at `offset` from its point, aligned so that it grows away from the point; its box."""
    dx, dy = offset
    note.xyann = offset
    note.set_horizontalalignment("left" if dx > 1 else "right" if dx < -1 else "center")
    note.set_verticalalignment("bottom" if dy > 1 else "top" if dy < -1 else "center")
    return note.get_window_extent(renderer)


def _area(box: Bbox, within: Bbox | None = None) -> float:
    from matplotlib.transforms import Bbox

    part = box if within is None else Bbox.intersection(box, within)
    return 0.0 if part is None else part.width * part.height


def _overlap(box: Bbox, others: list[Bbox]) -> float:
    return sum(_area(box, other) for other in others)


def _array_order(array: str | None) -> tuple[int, str]:
    """Sizes "4x4" before "8x8" before "16x16"; arrays that do not read RxC after those, rows without one last."""
    if array is None:
        return (sys.maxsize, "")
    rows, _, columns = array.partition("x")
    if rows.isdigit() and columns.isdigit():
        return (int(rows) * int(columns), array)
    return (sys.maxsize - 1, array)


def _log_ticks(axis: Axes) -> None:
    """Labelled log ticks at least 0.45 inch apart (1-2-3-5, 1-2-5 or decades), as plain 300, 5k, 20k."""
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    low, high = axis.get_xlim()
    decades = max(math.log10(high / low), 1e-9)
    inches_per_decade = axis.get_position().width * axis.figure.get_figwidth() / decades
    subs = next((subs for subs, closest in _TICK_SUBS if closest * inches_per_decade >= 0.45), (1,))
    locator = LogLocator(base=10, subs=subs, numticks=12)
    if decades < 1 and sum(low <= tick <= high for tick in locator.tick_values(low, high)) < 3:
        axis.xaxis.set_major_locator(MaxNLocator(nbins=5, steps=[1, 2, 5, 10]))  # a fraction of a decade: as if linear
    else:
        axis.xaxis.set_major_locator(locator)
    axis.xaxis.set_major_formatter(FuncFormatter(_plain))
    axis.xaxis.set_minor_locator(LogLocator(base=10, subs=tuple(range(2, 10)), numticks=12))
    axis.xaxis.set_minor_formatter(NullFormatter())


def _plain(value: float, _position: object = None) -> str:
    """300, 1.5k, 20k, 3M: short tick labels."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def save_figure(figure: Figure, path: Path) -> None:
    """Save beside `path` under a temporary name with the same suffix (so the format is the same), then rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f"{path.stem}.{os.getpid()}.tmp{path.suffix or '.png'}")
    try:
        figure.savefig(temporary, dpi=DPI)
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
