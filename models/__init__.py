"""Brevitas models and quantizers equal to numerics formats (numerics is the only bitfab import)."""

from ._data import Split, digits
from ._extract import LayerCodes, extract, layer_kind, layers
from ._nets import MODELS, build
from ._quantizers import SCHEMES, WEIGHT_ONLY, Scheme, quantizers, scheme
from ._train import Trained, accuracy, float_model, quantized_model, train

__all__ = [
    "MODELS",
    "SCHEMES",
    "WEIGHT_ONLY",
    "LayerCodes",
    "Scheme",
    "Split",
    "Trained",
    "accuracy",
    "build",
    "digits",
    "extract",
    "float_model",
    "layer_kind",
    "layers",
    "quantized_model",
    "quantizers",
    "scheme",
    "train",
]
