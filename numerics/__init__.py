"""Bit-exact number formats and exact arithmetic: the golden model of everything bitfab builds.

Formats lower every code to an exact `significand * 2**exponent`, so dot products can be
accumulated exactly (or in a declared accumulator) and rounded once, bit for bit as hardware does.
"""

from ._accumulators import (
    ACCUMULATOR_SYNTAX,
    Accumulator,
    ExactAccumulator,
    FixedAccumulator,
    FloatAccumulator,
    QuireAccumulator,
    accumulator_name,
    exact_width,
    parse_accumulator,
)
from ._bitmod import BitMoDEncoded, BitMoDFormat, grid_by_code, grid_lowered
from ._block import BlockEncoded, BlockFormat, ScaleRule
from ._composite import CompositeFormat, Encoded
from ._dot import dot, matmul
from ._exact import ExactResult
from ._format import ElementFormat
from ._int import IntFormat
from ._intquant import IntQuantized, quantize_int, quantize_ternary
from ._minifloat import Minifloat, Specials
from ._ovp import OVPEncoded, OVPFormat
from ._posit import Posit
from ._registry import formats, get
from ._reorder import outlier_permutation, permute_operands
from ._requant import Requantization, quantized_multiplier, requantize, requantize_minifloat, requantize_mx
from ._rounding import Rounding

__all__ = [
    "ACCUMULATOR_SYNTAX",
    "Accumulator",
    "BitMoDEncoded",
    "BitMoDFormat",
    "BlockEncoded",
    "BlockFormat",
    "CompositeFormat",
    "ElementFormat",
    "Encoded",
    "ExactAccumulator",
    "ExactResult",
    "FixedAccumulator",
    "FloatAccumulator",
    "IntFormat",
    "IntQuantized",
    "Minifloat",
    "OVPEncoded",
    "OVPFormat",
    "Posit",
    "QuireAccumulator",
    "Requantization",
    "Rounding",
    "ScaleRule",
    "Specials",
    "accumulator_name",
    "dot",
    "exact_width",
    "formats",
    "get",
    "grid_by_code",
    "grid_lowered",
    "matmul",
    "outlier_permutation",
    "parse_accumulator",
    "permute_operands",
    "quantize_int",
    "quantize_ternary",
    "quantized_multiplier",
    "requantize",
    "requantize_minifloat",
    "requantize_mx",
]
