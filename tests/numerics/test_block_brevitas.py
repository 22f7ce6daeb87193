"""OCP MX block formats against Brevitas' MXFloat weight quantizers: values and scales, bit for bit."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

import numerics

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn
    from brevitas.quant.experimental.mx_quant_ocp import MXFloat8e4m3Weight

LAYOUTS = {
    "mxfp8_e4m3": {},
    "mxfp8_e5m2": {"exponent_bit_width": 5, "mantissa_bit_width": 2},
    "mxfp6_e3m2": {"bit_width": 6, "exponent_bit_width": 3, "mantissa_bit_width": 2},
    "mxfp6_e2m3": {"bit_width": 6, "exponent_bit_width": 2, "mantissa_bit_width": 3},
    "mxfp4": {"bit_width": 4, "exponent_bit_width": 2, "mantissa_bit_width": 1},
}


def weights(seed: int) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((16, 128)) * np.exp2(rng.integers(-12, 12, (16, 1)))
    w[0, 0] = np.nextafter(np.float32(4.0), np.float32(0))  # amax just below a power of two
    w[1, 0] = 1.75 * 8  # significand at the FLOOR rule's saturation edge
    w[2, 32:64] = np.round(w[2, 32:64] * 4) / 4  # many ties
    return torch.from_numpy(w.astype(np.float32))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_brevitas_mx_weights_equal_numerics(name: str) -> None:
    quantizer = MXFloat8e4m3Weight.let(**LAYOUTS[name]) if LAYOUTS[name] else MXFloat8e4m3Weight
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        layer = qnn.QuantLinear(128, 16, bias=False, weight_quant=quantizer)
        with torch.no_grad():
            layer.weight.copy_(weights(len(name)))
        quant = layer.quant_weight()
    fmt = numerics.get(name)
    encoded = fmt.encode(layer.weight.detach().double().numpy(), axis=1)
    np.testing.assert_array_equal(quant.value.detach().double().numpy(), encoded.decode())
    scales = numerics.get("e8m0").decode(encoded.scales)
    theirs = quant.scale_.detach().double().numpy().reshape(scales.shape)
    # An all-zero block: the spec (and numerics) give 2**-127; Brevitas clamps its amax to an
    # epsilon first and reports a different, equally unused scale.
    nonzero = np.abs(encoded.decode().reshape(16, 4, 32)).max(axis=-1) > 0
    assert (~nonzero).any()
    np.testing.assert_array_equal(theirs[nonzero], scales[nonzero])
