# amaranth: UnusedElaboratable=no
"""hw.RequantArray in Verilator: a layer's GEMM through the per-lane output stage, every code
against numerics (matmul, then Requantization) and the cycles against hw.requant_cycles.

The boundary cases use K = 1 and B = 1, so the accumulators are the 256 INT8 values; each
channel's bias moves that window onto the rounding boundaries of the shift under test, so one
small GEMM per shift covers every half-way point (and one either side) on every channel. One
build per dataflow serves every shift, format and activation (they are run-time settings).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from amaranth import Cat, Module

import hw
import numerics
import sim
from sim._player import play, read_lanes, unit_bank, write_beats

INT8 = numerics.get("int8")


def design(dataflow: str, out_bits: int = 32) -> hw.RequantArray:
    return hw.RequantArray("int8", "int8", rows=2, cols=4, dataflow=dataflow, pipeline=1, k_max=64, m_max=256,
                           out_bits=out_bits)  # fmt: skip


def boundary_stage(shift: int, fmt: str, activation: str, rng: np.random.Generator, zero_point: int = 0,
                   clamp: tuple[int, int] | None = None) -> tuple[np.ndarray, numerics.Requantization]:  # fmt: skip
    """(A codes (256, 1), stage over 12 channels): channel biases put 2**shift-spaced half-way
    points inside the accumulators' window, multipliers 1, odd, and wide."""
    acc = np.arange(-128, 128)
    half = (1 << shift) >> 1
    centre = [0, half, -half, 3 * half, (5 << shift) + half, -(7 << shift) - half]
    bias = np.array([*centre, *rng.integers(-(1 << 20), 1 << 20, 6)])
    multiplier = np.array([1, 1, 1, 1, 3, 1, 5, 1, 7, 65535, 255, 1])
    stage = numerics.Requantization(bias, multiplier, shift, fmt, zero_point, activation, clamp)  # type: ignore[arg-type]
    return INT8.encode(acc[:, None].astype(float)), stage


STAGES = [
    (0, "int8", "identity", 0, None),
    (1, "int8", "relu", 0, None),
    (3, "uint8", "identity", 100, None),
    (5, "int8", "clamp", 0, (-20, 90)),
    (7, "int32", "identity", 0, None),
    (12, "uint8", "relu", 128, None),
    (20, "int16", "relu", 0, None),
]


@pytest.mark.parametrize("dataflow", ["ws", "os"])
def test_the_output_stage_behind_the_array_rounds_every_boundary_like_numerics(dataflow: str, build_root: Path,
                                                                               tmp_path: Path) -> None:  # fmt: skip
    rng = np.random.default_rng(7)
    array = design(dataflow)
    b = INT8.encode(np.ones((1, 12)))
    for index, (shift, fmt, activation, zero_point, clamp) in enumerate(STAGES):
        a, stage = boundary_stage(shift, fmt, activation, rng, zero_point, clamp)
        report = sim.cosim_requant(array, a, b, stage, build_root, tmp_path / f"s{index}")
        assert report.passed, (shift, fmt, activation, report.failure())
        assert report.cycles == hw.requant_cycles(array.config, 256, 1, 12)
    # the cases reach the shift's ties on both sides of zero, and saturation at both ends
    acc = np.arange(-128, 128)[:, None] + boundary_stage(12, "uint8", "relu", np.random.default_rng(7), 128)[1].bias
    assert ((acc % (1 << 12)) == 1 << 11).any() and (acc < 0).any()


def test_a_real_layer_with_backpressure_and_per_channel_parameters(build_root: Path, tmp_path: Path) -> None:
    """M, K, N not multiples of the array; several folds of parameters; `out` stalls every 3rd cycle."""
    rng = np.random.default_rng(3)
    m, k, n = 9, 37, 13
    a = INT8.encode(rng.integers(-128, 128, (m, k)).astype(float))
    b = INT8.encode(rng.integers(-128, 128, (k, n)).astype(float))
    stage = numerics.Requantization(rng.integers(-40000, 40000, n), rng.integers(1, 1 << 16, n), 26, "int8",
                                    activation="relu")  # fmt: skip
    for dataflow in ("ws", "os"):
        report = sim.cosim_requant(design(dataflow), a, b, stage, build_root, tmp_path / dataflow, stall_every=3)
        assert report.mismatches == 0, report.first_mismatch
        assert report.cycles > report.model_cycles  # stalls cost cycles, never codes
        assert len(np.unique(report.result)) > 20  # the layer's codes are not degenerate


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"bias": np.full(12, 1 << 40)}, "a bias of 1099511627776 does not fit the stage's 32 bits"),
        ({"multiplier": np.full(12, 1 << 16)}, "multipliers must be in 0..65535, got 65536"),
        ({"shift": 99}, "shift must be between 0 and 50, got 99"),
        ({"format": "int32"}, "int32 codes do not fit the stage's int16 lanes"),
        ({"bias": np.zeros(3)}, "the stage needs one bias and one multiplier per output channel (12), got (3,) and "
                                "(12,)"),
    ],
)  # fmt: skip
def test_a_stage_the_design_cannot_hold_is_refused(change: dict, message: str) -> None:
    fields = {"bias": np.zeros(12, np.int64), "multiplier": np.ones(12, np.int64), "shift": 4, "format": "int8",
              **change}  # fmt: skip
    stage = numerics.Requantization(**fields)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        sim.check_stage(design("ws", out_bits=16).config, stage, 12)


