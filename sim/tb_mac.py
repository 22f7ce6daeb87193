"""cocotb testbench for hw.MacPE: drive a stream of operand codes, sample the accumulator.

Driver: one input set per clock, applied at the falling edge; monitor: the outputs sampled at
the next falling edge (after the rising edge updated them). The checker is numerics, on the
pytest side.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

from sim._tbio import parameters, record, stimulus


@cocotb.test()
async def mac_stream(dut) -> None:  # type: ignore[no-untyped-def]
    data = stimulus()
    latency = int(parameters()["latency"])
    a, b, en, clear = data["a"], data["b"], data["en"], data["clear"]
    cycles = len(a) + latency
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.en.value = 0
    dut.clear.value = 0
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    acc, valid, flags = [], np.zeros(cycles, np.uint8), np.zeros((cycles, 3), np.uint8)
    try:
        flag_handles: tuple = (dut.nan, dut.pos_inf, dut.neg_inf)
    except AttributeError:  # a PE without special values (integer-grid PEs such as OliVe's)
        flag_handles = ()
    for i in range(cycles):
        live = i < len(a)
        dut.a.value = int(a[i]) if live else 0
        dut.b.value = int(b[i]) if live else 0
        dut.en.value = int(en[i]) if live else 0
        dut.clear.value = int(clear[i]) if live else 0
        await FallingEdge(dut.clk)
        acc.append(str(dut.acc.value.to_signed()))
        valid[i] = int(dut.valid.value)
        if flag_handles:
            flags[i] = tuple(int(h.value) for h in flag_handles)
    record(acc=np.array(acc), valid=valid, flags=flags)
