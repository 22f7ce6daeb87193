# amaranth: UnusedElaboratable=no
"""OliVe pair decoder against numerics' lowering, for every pair of 4-bit codes and sampled 8-bit pairs."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.sim import Simulator

import hw
import numerics


@pytest.mark.parametrize("bits", [4, 8])
def test_pair_decoder_matches_numerics(bits: int) -> None:
    decoder = hw.OVPPairDecoder(bits)
    if bits == 4:
        pairs = np.array([[c0, c1] for c0 in range(16) for c1 in range(16)], np.uint8)
    else:
        rng = np.random.default_rng(0)
        pairs = rng.integers(0, 256, (3000, 2)).astype(np.uint8)
        pairs[::3, 1] = 0x80  # many victims
    rows = []

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for c0, c1 in pairs:
            ctx.set(decoder.c0, int(c0))
            ctx.set(decoder.c1, int(c1))
            rows.append((ctx.get(decoder.sig0), ctx.get(decoder.exp0), ctx.get(decoder.sig1), ctx.get(decoder.exp1)))

    sim = Simulator(decoder)
    sim.add_testbench(bench)
    sim.run()
    fmt = numerics.OVPFormat(bits)
    encoded = numerics.OVPEncoded(fmt, pairs.reshape(-1, 1, 2), numerics.get("fp32").encode(1.0), (len(pairs), 2), 1, 2,
                                  (0, 1, 2))  # fmt: skip
    sig, exp = encoded.lower()
    got = np.array(rows)
    np.testing.assert_array_equal(got[:, [0, 2]], sig.reshape(-1, 2))
    np.testing.assert_array_equal(got[:, [1, 3]], exp.reshape(-1, 2))


def test_ovp_pe_parameters() -> None:
    assert hw.OVPMacPE(4, k_pairs=16).acc_width == (2 * 16 * 96**2).bit_length() + 1
    with pytest.raises(ValueError, match=r"^element_bits must be 4 or 8, got 6$"):
        hw.OVPMacPE(6)


@pytest.mark.parametrize("bits", [3, 4])
def test_bitmod_decoder_matches_numerics_for_every_code_and_selector(bits: int) -> None:
    decoder = hw.BitMoDDecoder(bits)
    codes = np.arange(1 << bits, dtype=np.uint8)
    rows = []

    async def bench(ctx) -> None:  # type: ignore[no-untyped-def]
        for selector in range(4):
            for code in codes:
                ctx.set(decoder.selector, selector)
                ctx.set(decoder.code, int(code))
                rows.append(ctx.get(decoder.sig))

    sim = Simulator(decoder)
    sim.add_testbench(bench)
    sim.run()
    fmt = numerics.BitMoDFormat(bits, group_size=codes.size)
    encoded = numerics.BitMoDEncoded(fmt, np.tile(codes, (4, 1))[:, None, :], np.arange(4, dtype=np.uint8)[:, None],
                                     np.zeros((4, 1), np.uint16), (4, codes.size), 1, codes.size)  # fmt: skip
    sig, exp = encoded.lower()
    np.testing.assert_array_equal(np.array(rows), sig.reshape(-1))
    assert (exp == decoder.exp_base).all()