def test_a_float_accumulator_has_no_integer_output_stage() -> None:
    with pytest.raises(ValueError, match=r"^the output stage takes integer accumulators; this array accumulates in "
                                         r"fp32 \(use an exact or int\{W\} accumulator\)$"):  # fmt: skip
        hw.RequantArray("mxfp8_e4m3", "mxfp8_e4m3", rows=2, cols=2)


def test_a_layers_output_through_the_mx_quantizer_is_numerics_mx_encode(build_root: Path, tmp_path: Path) -> None:
    """The next layer's MXFP8 activations in hardware: the array and its stage (bias, ReLU, kept in
    accumulator units), then hw.MXQuantizer on each row's 32 channels, equal to numerics' MX
    encode of the layer's values. (Two simulations: the quantizer does not sit behind the lanes.)"""
    rng = np.random.default_rng(11)
    m, k, n, lsb = 6, 40, 32, -14  # one accumulator unit: input scale 2**-7 x weight scale 2**-7
    a = INT8.encode(rng.integers(-128, 128, (m, k)).astype(float))
    b = INT8.encode(rng.integers(-128, 128, (k, n)).astype(float))
    stage = numerics.Requantization(rng.integers(-20000, 20000, n), np.ones(n, np.int64), 0, "int32",
                                    activation="relu")  # fmt: skip
    layer = sim.cosim_requant(design("ws"), a, b, stage, build_root, tmp_path / "layer")
    assert layer.passed, layer.failure()
    rows = np.asarray(layer.result, dtype=np.int64)
    assert (rows == 0).any() and (rows > 1 << 16).any()  # ReLU zeros and wide values both reach the quantizer

    def build(module: Module, _: int, fields: list) -> object:
        module.submodules.mx = unit = hw.MXQuantizer("mxfp8_e4m3", 24, lsb)
        module.d.comb += [unit.values[i].eq(field) for i, field in enumerate(fields)]
        return Cat(unit.scale, unit.elements)

    bank = unit_bank([((24,) * 32, 8 + 8 * 32)], build)
    write_beats(tmp_path / "rows.hex", [(rows, 24)])
    *_, count, out_hex = play(bank, [("word", bank.in_width, tmp_path / "rows.hex", m)], bank.out_width, m, None,
                              m + 100, build_root, tmp_path / "mx")  # fmt: skip
    assert count == m
    got = read_lanes(out_hex, 1, (("scale", 8, False), ("elements", 256, False)))
    want = numerics.get("mxfp8_e4m3").encode(np.ldexp(rows.astype(np.float64), lsb), axis=1)
    assert [int(v) for v in got["scale"][:, 0]] == [int(v) for v in np.asarray(want.scales).ravel()]
    elements = [[(int(word) >> (8 * i)) & 0xFF for i in range(32)] for word in got["elements"][:, 0]]
    assert elements == np.asarray(want.elements).reshape(m, 32).astype(int).tolist()


def test_the_bit_serial_unit_behind_the_same_stage(build_root: Path, tmp_path: Path) -> None:
    """hw.RequantBitSerial: INT8 activations x INT4 weights, two folds of channels, shifts that cut
    into the unit's fp16-scaled accumulator (units of 2**-25 grid steps) with ties and saturation."""
    rng = np.random.default_rng(5)
    m, k, n = 5, 64, 7
    a = INT8.encode(rng.integers(-128, 128, (m, k)).astype(float))
    w = numerics.get("int4").encode(rng.integers(-8, 8, (k, n)).astype(float))
    design = hw.RequantBitSerial("int8", lanes=8, cols=4, group=64, n_max=16)
    half = 1 << 24  # half an lsb at shift 25 (one grid step): every sum + half is a tie
    stages = [numerics.Requantization(rng.integers(-(1 << 36), 1 << 36, n), rng.integers(1, 1 << 16, n), 44,
                                      "int8", activation="relu"),
              numerics.Requantization(np.full(n, half), np.ones(n, np.int64), 25, "int16")]  # fmt: skip
    for index, stage in enumerate(stages):
        report = sim.cosim_requant_bitserial(design, a, w, "int4", stage, build_root, tmp_path / f"s{index}")
        assert report.passed, report.failure()
        assert len(np.unique(report.result)) > 8, report.result
