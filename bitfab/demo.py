"""`bitfab demo`: today the format catalogue and a quantization study on a synthetic weight tensor.

Later stages (hardware generation, co-simulation, synthesis) extend this flow.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from rich.console import Console

import numerics
from bitfab.cli import DEFAULT_COMPARE, _formats_table, _stats_table, compare, error_histogram, format_rows


def synthetic_weights(seed: int = 0) -> np.ndarray:
    """A (256, 512) layer with Student-t weights and a few outlier input channels, like an LLM layer."""
    rng = np.random.default_rng(seed)
    w = rng.standard_t(df=5, size=(256, 512)) * 0.02
    outliers = rng.choice(512, size=6, replace=False)
    w[:, outliers] *= 12.0
    return w.astype(np.float32)


def run_demo(output: Path, console: Console, as_json: bool = False) -> int:
    output.mkdir(parents=True, exist_ok=True)
    weights = synthetic_weights()
    np.save(output / "weights.npy", weights)
    fmts = [numerics.get(n) for n in DEFAULT_COMPARE.split(",")]
    rows = compare(weights, fmts)
    error_histogram(rows, output / "errors.png")
    public = [{k: v for k, v in r.items() if k != "errors"} for r in rows]
    (output / "compare.json").write_text(json.dumps(public, indent=2))
    if as_json:
        print(json.dumps({"formats": format_rows(), "compare": public}, indent=2))
        return 0
    console.print(_formats_table(format_rows()))
    title = "synthetic 256x512 layer with outlier channels (element formats: per-tensor scale; composite: their own)"
    console.print(_stats_table(public, title))
    console.print(f"wrote {output / 'weights.npy'}, {output / 'compare.json'}, {output / 'errors.png'}")
    return 0
