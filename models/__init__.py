"""Brevitas models and quantizers equal to numerics formats (numerics is the only bitfab import)."""

from ._data import Split, digits
from ._extract import LayerCodes, extract, linear_layers
from ._nets import MODELS, build
from ._quantizers import ACT_QUANTIZERS, WEIGHT_QUANTIZERS, quantizers
from ._train import Trained, accuracy, float_model, quantized_model, train

__all__ = [
    "ACT_QUANTIZERS",
    "MODELS",
    "WEIGHT_QUANTIZERS",
    "LayerCodes",
    "Split",
    "Trained",
    "accuracy",
    "build",
    "digits",
    "extract",
    "float_model",
    "linear_layers",
    "quantized_model",
    "quantizers",
    "train",
]
