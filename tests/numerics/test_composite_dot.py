"""Dot products over composite operands: exact, and block-wise float accumulation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numerics
from numerics import FloatAccumulator


def fractions_of(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(float(v)) for v in values.reshape(-1)]
    return out


def round_fp32(value: Fraction) -> Fraction:
    """Nearest-even to float32, from the definition (no float arithmetic)."""
    if value == 0:
        return Fraction(0)
    magnitude = abs(value)
    e = magnitude.numerator.bit_length() - magnitude.denominator.bit_length()
    while Fraction(2) ** e > magnitude:
        e -= 1
    while Fraction(2) ** (e + 1) <= magnitude:
        e += 1
    quantum = Fraction(2) ** (max(e, -126) - 23)
    return round(value / quantum) * quantum  # Python's round of a Fraction is half-even


PAIRS = [("mxfp8_e4m3", "mxfp8_e4m3"), ("mxfp4", "mxfp6_e2m3"), ("mxint8", "mxfp8_e5m2"), ("nvfp4", "nvfp4"),
         ("bfp4_8", "fp8_e4m3")]  # fmt: skip


@pytest.mark.parametrize(("a_name", "b_name"), PAIRS)
def test_exact_matmul_of_block_operands_equals_fractions(a_name: str, b_name: str) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 70)) * np.exp2(rng.integers(-6, 6, (5, 70)))
    w = rng.standard_normal((70, 3))
    a_fmt, b_fmt = numerics.get(a_name), numerics.get(b_name)
    a = a_fmt.encode(x, axis=-1)
    b = b_fmt.encode(w, axis=0) if isinstance(b_fmt, numerics.CompositeFormat) else b_fmt.encode(w)
    got = numerics.matmul(a, b, a_fmt, b_fmt).to_fractions()
    av = fractions_of(a.decode())
    bv = fractions_of(b.decode() if isinstance(b, numerics.Encoded) else b_fmt.decode(b))
    assert got.tolist() == (av @ bv).tolist()


def test_blocks_in_fp32_round_each_block_then_sum_in_order() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal((4, 96)) * 1e3
    w = rng.standard_normal((96, 2)) * 1e-3
    fmt = numerics.get("mxfp8_e4m3")
    a, b = fmt.encode(x), fmt.encode(w, axis=0)
    fp32 = numerics.get("fp32")
    for order in ("sequential", "pairwise"):
        got = numerics.matmul(a, b, fmt, fmt, FloatAccumulator(fp32, order)).to_fractions()  # type: ignore[arg-type]
        av, bv = fractions_of(a.decode()), fractions_of(b.decode())
        for i in range(4):
            for j in range(2):
                blocks = [round_fp32(sum(av[i, k] * bv[k, j] for k in range(s, s + 32))) for s in range(0, 96, 32)]
                if order == "sequential":
                    acc = Fraction(0)
                    for v in blocks:
                        acc = round_fp32(acc + v)
                else:
                    acc = round_fp32(round_fp32(blocks[0] + blocks[1]) + blocks[2])
                assert got[i, j] == acc


def test_blocks_must_run_along_the_reduction_axis() -> None:
    fmt = numerics.get("mxfp4")
    x = np.ones((64, 64))
    with pytest.raises(ValueError, match=r"^b: mxfp4 blocks must run along the reduction axis 0, got axis 1$"):
        numerics.matmul(fmt.encode(x), fmt.encode(x, axis=-1), fmt, fmt)
    with pytest.raises(TypeError, match=r"^a: a mxfp4 operand must be mxfp4.encode\(...\) output$"):
        numerics.matmul(np.zeros((2, 2), np.uint8), fmt.encode(x[:2, :2], axis=0), fmt, fmt)


@settings(max_examples=40, deadline=None)
@given(
    name=st.sampled_from(["mxfp8_e4m3", "mxfp4", "mxint8", "nvfp4", "bfp5_16", "mxfp6_e3m2"]),
    k_terms=st.integers(1, 80),
    seed=st.integers(0, 2**32 - 1),
)
def test_block_dot_with_the_exact_accumulator_equals_fractions(name: str, k_terms: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    fmt = numerics.get(name)
    a = fmt.encode(rng.standard_t(3, (2, k_terms)) * np.exp2(rng.integers(-10, 10)))
    b = fmt.encode(rng.standard_normal((2, k_terms)))
    got = numerics.dot(a, b, fmt, fmt).to_fractions()
    av, bv = fractions_of(a.decode()), fractions_of(b.decode())
    assert got.tolist() == [sum(av[r] * bv[r]) for r in range(2)]
