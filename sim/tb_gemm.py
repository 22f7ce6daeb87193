"""cocotb testbench for hw.SystolicArray inside the stream player (sim/_player.py).

Reset, pulse `go`, wait for `done` (the array runs at Verilator speed meanwhile), have the
player write its result beats, and record the cycle stamps. Checking happens on the pytest side.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from sim._tbio import parameters, record


@cocotb.test()
async def gemm(dut) -> None:  # type: ignore[no-untyped-def]
    budget = int(parameters()["max_cycles"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    dut.go.value = 0
    dut.dump.value = 0
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await RisingEdge(dut.clk)
    dut.go.value = 1
    await RisingEdge(dut.clk)
    dut.go.value = 0
    await with_timeout(RisingEdge(dut.done), budget * 10, "ns")
    dut.dump.value = 1
    await RisingEdge(dut.clk)
    dut.dump.value = 0
    await RisingEdge(dut.clk)
    stamps = [int(dut.first_fire.value), int(dut.last_out.value), int(dut.out_count.value)]
    record(stamps=np.array(stamps, dtype=np.int64))
