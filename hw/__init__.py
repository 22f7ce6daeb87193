"""Amaranth hardware generators: format decoders and MAC PEs, with Verilog output."""

from ._bitmod import BitMoDDecoder
from ._decode import Decoder, IntDecoder, MinifloatDecoder, PositDecoder, decoder_for
from ._emit import LINT_WAIVERS, emit, to_verilog
from ._mac import MacPE
from ._ovp import OVPMacPE, OVPPairDecoder
from ._round import OutputRounder

__all__ = [
    "LINT_WAIVERS",
    "BitMoDDecoder",
    "Decoder",
    "IntDecoder",
    "MacPE",
    "MinifloatDecoder",
    "OVPMacPE",
    "OVPPairDecoder",
    "OutputRounder",
    "PositDecoder",
    "decoder_for",
    "emit",
    "to_verilog",
]
