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


def cosim_mac(pe: hw.MacPE, stream: sim.MacStream, build_root: Path, work: Path) -> None:
    report = sim.check_mac(pe, stream, build_root, work)
    assert report.passed, f"{report.format_pair}: {report.mismatches} mismatches; first at {report.first_mismatch}"
    assert report.checked == len(stream)


@pytest.mark.slow
@pytest.mark.parametrize(("a_name", "b_name"), EXHAUSTIVE)
def test_mac_over_every_operand_pair(a_name: str, b_name: str, build_root: Path, tmp_path: Path) -> None:
    pe = hw.MacPE(a_name, b_name, k_terms=SEGMENT, pipeline=1)
    stream = sim.operand_stream(pe, exhaustive=True, random_pairs=0)
    assert stream.macs >= (1 << pe.a_format.bits) * (1 << pe.b_format.bits)
    cosim_mac(pe, stream, build_root, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize(("a_name", "b_name"), [("int8", "int8"), ("uint8", "int8")])
def test_lut_booth_multiplier_over_every_operand_pair(a_name: str, b_name: str, build_root: Path,
                                                      tmp_path: Path) -> None:  # fmt: skip
    """The radix-4 Booth multiplier PEs beyond a DSP budget use, exhaustively."""
    pe = hw.MacPE(a_name, b_name, k_terms=SEGMENT, pipeline=1, use_dsp=False)
    cosim_mac(pe, sim.operand_stream(pe, exhaustive=True, random_pairs=0), build_root, tmp_path)


@pytest.mark.parametrize(("a_name", "b_name"), SIXTEEN_BIT)
def test_sixteen_bit_macs_on_random_and_corner_pairs(
    a_name: str, b_name: str, build_root: Path, tmp_path: Path
) -> None:
    pe = hw.MacPE(a_name, b_name, k_terms=SEGMENT, pipeline=2)
    corners = np.array([0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x7C00, 0xFC00, 0x7F80, 0xFF80, 0x3C00, 0x3F80, 0x0400,
                        0x03FF, 0x7BFF, 0x0001])  # fmt: skip
    corner_pairs = sim.MacStream.segmented(np.repeat(corners, corners.size), np.tile(corners, corners.size), SEGMENT)
    cosim_mac(pe, sim.MacStream.concat([corner_pairs, sim.operand_stream(pe, False, 8000)]), build_root, tmp_path)


@pytest.mark.parametrize("accumulator", [FixedAccumulator(20), FixedAccumulator(17, overflow="saturate")])
def test_fixed_accumulators_wrap_and_saturate_like_numerics(
    accumulator: FixedAccumulator, build_root: Path, tmp_path: Path
) -> None:
    pe = hw.MacPE("int8", "int8", accumulator, pipeline=0)
    rng = np.random.default_rng(1)
    a = np.where(rng.random(4096) < 0.5, 0x80, rng.integers(0, 256, 4096))  # many -128 x -128 to overflow
    cosim_mac(pe, sim.MacStream.segmented(a, a.copy(), SEGMENT), build_root, tmp_path)


@pytest.mark.parametrize(("a_name", "b_name", "pipeline"), [("fp8_e4m3", "fp8_e4m3", 1), ("posit8_2", "int8", 2),
                                                            ("bf16", "fp4_e2m1", 0)])  # fmt: skip
def test_generated_verilog_lints_clean(a_name: str, b_name: str, pipeline: int, tmp_path: Path) -> None:
    path = hw.emit(hw.MacPE(a_name, b_name, pipeline=pipeline), tmp_path / "top.v")
    result = sim.lint(path, "top", hw.LINT_WAIVERS)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("component", ["rounder_bf16", "rounder_posit16_2", "rounder_int8", "ovp4_pe", "bitmod4",
                                       "output_stage"])  # fmt: skip
def test_other_components_lint_clean(component: str, tmp_path: Path) -> None:
    built = {
        "rounder_bf16": lambda: hw.OutputRounder(47, -18, "bf16"),
        "rounder_posit16_2": lambda: hw.OutputRounder(47, -18, "posit16_2"),
        "rounder_int8": lambda: hw.OutputRounder(24, -3, "int8"),
        "ovp4_pe": lambda: hw.OVPMacPE(4),
        "bitmod4": lambda: hw.BitMoDDecoder(4),
        "output_stage": lambda: hw.OutputStage(24, "uint8", 12, zero_point=9, activation="relu"),
    }[component]()
    result = sim.lint(hw.emit(built, tmp_path / "top.v"), "top", hw.LINT_WAIVERS)
    assert result.returncode == 0, result.stderr


def ovp_encoded(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pair codes as numerics OliVe encodings with scale 1 (values in int-grid units)."""
    fmt = numerics.OVPFormat(bits)
    encoded = numerics.OVPEncoded(fmt, codes.reshape(-1, 1, 2).astype(np.uint8), numerics.get("fp32").encode(1.0),
                                  (len(codes), 2), 1, 2, (0, 1, 2))  # fmt: skip
    return encoded


@pytest.mark.slow
def test_ovp4_pe_over_every_pair_of_pairs(build_root: Path, tmp_path: Path) -> None:
    pe = hw.OVPMacPE(4, k_pairs=SEGMENT)
    pair_codes = np.arange(256)
    a_pairs, b_pairs = (g.reshape(-1) for g in np.meshgrid(pair_codes, pair_codes, indexing="ij"))
    n = a_pairs.size
    stream = sim.MacStream.segmented(a_pairs, b_pairs, SEGMENT)
    out = sim.play_mac(pe, stream, pe.acc_width, False, pe.latency, build_root, tmp_path)
    acc = [int(v) for v in out["acc"][pe.latency - 1 : pe.latency - 1 + n]]
    split = lambda p: np.stack([p & 0xF, p >> 4], axis=1)  # noqa: E731 - element 0 in the low nibble
    fmt = numerics.OVPFormat(4)
    a_enc, b_enc = ovp_encoded(split(a_pairs), 4), ovp_encoded(split(b_pairs), 4)
    per_cycle = numerics.dot(a_enc, b_enc, fmt, fmt).to_fractions()
    expected, total = [], 0
    for i in range(n):
        total = (0 if i % SEGMENT == 0 else total) + int(per_cycle[i])
        expected.append(total)
    bad = [i for i in range(n) if acc[i] != expected[i]]
    assert not bad, (
        f"cycle {bad[0]}: pairs a={a_pairs[bad[0]]:#04x} b={b_pairs[bad[0]]:#04x}: {acc[bad[0]]} != {expected[bad[0]]}"
    )
