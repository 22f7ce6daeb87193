"""Brevitas models and quantizers equal to numerics formats (numerics is the only bitfab import)."""

from ._data import Split, digits
from ._discover import (
    LayerInfo,
    Product,
    capture,
    capture_slices,
    describe,
    forward,
    forward_with,
    layers,
    quant_modules,
)
from ._extract import LayerCodes, bundled_layers, extract, layer_kind
from ._nets import MODELS, build
from ._operand import Operand, Unmappable, format_name
from ._quantize import quantize
from ._quantizers import SCHEMES, WEIGHT_ONLY, Scheme, quantizers, scheme
from ._spec import SPEC_HELP, load
from ._train import Trained, accuracy, float_model, quantized_model, train

__all__ = [
    "MODELS",
    "SCHEMES",
    "SPEC_HELP",
    "WEIGHT_ONLY",
    "LayerCodes",
    "LayerInfo",
    "Operand",
    "Product",
    "Scheme",
    "Split",
    "Trained",
    "Unmappable",
    "accuracy",
    "build",
    "bundled_layers",
    "capture",
    "capture_slices",
    "describe",
    "digits",
    "extract",
    "float_model",
    "format_name",
    "forward",
    "forward_with",
    "layer_kind",
    "layers",
    "load",
    "quant_modules",
    "quantize",
    "quantized_model",
    "quantizers",
    "scheme",
    "train",
]
