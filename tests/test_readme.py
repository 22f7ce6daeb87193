"""The README's Python example runs, and its stated results hold."""

import pathlib
import re

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_readme_python_example_runs_and_its_comments_hold() -> None:
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 5, "README has five python examples (numerics, a PE, an array, a user's model, a network)"
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


def test_readme_user_model_maps_as_the_readme_says(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The bring-your-own-model example: its layers and the formats the README prints."""
    import models
    from bitfab.cli import main

    block = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)[3]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(block)
    np.save(tmp_path / "x.npy", models.digits().test_images[:8])
    model = models.load("net.py:build")
    infos = models.describe(model, models.digits().test_images[:1])
    assert [(i.name, i.kind, i.gemm, i.mappable) for i in infos] == [("conv", "conv2d", (16, 9, 4), True),
                                                                      ("fc", "linear", (1, 64, 10), True)]  # fmt: skip
    assert infos[1].input.startswith("uint8") and infos[1].bias.startswith("int32 in units of scale_in*scale_w")
    assert main(["layers", "--model", "net.py:build", "--inputs", "x.npy"]) == 0


@pytest.mark.slow
def test_readme_user_model_passes_all_four_verdicts(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    import os

    import models
    from bitfab.cli import main

    block = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)[3]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(block)
    np.save(tmp_path / "x.npy", models.digits().test_images[:4])
    cache = os.environ["BITFAB_CACHE"]
    assert main(["cosim", "model", "--model", "net.py:build", "--inputs", "x.npy", "--array", "4x4", "--cache-dir",
                 cache]) == 0  # fmt: skip
    assert "PASS: 2 of 2 layers pass all four verdicts" in capsys.readouterr().out


def test_readme_network_example_runs_whole_and_equals_brevitas(tmp_path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    """The whole-network example: a user's stock-Brevitas model with its hardware program."""
    import models
    from bitfab.cli import main

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    (block,) = [b for b in blocks if "def hardware_program" in b]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "net.py").write_text(block)
    np.save(tmp_path / "x.npy", models.digits().test_images[:6])
    assert main(["cosim", "network", "--model", "net.py:build", "--inputs", "x.npy", "--numerics-only"]) == 0
    printed = capsys.readouterr().out
    assert "PASS (bit-exact against numerics and Brevitas at every layer)" in printed
