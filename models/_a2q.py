"""An MLP for the digits with Brevitas' accumulator-aware weights (A2Q): every dot product of
every input fits a P-bit signed accumulator, so the hardware may accumulate in P bits.

`a2q{P}` (P = 10..32) is the MLP 64 -> 64 -> 10 built from stock Brevitas classes only:
`QuantLinear(weight_quant=Int8AccumulatorAwareWeightQuant, weight_accumulator_bit_width=P)`
with uint8 inputs (`Uint8ActPerTensorFloat` on the image, a `QuantReLU` between the layers) and
a float bias added after the product. A2Q bounds the l1 norm of each output channel's integer
weights by (2**(P-1) - 1) / 2**N for unsigned N-bit inputs (2**(N-1) for signed ones), so
sum_k |a_k w_k| < 2**(P-1) for any input: no partial sum overflows, in any order. `a2q_ref` is
the same MLP with ordinary INT8 weights (`Int8WeightPerChannelFloat`), the accuracy reference.

Training is QAT from scratch on CPU (seed 0; about a minute for a2q16 on a busy two-core
machine). A2Q below 16 bits trains poorly from scratch (round-toward-zero leaves almost every
weight at zero), so P < 16 starts from the 16-bit model and tightens the bound one bit at a
time, each step (about a minute) cached as its own model.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from ._data import Split, digits
from ._train import _epochs

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn
    from brevitas.quant import Int8AccumulatorAwareWeightQuant, Int8WeightPerChannelFloat, Uint8ActPerTensorFloat

A2Q_HELP = "a2q{P} (the digits MLP with Brevitas A2Q INT8 weights for a P-bit accumulator, P = 10..32, uint8 " \
    "activations) or a2q_ref (the same MLP with plain INT8 weights)"  # fmt: skip
A2Q_BITS = (10, 32)
START_BITS = 16  # narrower models start from this one and tighten the bound one bit at a time
EPOCHS, LEARNING_RATE = 30, 1e-2  # from scratch
TIGHTEN_EPOCHS, TIGHTEN_LEARNING_RATE = 20, 3e-3  # each one-bit step below START_BITS


class A2QMLP(nn.Module):
    """64 -> 64 -> 10 on uint8 activations; A2Q weights for `accumulator_bits`, or plain INT8 (None)."""

    def __init__(self, accumulator_bits: int | None) -> None:
        super().__init__()
        if accumulator_bits is None:
            weight: dict[str, object] = {"weight_quant": Int8WeightPerChannelFloat}
        else:
            weight = {"weight_quant": Int8AccumulatorAwareWeightQuant, "weight_accumulator_bit_width": accumulator_bits}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.fc1 = qnn.QuantLinear(64, 64, bias=True, input_quant=Uint8ActPerTensorFloat, **weight)
            self.relu = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(64, 10, bias=True, **weight)
        self.accumulator_bits = accumulator_bits

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        out = self.fc2(self.relu(self.fc1(images.flatten(1))))
        return out.value if hasattr(out, "value") else out


def a2q_bits(name: str) -> int | None:
    """P of a bundled A2Q model name (`a2q16` -> 16), None for `a2q_ref`; a clear error otherwise."""
    if name == "a2q_ref":
        return None
    match = re.fullmatch(r"a2q(\d+)", name)
    if match is None:
        raise ValueError(f"unknown A2Q model {name!r}; expected {A2Q_HELP}")
    bits = int(match[1])
    if not A2Q_BITS[0] <= bits <= A2Q_BITS[1]:
        raise ValueError(f"{name}: the accumulator width P must be between {A2Q_BITS[0]} and {A2Q_BITS[1]} bits "
                         f"(uint8 inputs need 2**(P-1) - 1 >= 255 for one non-zero weight), got {bits}")  # fmt: skip
    return bits


def is_a2q(name: str) -> bool:
    """Whether `name` spells a bundled A2Q model (valid or not: `a2q9` is one, and an error)."""
    return name == "a2q_ref" or re.fullmatch(r"a2q\d+", name) is not None


def _without_accumulator_width(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict less A2Q's accumulator width (a buffer: loading it would undo the new bound)."""
    return {key: value for key, value in state.items() if "accumulator_bit_width" not in key}


def a2q_model(name: str, split: Split | None = None, cache: Path | None = None, seed: int = 0,
              progress: Callable[[int, int], None] | None = None) -> nn.Module:  # fmt: skip
    """The trained bundled model `name` (`a2q{P}` or `a2q_ref`), in eval mode; weights are loaded
    from (and saved to) `cache`/<name>_seed<seed>.pt when `cache` is given."""
    bits = a2q_bits(name)
    torch.manual_seed(seed)
    model = A2QMLP(bits)
    path = cache / f"{name}_seed{seed}.pt" if cache is not None else None
    if path is not None and path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    split = split or digits()
    if bits is not None and bits < START_BITS:
        wider = a2q_model(f"a2q{bits + 1}", split, cache, seed, progress)
        model.load_state_dict(_without_accumulator_width(wider.state_dict()), strict=False)
        _epochs(model, split, TIGHTEN_EPOCHS, TIGHTEN_LEARNING_RATE, seed + START_BITS - bits, progress)
    else:
        _epochs(model, split, EPOCHS, LEARNING_RATE, seed, progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.partial")
        torch.save(model.state_dict(), temporary)
        temporary.replace(path)  # whole or absent: other processes share this cache
    return model.eval()
