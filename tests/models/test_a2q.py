"""The bundled A2Q MLP: names, the bound Brevitas' accumulator-aware quantizer guarantees (every
output channel's sum |w| x 255 fits the P-bit register), and the whole network with its products
accumulated by numerics in a wrapping register: equal to Brevitas at the trained width and wider,
wrong when plain INT8 weights meet the same register."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import models
import numerics

CACHE = Path(os.environ["BITFAB_CACHE"]) / "models"
SPLIT = models.digits()
IMAGES = SPLIT.test_images[:64]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("a2q9", "a2q9: the accumulator width P must be between 10 and 32 bits (uint8 inputs need 2**(P-1) - 1 >= 255 "
                 "for one non-zero weight), got 9"),
        ("a2q_16", "unknown A2Q model 'a2q_16'; expected " + models.A2Q_HELP),
    ],
)  # fmt: skip
def test_bad_names_say_what_is_expected(name: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace(")", r"\)").replace("*", r"\*")
                       .replace("+", r"\+") + "$"):  # fmt: skip
        models.a2q_bits(name)


def test_names() -> None:
    assert [models.a2q_bits(n) for n in ("a2q10", "a2q16", "a2q32", "a2q_ref")] == [10, 16, 32, None]
    assert models.is_a2q("a2q9") and models.is_a2q("a2q_ref") and not models.is_a2q("mlp")


def test_built_from_stock_brevitas_quantizers() -> None:
    from brevitas.quant import Int8AccumulatorAwareWeightQuant, Int8WeightPerChannelFloat

    a2q, plain = models.A2QMLP(14), models.A2QMLP(None)
    assert a2q.fc1.weight_quant.quant_injector.__name__ == Int8AccumulatorAwareWeightQuant.__name__
    assert plain.fc2.weight_quant.quant_injector.__name__ == Int8WeightPerChannelFloat.__name__
    widths = [v for k, v in a2q.state_dict().items() if "accumulator_bit_width" in k]
    assert [int(w) for w in widths] == [14, 14]


def test_trained_weights_satisfy_the_a2q_bound() -> None:
    model = models.a2q_model("a2q16", SPLIT, cache=CACHE)
    for layer in ("fc1", "fc2"):
        product = models.capture(model, layer, IMAGES[:1])
        assert models.format_name(product.a.format) == "uint8"
        l1 = np.abs(product.b.grid).sum(axis=0)  # per output channel
        assert int(l1.max()) * 255 <= 2**15 - 1
    assert models.accuracy(model, SPLIT.test_images, SPLIT.test_labels) > 0.9
    again = models.a2q_model("a2q16", SPLIT, cache=CACHE)  # from the cache: the same weights
    assert all(np.array_equal(x, y) for x, y in zip(model.state_dict().values(), again.state_dict().values(),
                                                     strict=True))  # fmt: skip


def test_numerics_in_the_loop_equals_brevitas_until_the_register_is_too_narrow() -> None:
    brevitas = np.asarray(models.forward(models.a2q_model("a2q16", SPLIT, cache=CACHE), IMAGES)).argmax(axis=1)
    a2q16 = models.a2q_model("a2q16", SPLIT, cache=CACHE)
    for acc in ("exact", "int16", "int24"):
        out = models.forward_accumulating(a2q16, IMAGES, numerics.parse_accumulator(acc))
        np.testing.assert_array_equal(out.argmax(axis=1), brevitas)
    exact = models.forward_accumulating(a2q16, IMAGES, numerics.ExactAccumulator())
    np.testing.assert_allclose(exact, np.asarray(models.forward(a2q16, IMAGES)), rtol=1e-5, atol=1e-5)
    plain = models.a2q_model("a2q_ref", SPLIT, cache=CACHE)  # no accumulator constraint: int16 wraps
    reference = np.asarray(models.forward(plain, IMAGES)).argmax(axis=1)
    wrapped = models.forward_accumulating(plain, IMAGES, numerics.FixedAccumulator(16)).argmax(axis=1)
    assert (wrapped != reference).sum() > len(IMAGES) // 2
