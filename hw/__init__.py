"""Amaranth hardware generators (format decoders, MAC PEs, arrays); filled by the hardware issues."""
