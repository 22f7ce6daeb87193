"""A signed multiply on one ECP5 MULT18X18D with the block's own registers in use.

yosys maps `*` on ECP5 to a MULT18X18D with every register off, so a PE's operand and product
registers stay in the fabric and the route into and out of the DSP is one path. Instantiated here,
the DSP latches its operands itself (REG_INPUTA/B) and, where the PE registers the product,
holds it in its output register (REG_OUTPUT): the same cycles as the fabric registers it replaces,
so the cycle model does not change. The caller hands over the operands one cycle early (the D
inputs of its operand registers).

Simulation needs a model of the primitive: `sim` compiles sim/primitives/MULT18X18D.v (the subset
instantiated here) beside every design that instantiates it.
"""

from __future__ import annotations

from amaranth import ClockSignal, Instance, Module, ResetSignal, Signal, signed
from amaranth.hdl import Value

PORT_BITS = 18  # a signed 18 x 18 multiplier (MULT18X18D; Nexus' MULT18X18 alike)
PRODUCT_BITS = 36


def ecp5_multiply(m: Module, name: str, a_next: Value, b_next: Value, output_register: bool) -> Signal:
    """a * b (both signed, <= 18 bits), a and b as they will be one cycle later: the DSP's input
    registers take them now (`ArrayConfig.check_dsp_primitive` has checked the widths). With
    `output_register` the product appears a further cycle later."""
    a_port, b_port = Signal(signed(PORT_BITS), name=f"{name}_a"), Signal(signed(PORT_BITS), name=f"{name}_b")
    product = Signal(signed(PRODUCT_BITS), name=f"{name}_p")
    m.d.comb += [a_port.eq(a_next.as_signed()), b_port.eq(b_next.as_signed())]
    ports = {f"i_A{bit}": a_port[bit] for bit in range(PORT_BITS)}
    ports |= {f"i_B{bit}": b_port[bit] for bit in range(PORT_BITS)}
    ports |= {f"i_C{bit}": 0 for bit in range(PORT_BITS)}
    ports |= {f"o_P{bit}": product[bit] for bit in range(PRODUCT_BITS)}
    ports |= {"i_SIGNEDA": 1, "i_SIGNEDB": 1, "i_SOURCEA": 0, "i_SOURCEB": 0}
    ports |= {"i_CLK0": ClockSignal("sync"), "i_CE0": 1, "i_RST0": ResetSignal("sync")}
    params = {"p_REG_INPUTA_CLK": "CLK0", "p_REG_INPUTB_CLK": "CLK0",
              "p_REG_OUTPUT_CLK": "CLK0" if output_register else "NONE",
              "p_REG_INPUTC_CLK": "NONE", "p_REG_PIPELINE_CLK": "NONE",
              "p_RESETMODE": "SYNC", "p_GSR": "DISABLED"}  # fmt: skip
    m.submodules += Instance("MULT18X18D", **params, **ports)
    return product
