# amaranth: UnusedElaboratable=no
"""The files of sim's plain-Verilog testbenches hold numerics' results in the layout the stream
contract states (read back with the co-simulation's own reader); the testbenches themselves run
under Verilator and Icarus in tests/bitfab/test_testbench_cli.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np

import hw
import sim
from sim._player import read_lanes


def result_fields(width: int) -> tuple[tuple[str, int, bool], ...]:
    return (("acc", width, True), ("nan", 1, False), ("pos_inf", 1, False), ("neg_inf", 1, False))


def test_array_expected_results_are_numerics_in_the_result_layout(tmp_path: Path) -> None:
    array = hw.SystolicArray("fp8_e4m3", "int4", None, rows=2, cols=3, dataflow="os")
    cfg = array.config
    rng = np.random.default_rng(3)
    a, b = rng.integers(0, 256, (5, 4)), rng.integers(0, 16, (4, 7))
    testbench = sim.systolic_testbench(array, a, b)
    written = sorted(p.name for p in testbench.write(tmp_path))
    assert written == sorted(testbench.files)
    assert written == ["tb_systolic_array.v", "tb_systolic_array_a.hex", "tb_systolic_array_b.hex",
                       "tb_systolic_array_expected.hex"]  # fmt: skip
    lanes = read_lanes(tmp_path / "tb_systolic_array_expected.hex", 3, result_fields(cfg.acc_width))
    want, flags = sim.expected_gemm(cfg, a, b)
    np.testing.assert_array_equal(hw.result_matrix(cfg, lanes["acc"], 5, 7), want)
    got_flags = np.stack([hw.result_matrix(cfg, lanes[f], 5, 7) for f in ("nan", "pos_inf", "neg_inf")], axis=-1)
    np.testing.assert_array_equal(got_flags.astype(bool), flags)
    beats = hw.gemm_beats(cfg, a, b)
    a_words = [int(w, 16) for w in (tmp_path / "tb_systolic_array_a.hex").read_text().split()]
    assert a_words == [sum(int(c) << (8 * i) for i, c in enumerate(beat)) for beat in beats.a]  # lane 0 lowest
    assert testbench.checks == 35 and testbench.model_cycles == hw.cycles(cfg, 5, 4, 7)
    assert f"localparam integer MODEL_CYCLES = {hw.cycles(cfg, 5, 4, 7)};" in testbench.verilog


def test_mac_expected_register_is_expected_mac_with_valid(tmp_path: Path) -> None:
    pe = hw.MacPE("fp8_e5m2", "int4", None, k_terms=8, pipeline=2)
    stream = sim.operand_stream(pe, exhaustive=False, random_pairs=64, seed=1)
    testbench = sim.mac_testbench(pe, stream)
    testbench.write(tmp_path)
    width = pe.acc_width
    fields = (*result_fields(width), ("valid", 1, False))
    got = read_lanes(tmp_path / "tb_mac_pe_expected.hex", 1, fields)
    values, flags = sim.expected_mac(stream, pe.a_format, pe.b_format, pe.accumulator, width)
    assert got["acc"][:, 0].tolist() == values
    assert [tuple(bool(got[f][i, 0]) for f in ("nan", "pos_inf", "neg_inf")) for i in range(len(stream))] == flags
    assert got["valid"][:, 0].tolist() == stream.en.tolist()
    stimulus = [int(w, 16) for w in (tmp_path / "tb_mac_pe_stimulus.hex").read_text().split()]
    a, b, en, clear = (int(getattr(stream, field)[5]) for field in ("a", "b", "en", "clear"))
    assert stimulus[5] == a | b << 8 | en << 12 | clear << 13  # {clear, en, b, a}, a lowest
    assert testbench.checks == len(stream) and "localparam integer LATENCY = 3;" in testbench.verilog
