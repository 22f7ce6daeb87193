"""Amaranth hardware generators: format decoders, MAC PEs and systolic arrays, with Verilog output."""

from ._array_config import ArrayConfig, default_accumulator
from ._bitmod import BitMoDDecoder
from ._bitserial import BitSerialArray, BitSerialConfig, grid_terms
from ._bitserial_schedule import WeightPlan, bitserial_beats, bitserial_cycles, plan_weights
from ._decode import Decoder, IntDecoder, MinifloatDecoder, PositDecoder, decoder_for
from ._emit import LINT_WAIVERS, emit, to_verilog
from ._float_acc import FloatTerm, code_term, float_add
from ._float_compact import compact_fits
from ._mac import MacPE
from ._mx_quantizer import MXQuantizer
from ._output_stage import OutputStage
from ._ovp import OVPMacPE, OVPPairDecoder
from ._requant_array import RequantArray, RequantConfig, check_stage_widths, requant_cycles
from ._requant_bitserial import RequantBitSerial
from ._round import OutputRounder
from ._schedule import (
    GemmBeats,
    check_gemm,
    cycles,
    datapath_codes,
    folds,
    gemm_beats,
    lane_codes,
    mx_operands,
    result_matrix,
    scalesim_cycles,
)
from ._systolic import SystolicArray

__all__ = [
    "LINT_WAIVERS",
    "ArrayConfig",
    "BitMoDDecoder",
    "BitSerialArray",
    "BitSerialConfig",
    "Decoder",
    "FloatTerm",
    "GemmBeats",
    "IntDecoder",
    "MXQuantizer",
    "MacPE",
    "MinifloatDecoder",
    "OVPMacPE",
    "OVPPairDecoder",
    "OutputRounder",
    "OutputStage",
    "PositDecoder",
    "RequantArray",
    "RequantBitSerial",
    "RequantConfig",
    "SystolicArray",
    "WeightPlan",
    "bitserial_beats",
    "bitserial_cycles",
    "check_gemm",
    "check_stage_widths",
    "code_term",
    "compact_fits",
    "cycles",
    "datapath_codes",
    "decoder_for",
    "default_accumulator",
    "emit",
    "float_add",
    "folds",
    "gemm_beats",
    "grid_terms",
    "lane_codes",
    "mx_operands",
    "plan_weights",
    "requant_cycles",
    "result_matrix",
    "scalesim_cycles",
    "to_verilog",
]
