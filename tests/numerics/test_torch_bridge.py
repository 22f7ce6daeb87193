"""The torch bridge: fake-quant values equal numerics, gradients go straight through, lazy import."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

import numerics
from numerics.torch import fake_quantize


@pytest.mark.parametrize("name", ["fp8_e4m3", "fp4_e2m1", "posit8_2", "mxfp4", "nvfp4", "ovp4", "bitmod4", "int8"])
def test_values_equal_numerics_and_gradients_pass_through(name: str) -> None:
    x = torch.randn(4, 3, 64, dtype=torch.float64, requires_grad=True)
    y = fake_quantize(x, name)
    fmt = numerics.get(name)
    expected = fmt.quantize(x.detach().numpy()) if isinstance(fmt, numerics.CompositeFormat) else None
    if expected is None:
        expected = fmt.quantize(x.detach().numpy(), saturate=None if (fmt.has_inf or fmt.has_nan) else True)
    np.testing.assert_array_equal(y.detach().numpy(), expected)
    (y * torch.arange(64.0, dtype=torch.float64)).sum().backward()
    assert x.grad is not None
    np.testing.assert_array_equal(x.grad.numpy(), np.broadcast_to(np.arange(64.0), (4, 3, 64)))


def test_scale_axis_and_dtype() -> None:
    x = torch.randn(64, 8)
    scale = torch.tensor(0.01)
    y = fake_quantize(x, "fp8_e4m3", scale=scale)
    assert y.dtype == torch.float32
    s = float(scale)
    expected = numerics.get("fp8_e4m3").quantize(x.double().numpy() / s) * s
    np.testing.assert_array_equal(y.numpy(), expected.astype(np.float32))
    z = fake_quantize(x, "mxfp8_e4m3", axis=0)
    np.testing.assert_array_equal(z.numpy(), numerics.get("mxfp8_e4m3").quantize(x.double().numpy(), axis=0))


def test_bad_tensors() -> None:
    with pytest.raises(TypeError, match=r"^fake_quantize needs a floating-point tensor, got torch.int64$"):
        fake_quantize(torch.arange(4), "int8")


def test_import_numerics_does_not_import_torch() -> None:
    code = "import sys, numerics, numerics.torch; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
