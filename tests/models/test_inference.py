"""A bundled model with every quantized product from numerics with a chosen accumulator."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import models
import numerics


@pytest.mark.parametrize("fmt", ["int8", "mxfp4", "ovp4"])
def test_the_exact_accumulator_reproduces_brevitas(mlp: nn.Module, split: models.Split, fmt: str) -> None:
    """Exact products differ from Brevitas' float32 ones by float32 rounding only: the same
    predictions on every test image, logits within a relative 1e-4."""
    model = models.quantized_model("mlp", fmt, mlp, split)
    images = split.test_images[:64]
    logits, poisoned = models.logits_with(model, fmt, images, numerics.ExactAccumulator())
    model.eval()
    with torch.no_grad():
        brevitas = model(torch.from_numpy(images)).numpy()
    assert not poisoned.any()
    np.testing.assert_allclose(logits, brevitas, rtol=1e-4, atol=1e-4)
    assert (logits.argmax(axis=1) == brevitas.argmax(axis=1)).all()


def test_a_narrow_float_accumulator_changes_the_layer_product(mlp: nn.Module, split: models.Split) -> None:
    """fc1's product with a bf16 accumulator with a 4-bit window is numerics.matmul with it, and
    differs from the exact product (so the study measures something)."""
    model = models.quantized_model("mlp", "int8", mlp, split)
    codes = models.extract(model, "fc1", split.test_images[:16], "int8")
    narrow = numerics.parse_accumulator("bf16_w4")
    got = models.product_values(codes, "int8", narrow)
    want = numerics.matmul(codes.input_codes, codes.weight_codes, "int8", "int8", narrow).to_float64()
    np.testing.assert_array_equal(got, want * codes.input_scale * codes.weight_scale)
    exact = models.product_values(codes, "int8", numerics.ExactAccumulator())
    assert not np.array_equal(got, exact)


def test_an_overflowing_accumulator_makes_its_images_wrong(mlp: nn.Module, split: models.Split) -> None:
    """FP8 E4M3 grid values (up to 448 each) summed in fp16 overflow to Inf on some images: those
    images count as wrong answers, the others still run."""
    model = models.quantized_model("mlp", "fp8_e4m3", mlp, split)
    images, labels = split.test_images[:40], split.test_labels[:40]
    fp16 = numerics.parse_accumulator("fp16")
    codes = models.extract(model, "fc1", images, "fp8_e4m3")
    overflowed = ~np.isfinite(models.product_values(codes, "fp8_e4m3", fp16)).all(axis=1)
    assert overflowed.any()
    logits, poisoned = models.logits_with(model, "fp8_e4m3", images, fp16)
    assert (poisoned[overflowed]).all()
    accuracy = models.accuracy_with(model, "fp8_e4m3", images, labels, fp16)
    assert accuracy == float(((logits.argmax(axis=1) == labels) & ~poisoned).mean())
    assert accuracy <= 1 - overflowed.mean()
