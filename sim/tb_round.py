"""cocotb testbench for sim.RounderBank inside its player (sim/_round_check.py).

Reset, then wait for `done` while the harness plays every accumulator value at Verilator speed
and writes the codes to a hex file. Checking happens on the pytest side.
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, with_timeout

from sim._tbio import parameters, record


@cocotb.test()
async def round_values(dut) -> None:  # type: ignore[no-untyped-def]
    budget = int(parameters()["max_cycles"])
    Clock(dut.clk, 10, unit="ns").start()
    dut.rst.value = 1
    await ClockCycles(dut.clk, 2)
    dut.rst.value = 0
    await with_timeout(RisingEdge(dut.done), budget * 10, "ns")
    record(count=np.array([int(dut.count.value)], dtype=np.int64))
