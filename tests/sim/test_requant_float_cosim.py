# amaranth: UnusedElaboratable=no
"""hw.RequantArray (and the bit-serial unit) with minifloat and MX outputs in Verilator: every code
against numerics (`requantize_minifloat`, `requantize_mx`), whose own oracle is ml_dtypes.

Minifloats: K = 1 and B = 1 make the accumulators the 256 INT8 values; per channel a bias and a
power-of-two multiplier slide that window (in eighths of a quantum) over the subnormals, every
binade and past the largest value (tests/numerics/test_requant.py: binade_windows), so every tie,
binade edge and saturation passes through the lanes; the run-time shift moves the windows for the
formats whose range needs more multiplier bits. MX: B is the identity, so each row of A is one
row of channels to quantize: blocks with ties, saturation after the floor rule, a zero block,
power-of-two amaxes, ReLU, and a layer whose last block is partial.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim
from tests.numerics.test_requant import binade_windows

INT8 = numerics.get("int8")


def float_design(out_format: object, dataflow: str = "ws", cols: int = 4, k_max: int = 64) -> hw.RequantArray:
    return hw.RequantArray("int8", "int8", rows=2, cols=cols, dataflow=dataflow, pipeline=1, k_max=k_max, m_max=256,
                           out_format=out_format)  # type: ignore[arg-type]  # fmt: skip


@pytest.mark.parametrize(("name", "dataflow"), [("fp8_e4m3", "ws"), ("fp8_e5m2", "os"), ("fp4_e2m1", "ws")])
def test_minifloat_outputs_round_every_tie_and_saturate_like_numerics(name: str, dataflow: str, build_root: Path,
                                                                      tmp_path: Path) -> None:  # fmt: skip
    fmt = numerics.get(name)
    assert isinstance(fmt, numerics.Minifloat)
    design = float_design(name, dataflow)
    runs, saturating = 0, False
    for lowest in (0, 16):
        acc, bias, multiplier, shift = binade_windows(fmt, lowest, span=15)
        if len(bias) == 0 or shift < 0:
            continue  # the first windows reach past the largest value already
        a, b = INT8.encode(acc.astype(float)), INT8.encode(np.ones((1, len(bias))))
        for activation, clamp in (("identity", None), ("relu", None), ("clamp", (-2.0, 3.0))):
            stage = numerics.Requantization(bias, multiplier, shift, name, 0, activation, clamp)  # type: ignore[arg-type]
            report = sim.cosim_requant(design, a, b, stage, build_root, tmp_path / f"{lowest}{activation}")
            assert report.passed, (lowest, activation, report.failure())
            assert report.cycles == hw.requant_cycles(design.config, 256, 1, len(bias))
            runs += 1
        values = np.ldexp(((acc + bias) * multiplier).astype(float), -shift)
        saturating |= bool((np.abs(values) > float(fmt.max)).any())
    assert runs >= 3 and saturating
    # the same design in INT mode (`to_format` low): a network's last layer, accumulators to the host
    acc, bias, multiplier, _ = binade_windows(fmt, 0, span=15)
    stage = numerics.Requantization(bias, multiplier, 3, "int16", activation="relu")
    report = sim.cosim_requant(design, INT8.encode(acc.astype(float)), INT8.encode(np.ones((1, len(bias)))), stage,
                               build_root, tmp_path / "int")  # fmt: skip
    assert report.passed, report.failure()


def mx_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """Rows of channels: random, a zero row, full-scale rows (saturation after the floor rule,
    ties), rows whose amax is a power of two, and small values."""
    rows = [rng.integers(-128, 128, n), np.zeros(n, np.int64), np.full(n, 127), np.resize([127, -128, 100, -4], n)]
    rows += [np.where(np.arange(n) % 5 == 0, 64, rng.integers(-63, 64, n)), rng.integers(-3, 4, n)]
    rows += [rng.integers(-128, 128, n) for _ in range(4)]
    return np.array(rows)


@pytest.mark.parametrize(("name", "dataflow", "n"), [("mxfp8_e4m3", "ws", 64), ("mxfp4", "os", 45),
                                                     ("mxint8", "ws", 40)])  # fmt: skip
def test_mx_outputs_collect_their_blocks_across_folds_and_equal_numerics(
    name: str, dataflow: str, n: int, build_root: Path, tmp_path: Path
) -> None:
    rng = np.random.default_rng(11)
    design = float_design(name, dataflow)
    rows = mx_rows(rng, n)
    a, b = INT8.encode(rows.astype(float)), INT8.encode(np.eye(n))
    stages = [
        numerics.Requantization(np.zeros(n, np.int64), np.ones(n, np.int64), 0, name),
        numerics.Requantization(rng.integers(-300, 300, n), rng.integers(1, 256, n) | 1, 5, name, activation="relu"),
        numerics.Requantization(rng.integers(-9, 9, n), np.full(n, (1 << 16) - 1), 30, name),
    ]
    for index, stage in enumerate(stages):
        report = sim.cosim_requant(design, a, b, stage, build_root, tmp_path / f"s{index}")
        assert report.passed, (index, report.failure())
        assert report.cycles == hw.requant_cycles(design.config, len(rows), n, n)
    # the first stage reaches element ties, saturation after the floor rule and a zero block
    blocks = stages[0].blocks(rows)
    assert (blocks.scales == 0).any()
    element = numerics.get(name).element  # type: ignore[attr-defined]
    assert (np.abs(element.decode(blocks.elements)) == float(element.max)).any()


def test_an_array_wider_than_the_block_emits_several_blocks_a_beat(build_root: Path, tmp_path: Path) -> None:
    """C = 4 columns, blocks of 2 (an MXFP8 variant): two blocks per beat, no row buffer."""
    fmt = dataclasses.replace(numerics.get("mxfp8_e4m3"), block_size=2)
    design = float_design(fmt, "os", k_max=16)
    assert design.config.blocks_per_beat == 2 and design.config.folds_per_block == 1
    rng = np.random.default_rng(2)
    n = 10
    a, b = INT8.encode(mx_rows(rng, 12)[:, :n].astype(float)), INT8.encode(np.eye(n))
    stage = numerics.Requantization(rng.integers(-50, 50, n), rng.integers(1, 99, n), 3, fmt)  # type: ignore[arg-type]
    report = sim.cosim_requant(design, a, b, stage, build_root, tmp_path)
    assert report.passed, report.failure()


def test_the_bitserial_unit_rounds_to_minifloat_and_mx_too(build_root: Path, tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    m, k, n = 6, 16, 36
    a = INT8.encode(rng.integers(-128, 128, (m, k)).astype(float))
    weights = numerics.get("int4").encode(rng.integers(-8, 8, (k, n)).astype(float))
    for name in ("fp8_e4m3", "mxfp8_e4m3"):
        unit = hw.RequantBitSerial("int8", lanes=4, cols=4, group=16, m_max=8, out_format=name)
        stage = numerics.Requantization(rng.integers(-2000, 2000, n), rng.integers(1, 1 << 10, n), 12, name,
                                        activation="relu")  # fmt: skip
        report = sim.cosim_requant_bitserial(unit, a, weights, "int4", stage, build_root, tmp_path / name)
        assert report.passed, (name, report.failure())


@pytest.mark.parametrize(
    ("out_format", "options", "message"),
    [
        ("posit8_2", {}, "out_format must be a signed minifloat"),
        ("int8", {}, "integer outputs: out_format=None"),
        ("mxfp8_e4m3", {"cols": 3}, "divide one another"),
        ("fp16", {"out_bits": 8}, "must hold a fp16 code"),
        (dataclasses.replace(numerics.get("mxfp8_e4m3"), element_exponent=80), {}, "E8M0's exponents"),
    ],
)
def test_bad_output_formats_are_named(out_format: object, options: dict[str, int], message: str) -> None:
    options = {"rows": 2, "cols": 4, "k_max": 8, **options}
    with pytest.raises(ValueError, match=re.escape(message)):
        hw.RequantArray("int8", "int8", out_format=out_format, **options)  # type: ignore[arg-type]


def test_a_stage_for_another_output_is_refused(build_root: Path, tmp_path: Path) -> None:
    design = float_design("fp8_e4m3")
    stage = numerics.Requantization(np.zeros(4, np.int64), np.ones(4, np.int64), 0, "fp8_e5m2")
    with pytest.raises(ValueError, match="rounds to fp8_e5m2; this design's output is fp8_e4m3"):
        sim.cosim_requant(design, INT8.encode(np.ones((2, 1))), INT8.encode(np.ones((1, 4))), stage, build_root,
                          tmp_path)  # fmt: skip
