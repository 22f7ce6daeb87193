# amaranth: UnusedElaboratable=no
"""Decoders against numerics' lower/decode in amaranth.sim: exhaustive up to 8 bits, sampled above."""

from __future__ import annotations

import re

import numpy as np
import pytest
from amaranth.sim import Simulator

import hw

EXHAUSTIVE = ["int2", "int4", "int8", "uint4", "uint8", "ternary", "int8_narrow", "fp8_e4m3", "fp8_e5m2",
              "fp8_e4m3fnuz", "fp8_e5m2fnuz", "fp8_e4m3_ieee", "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "e8m0", "posit8_2",
              "posit8_0", "posit8_1", "posit6_3", "fp7_e4m2", "fp5_e2m2"]  # fmt: skip
SAMPLED = ["fp16", "bf16", "posit16_2", "posit16_1", "int16"]


def decode_in_sim(decoder: hw.Decoder, codes: np.ndarray) -> np.ndarray:
    rows = []

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for code in codes:
            ctx.set(decoder.code, int(code))
            rows.append((ctx.get(decoder.sig), ctx.get(decoder.exp), ctx.get(decoder.nan), ctx.get(decoder.inf),
                         ctx.get(decoder.neg)))  # fmt: skip

    sim = Simulator(decoder)
    sim.add_testbench(bench)
    sim.run()
    return np.array(rows, dtype=np.int64)


def check(decoder: hw.Decoder, codes: np.ndarray) -> None:
    fmt = decoder.format
    out = decode_in_sim(decoder, codes)
    kind, neg, _, _ = fmt.split(codes)
    finite = kind < 2
    values = np.ldexp(out[:, 0].astype(np.float64), (out[:, 1] + decoder.exp_base).astype(np.int32))
    np.testing.assert_array_equal(values[finite], fmt.decode(codes)[finite])
    np.testing.assert_array_equal(out[:, 2] == 1, kind == 3)
    np.testing.assert_array_equal(out[:, 3] == 1, kind == 2)
    np.testing.assert_array_equal(out[kind == 2, 4] == 1, neg[kind == 2])
    assert out[:, 1].min() >= 0 and out[:, 1].max() < 1 << decoder.exp_width
    assert decoder.zero_lsbs >= 0


@pytest.mark.parametrize("name", EXHAUSTIVE)
def test_decoder_matches_numerics_for_every_code(name: str) -> None:
    decoder = hw.decoder_for(name)
    check(decoder, np.arange(1 << decoder.format.bits))


@pytest.mark.parametrize("name", SAMPLED)
def test_sixteen_bit_decoders_on_random_and_corner_codes(name: str) -> None:
    decoder = hw.decoder_for(name)
    rng = np.random.default_rng(0)
    corners = [0, 1, 0x7FFF, 0x8000, 0x8001, 0xFFFF, 0x7C00, 0xFC00, 0x7F80, 0xFF80, 0x3C00, 0x3F80, 0x0400, 0x03FF]
    check(decoder, np.concatenate([corners, rng.integers(0, 1 << 16, 3000)]))


def test_decoder_errors() -> None:
    with pytest.raises(
        ValueError, match=re.escape("no decoder for mxfp4: element decoders exist for integer, minifloat")
    ):
        hw.decoder_for("mxfp4")
    with pytest.raises(ValueError, match=r"^minifloat decoders take formats of <= 32 bits, got fp64$"):
        hw.decoder_for("fp64")
