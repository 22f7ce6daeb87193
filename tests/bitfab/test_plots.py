"""The error histogram of `bitfab compare`: small multiples, any number of formats, exact formats included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bitfab.plots import error_histogram


def rows(n: int) -> list[dict[str, object]]:
    x = np.random.default_rng(0).standard_normal((32, 64))
    out: list[dict[str, object]] = [{"format": "bf16", "sqnr_db": float("inf"), "errors": np.zeros_like(x)}]
    for i in range(1, n):
        step = 2.0 ** -(i % 9)
        errors = np.round(x / step) * step - x
        out.append({"format": f"int{i}", "sqnr_db": float(10 * np.log10(np.mean(x**2) / np.mean(errors**2))),
                    "errors": errors})  # fmt: skip
    return out


@pytest.mark.parametrize("n", [1, 15, 20])
def test_error_histogram_writes_a_png_without_warnings(tmp_path: Path, n: int) -> None:
    path = tmp_path / "out" / "errors.png"
    error_histogram(rows(n), path, "quantization error of x.npy")  # pytest runs with -W error: no warnings either
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in path.parent.iterdir()] == ["errors.png"]  # the temporary file was renamed onto it


def test_error_histogram_needs_a_format(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"^rows must hold at least one format, got none$"):
        error_histogram([], tmp_path / "errors.png", "t")
