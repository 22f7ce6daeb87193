"""Brevitas models and quantizers equal to numerics formats (numerics is the only bitfab import)."""

from ._a2q import A2Q_HELP, A2QMLP, a2q_bits, a2q_model, is_a2q
from ._data import Split, digits
from ._discover import (
    LayerInfo,
    Product,
    capture,
    capture_slices,
    describe,
    forward,
    forward_with,
    gemm_layouts,
    layers,
    quant_modules,
)
from ._extract import LayerCodes, bundled_layers, extract, layer_codes, layer_kind
from ._inference import accuracy_with, logits_with, product_values
from ._narrow import forward_accumulating
from ._nets import MODELS, build
from ._network import Codes, Network, Tap, brevitas_taps, hardware_program, integer_biases
from ._operand import Operand, Unmappable, format_name
from ._quantize import quantize
from ._quantizers import SCHEMES, WEIGHT_ONLY, Scheme, quantizers, scheme
from ._spec import SPEC_HELP, load
from ._train import Trained, accuracy, float_model, quantized_model, train

__all__ = [
    "A2QMLP",
    "A2Q_HELP",
    "MODELS",
    "SCHEMES",
    "SPEC_HELP",
    "WEIGHT_ONLY",
    "Codes",
    "LayerCodes",
    "LayerInfo",
    "Network",
    "Operand",
    "Product",
    "Scheme",
    "Split",
    "Tap",
    "Trained",
    "Unmappable",
    "a2q_bits",
    "a2q_model",
    "accuracy",
    "accuracy_with",
    "brevitas_taps",
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
    "forward_accumulating",
    "forward_with",
    "gemm_layouts",
    "hardware_program",
    "integer_biases",
    "is_a2q",
    "layer_codes",
    "layer_kind",
    "layers",
    "load",
    "logits_with",
    "product_values",
    "quant_modules",
    "quantize",
    "quantized_model",
    "quantizers",
    "scheme",
    "train",
]
