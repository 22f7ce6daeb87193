"""cocotb + Verilator co-simulation of the generated hardware; filled by the hardware issues."""
