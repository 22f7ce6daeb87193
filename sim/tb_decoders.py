"""cocotb testbench for sim.DecoderBank: every code in, every decoder's outputs recorded."""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.triggers import Timer

from sim._tbio import parameters, record, stimulus


@cocotb.test()
async def decode_codes(dut) -> None:  # type: ignore[no-untyped-def]
    codes = stimulus()["codes"]
    ports = parameters()["ports"]
    rows = {p: np.zeros((len(codes), 5), np.int64) for p in ports}
    handles = {p: [getattr(dut, f"{p}_{f}") for f in ("sig", "exp", "nan", "inf", "neg")] for p in ports}
    for i, code in enumerate(codes):
        dut.code.value = int(code)
        await Timer(1, unit="ns")
        for p in ports:
            sig, exp, nan, inf, neg = handles[p]
            rows[p][i] = (sig.value.to_signed(), int(exp.value), int(nan.value), int(inf.value), int(neg.value))
    record(**rows)
