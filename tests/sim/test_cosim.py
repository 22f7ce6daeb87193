# amaranth: UnusedElaboratable=no
"""Co-simulation in Verilator (cocotb): decoders over every code, MAC PEs over every operand pair.

The checker is numerics: decoded values against `decode`/`split`, accumulator contents against
`numerics.dot` with the same accumulator (tests/hw/golden.py).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim
from numerics import FixedAccumulator
from tests.hw.golden import expected_mac, hardware_flags

DECODED = ["int8", "int4", "uint8", "ternary", "fp8_e4m3", "fp8_e5m2", "fp8_e4m3fnuz", "fp8_e5m2fnuz", "fp8_e4m3_ieee",
           "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "e8m0", "posit8_2", "posit8_0", "fp16", "bf16", "posit16_2",
           "posit16_1", "int16"]  # fmt: skip


def test_every_decoder_over_every_code(build_root: Path, tmp_path: Path) -> None:
    bank = sim.DecoderBank(DECODED)
    codes = np.arange(1 << 16)
    ports = [sim.port_name(f) for f in DECODED]
    out = sim.run(bank, "sim.tb_decoders", {"codes": codes}, build_root, tmp_path, parameters={"ports": ports})
    for name, port in zip(DECODED, ports, strict=True):
        fmt = numerics.get(name)
        layout = bank.layouts[fmt.name]
        own = codes[: 1 << fmt.bits]  # the low bits cycle through every code of narrower formats
        rows = out[port][: own.size]
        kind, _, _, _ = fmt.split(own)
        finite = kind < 2
        values = np.ldexp(rows[:, 0].astype(np.float64), (rows[:, 1] + layout.exp_base).astype(np.int32))
        np.testing.assert_array_equal(values[finite], fmt.decode(own)[finite], err_msg=name)
        np.testing.assert_array_equal(rows[:, 2] == 1, kind == 3, err_msg=name)
        np.testing.assert_array_equal(rows[:, 3] == 1, kind == 2, err_msg=name)


EXHAUSTIVE = [("int8", "int8"), ("int4", "int4"), ("fp8_e4m3", "fp8_e4m3"), ("fp8_e5m2", "fp8_e5m2"),
              ("fp6_e3m2", "fp6_e3m2"), ("fp6_e2m3", "fp6_e2m3"), ("fp4_e2m1", "fp4_e2m1"), ("int8", "fp8_e4m3"),
              ("posit8_2", "posit8_2")]  # fmt: skip
SIXTEEN_BIT = [("posit16_2", "posit16_2"), ("bf16", "bf16"), ("fp16", "fp16")]
SEGMENT = 16


def cosim_mac(pe: hw.MacPE, a: np.ndarray, b: np.ndarray, build_root: Path, work: Path) -> None:
    n = a.size
    clear = (np.arange(n) % SEGMENT == 0).astype(np.uint8)
    stimulus = {"a": a, "b": b, "en": np.ones(n, np.uint8), "clear": clear}
    out = sim.run(pe, "sim.tb_mac", stimulus, build_root, work, parameters={"latency": pe.latency})
    first = pe.latency - 1
    acc = [int(v) for v in out["acc"][first : first + n]]
    flags = [hardware_flags(*f) for f in out["flags"][first : first + n]]
    assert out["valid"][first : first + n].all()
    values, expected_flags = expected_mac(a, b, SEGMENT, pe.a_format, pe.b_format, pe.accumulator, pe.acc_width)
    for cycle in range(n):
        if acc[cycle] != values[cycle] or flags[cycle] != expected_flags[cycle]:
            pytest.fail(
                f"{pe.a_format.name} x {pe.b_format.name}: first mismatch at cycle {cycle} (operand pair "
                f"a={int(a[cycle]):#x} ({pe.a_format.decode(a[cycle : cycle + 1])[0]}), b={int(b[cycle]):#x} "
                f"({pe.b_format.decode(b[cycle : cycle + 1])[0]})): acc {acc[cycle]} flags {flags[cycle]}, expected "
                f"{values[cycle]} flags {expected_flags[cycle]} (units of 2**{pe.lsb_exponent})"
            )


@pytest.mark.slow
@pytest.mark.parametrize(("a_name", "b_name"), EXHAUSTIVE)
def test_mac_over_every_operand_pair(a_name: str, b_name: str, build_root: Path, tmp_path: Path) -> None:
    pe = hw.MacPE(a_name, b_name, k_terms=SEGMENT, pipeline=1)
    a_codes, b_codes = np.meshgrid(np.arange(1 << pe.a_format.bits), np.arange(1 << pe.b_format.bits), indexing="ij")
    a, b = a_codes.reshape(-1), b_codes.reshape(-1)
    pad = (-a.size) % SEGMENT
    cosim_mac(pe, np.concatenate([a, a[:pad]]), np.concatenate([b, b[:pad]]), build_root, tmp_path)


@pytest.mark.parametrize(("a_name", "b_name"), SIXTEEN_BIT)
def test_sixteen_bit_macs_on_random_and_corner_pairs(
    a_name: str, b_name: str, build_root: Path, tmp_path: Path
) -> None:
    pe = hw.MacPE(a_name, b_name, k_terms=SEGMENT, pipeline=2)
    rng = np.random.default_rng(0)
    corners = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x7C00, 0xFC00, 0x7F80, 0xFF80, 0x3C00, 0x3F80, 0x0400,
                        0x03FF, 0x7BFF, 0x0001])  # fmt: skip
    a = np.concatenate([np.repeat(corners, corners.size), rng.integers(0, 1 << 16, 8000)])
    b = np.concatenate([np.tile(corners, corners.size), rng.integers(0, 1 << 16, 8000)])
    cosim_mac(pe, a, b, build_root, tmp_path)


@pytest.mark.parametrize("accumulator", [FixedAccumulator(20), FixedAccumulator(17, overflow="saturate")])
def test_fixed_accumulators_wrap_and_saturate_like_numerics(
    accumulator: FixedAccumulator, build_root: Path, tmp_path: Path
) -> None:
    pe = hw.MacPE("int8", "int8", accumulator, pipeline=0)
    rng = np.random.default_rng(1)
    a = np.where(rng.random(4096) < 0.5, 0x80, rng.integers(0, 256, 4096))  # many -128 x -128 to overflow
    cosim_mac(pe, a, a.copy(), build_root, tmp_path)


@pytest.mark.parametrize(("a_name", "b_name", "pipeline"), [("fp8_e4m3", "fp8_e4m3", 1), ("posit8_2", "int8", 2),
                                                            ("bf16", "fp4_e2m1", 0)])  # fmt: skip
def test_generated_verilog_lints_clean(a_name: str, b_name: str, pipeline: int, tmp_path: Path) -> None:
    path = hw.emit(hw.MacPE(a_name, b_name, pipeline=pipeline), tmp_path / "top.v")
    result = sim.lint(path, "top", hw.LINT_WAIVERS)
    assert result.returncode == 0, result.stderr
