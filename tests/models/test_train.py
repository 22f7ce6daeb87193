"""The models train on CPU in seconds, PTQ keeps their accuracy, QAT runs, weights cache locally."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from torch import nn

import models

# Float weights the whole suite trains once and shares (tests/conftest.py sets BITFAB_CACHE).
SHARED_WEIGHTS = Path(os.environ["BITFAB_CACHE"]) / "models"


def test_digits_split_is_fixed_and_stratified(split: models.Split) -> None:
    assert split.train_images.shape == (1437, 1, 8, 8) and split.test_images.shape == (360, 1, 8, 8)
    assert split.train_images.min() >= 0.0 and split.train_images.max() <= 1.0
    assert sorted(set(split.test_labels.tolist())) == list(range(10))
    assert (models.digits().test_labels == split.test_labels).all()


def test_mlp_ptq_keeps_its_accuracy(mlp: nn.Module, split: models.Split) -> None:
    base = models.accuracy(mlp, split.test_images, split.test_labels)
    assert base >= 0.93
    drops = {"int8": 0.02, "fp8_e4m3": 0.02, "mxfp8_e4m3": 0.02, "mxfp4": 0.04, "int4": 0.06}
    for fmt, allowed_drop in drops.items():
        quantized = models.quantized_model("mlp", fmt, mlp, split)
        assert models.accuracy(quantized, split.test_images, split.test_labels) >= base - allowed_drop, fmt


def test_qat_fine_tunes_through_the_quantizers(mlp: nn.Module, split: models.Split) -> None:
    epochs = []
    model = models.quantized_model("mlp", "int4", mlp, split, qat_epochs=2, progress=lambda e, n: epochs.append(e))
    assert epochs == [1, 2]
    assert models.accuracy(model, split.test_images, split.test_labels) >= 0.9


@pytest.mark.slow
@pytest.mark.parametrize(("name", "fmt"), [("cnn", "int8"), ("transformer", "mxfp8_e4m3")])
def test_cnn_and_transformer_train_and_quantize(name: str, fmt: str, tmp_path: Path) -> None:
    trained = models.train(name, fmt, cache=tmp_path)
    assert trained.float_accuracy >= 0.93
    assert trained.accuracy >= trained.float_accuracy - 0.03
    assert [p.name for p in tmp_path.iterdir()] == [f"{name}_float_seed0.pt"]  # nothing written elsewhere


def test_cached_float_weights_are_reused(tmp_path: Path, split: models.Split, mlp: nn.Module) -> None:
    shutil.copy(SHARED_WEIGHTS / "mlp_float_seed0.pt", tmp_path)  # trained once for the suite (the fixture)
    first = models.train("mlp", None, cache=tmp_path)
    again = models.train("mlp", None, cache=tmp_path, progress=lambda e, n: pytest.fail("retrained"))
    assert again.accuracy == first.accuracy


def test_unknown_model_or_format_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown model 'resnet'; available: mlp, cnn, transformer"):
        models.build("resnet")
    with pytest.raises(ValueError, match="no Brevitas quantizer for 'posit16_1'"):
        models.build("mlp", "posit16_1")
