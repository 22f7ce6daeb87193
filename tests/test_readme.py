"""The README's Python example runs, and its stated results hold."""

import pathlib
import re

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_example_runs_and_its_comments_hold() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3, "README has three python examples (numerics, a PE, an array)"
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    e4m3 = namespace["e4m3"]
    np.testing.assert_array_equal(e4m3.decode(namespace["codes"]), [0.3125, np.nan])
    assert (int(namespace["sig"][0]), int(namespace["exp"][0])) == (10, -5)
    assert namespace["numerics"].exact_width(e4m3, e4m3, 64) == 43
    assert namespace["q"].scale.shape == (256, 4, 1)
    assert (namespace["enc"].elements.shape, namespace["enc"].scales.shape) == ((8, 8, 32), (8, 8))


def test_readme_hardware_example_runs(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    text = (ROOT / "README.md").read_text()
    block = re.findall(r"```python\n(.*?)```", text, flags=re.S)[1]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    pe = namespace["pe"]
    assert (pe.acc_width, pe.lsb_exponent, pe.latency) == (47, -18, 2)
    assert (tmp_path / "out" / "mac_pe.v").exists()


def test_readme_array_example_runs_and_its_comments_hold() -> None:
    block = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)[2]
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    hw, cfg = namespace["hw"], namespace["cfg"]
    ours, scalesim = hw.cycles(cfg, 64, 784, 128), hw.scalesim_cycles("ws", 64, 784, 128, 8, 8)
    assert ours < scalesim  # double-buffered: faster than SCALE-Sim's serialized folds
    beats = namespace["beats"]
    assert beats.a.shape == (16 * 98 * 64, 8) and beats.b.shape == (16 * 98 * 8, 8) and beats.results == 16 * 64
    namespace["array"]._MustUse__silence = True
