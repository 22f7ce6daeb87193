"""Training on CPU in seconds: float training, PTQ (activation calibration) and QAT.

Float weights can be cached in an output directory the caller chooses (never downloaded); a
quantized model starts from them, calibrates its activation scales on training batches, and
with `qat_epochs` fine-tunes through Brevitas' straight-through estimators.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ._data import Split, digits
from ._nets import build
from ._network import integer_biases
from ._quantizers import scheme

FLOAT_EPOCHS = {"mlp": 60, "cnn": 40, "transformer": 60}
BATCH = 64


@dataclass
class Trained:
    """A quantized (or float, format None) model and its test accuracies."""

    name: str
    format: str | None
    model: nn.Module
    float_accuracy: float
    accuracy: float


def accuracy(model: nn.Module, images: np.ndarray, labels: np.ndarray) -> float:
    model.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logits = model(torch.from_numpy(images))
    return float((logits.argmax(dim=1).numpy() == labels).mean())


def _epochs(model: nn.Module, split: Split, epochs: int, lr: float, seed: int,
            progress: Callable[[int, int], None] | None) -> None:  # fmt: skip
    torch.manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    rng = np.random.default_rng(seed)
    images, labels = torch.from_numpy(split.train_images), torch.from_numpy(split.train_labels)
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(labels))
        for start in range(0, len(order), BATCH):
            batch = torch.from_numpy(order[start : start + BATCH])
            optimizer.zero_grad()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                loss = nn.functional.cross_entropy(model(images[batch]), labels[batch])
            loss.backward()
            optimizer.step()
        if progress is not None:
            progress(epoch + 1, epochs)


def float_model(name: str, split: Split, cache: Path | None = None, seed: int = 0,
                progress: Callable[[int, int], None] | None = None) -> nn.Module:  # fmt: skip
    """The float model, trained (or loaded from `cache`/<name>_float.pt when present)."""
    torch.manual_seed(seed)  # the initial weights too: the same seed gives the same model in any process
    model = build(name)
    path = cache / f"{name}_float_seed{seed}.pt" if cache is not None else None
    if path is not None and path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model
    _epochs(model, split, FLOAT_EPOCHS[name], 1e-2 if name != "transformer" else 3e-3, seed, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
        torch.save(model.state_dict(), temporary)
        temporary.replace(path)  # whole or absent: other processes share this cache
    return model


def quantized_model(name: str, fmt: str, trained_float: nn.Module, split: Split, qat_epochs: int = 0,
                    seed: int = 0, progress: Callable[[int, int], None] | None = None) -> nn.Module:  # fmt: skip
    """PTQ: float weights, activation scales calibrated on training data; QAT: then fine-tuned."""
    with warnings.catch_warnings():  # brevitas.graph imports the deprecated brevitas.fx
        warnings.simplefilter("ignore")
        from brevitas.graph.calibrate import calibration_mode

    model = build(name, fmt)
    model.load_state_dict(trained_float.state_dict(), strict=False)
    if scheme(fmt).calibrated:  # MX block and OliVe row scales come from the data itself
        with torch.no_grad(), calibration_mode(model), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for start in range(0, len(split.train_labels), 256):
                model(torch.from_numpy(split.train_images[start : start + 256]))
    if qat_epochs:
        _epochs(model, split, qat_epochs, 1e-3, seed + 1, progress)
    model.eval()
    if scheme(fmt).integer_bias:
        integer_biases(model, split.train_images[:256], fmt)
    return model


def train(name: str, fmt: str | None, qat_epochs: int = 0, cache: Path | None = None, seed: int = 0,
          progress: Callable[[int, int], None] | None = None) -> Trained:  # fmt: skip
    """Float training (cached), then PTQ or QAT to `fmt`; accuracies on the fixed test split."""
    split = digits()
    base = float_model(name, split, cache, seed, progress)
    base_accuracy = accuracy(base, split.test_images, split.test_labels)
    if fmt is None:
        return Trained(name, None, base, base_accuracy, base_accuracy)
    model = quantized_model(name, fmt, base, split, qat_epochs, seed, progress)
    return Trained(name, fmt, model, base_accuracy, accuracy(model, split.test_images, split.test_labels))
