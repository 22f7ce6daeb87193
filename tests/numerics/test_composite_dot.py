"""Dot products over composite operands: exact, and block-wise float accumulation."""

from __future__ import annotations

import re
from dataclasses import replace
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import numerics
from numerics import FloatAccumulator

from .reference import round_fraction


def fractions_of(values: np.ndarray) -> np.ndarray:
    out = np.empty(values.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(float(v)) for v in values.reshape(-1)]
    return out


def round_fp32(value: Fraction) -> Fraction:
    """Nearest-even to float32, from the definition (no float arithmetic)."""
    rounded = round_fraction(value, numerics.get("fp32"), toward_zero=False)
    assert isinstance(rounded, Fraction)
    return rounded


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
    for order in ("blocked", "pairwise"):
        got = numerics.matmul(a, b, fmt, fmt, FloatAccumulator(fp32, order)).to_fractions()  # type: ignore[arg-type]
        av, bv = fractions_of(a.decode()), fractions_of(b.decode())
        for i in range(4):
            for j in range(2):
                blocks = [round_fp32(sum(av[i, k] * bv[k, j] for k in range(s, s + 32))) for s in range(0, 96, 32)]
                if order == "blocked":
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


# -- blocks with a NaN scale (E8M0 0xFF; E4M3 0x7F for NVFP4): OCP MX makes the whole block NaN --

BLOCK_NAMES = [name for name in numerics.formats() if isinstance(numerics.get(name), numerics.BlockFormat)]


def nan_blocks(fmt: numerics.BlockFormat, rows: int, k_terms: int, where: list[tuple[int, int]]) -> np.ndarray:
    """(rows, K) normal values with a NaN in block `block` of each (row, block) in `where`."""
    x = np.random.default_rng(rows * k_terms).standard_normal((rows, k_terms))
    for row, block in where:
        x[row, min(block * fmt.block_size + 3, k_terms - 1)] = np.nan
    return x


def float_oracle(a: numerics.Encoded, b: numerics.Encoded, matrix: bool = True) -> np.ndarray:
    """numpy float64 products of the decoded operands (NaN blocks decode to NaN), summed."""
    av, bv = a.decode(), b.decode()
    with np.errstate(invalid="ignore"):
        return (av[:, :, None] * bv[None]).sum(axis=1) if matrix else (av * bv).sum(axis=-1)


def exact_without_nan(a: numerics.Encoded, b: numerics.Encoded) -> np.ndarray:
    """Exact A @ B with every NaN element taken as 0 (what integers() holds, as for NaN codes)."""
    av, bv = fractions_of(np.nan_to_num(a.decode(), nan=0.0)), fractions_of(np.nan_to_num(b.decode(), nan=0.0))
    return av @ bv


@pytest.mark.parametrize("name", BLOCK_NAMES)
@pytest.mark.parametrize("side", ["a", "b", "both"])
@pytest.mark.parametrize("position", ["first", "middle", "last"])
def test_a_nan_scale_block_makes_every_output_it_touches_nan(name: str, side: str, position: str) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, numerics.BlockFormat)
    k_terms = 5 * fmt.block_size // 2  # the last block is partial
    n_blocks = -(-k_terms // fmt.block_size)
    block = {"first": 0, "middle": n_blocks // 2, "last": n_blocks - 1}[position]
    x = nan_blocks(fmt, 4, k_terms, [(1, block)] if side in ("a", "both") else [])
    w = nan_blocks(fmt, 3, k_terms, [(2, block)] if side in ("b", "both") else []).T
    a, b = fmt.encode(x), fmt.encode(w, axis=0)
    nan_scale = fmt.scale.decode(fmt.scale.encode(np.array(np.nan)))
    assert np.isnan(nan_scale) and np.isnan(fmt.scale.decode(a.scales)).sum() == (side != "b")
    got = numerics.matmul(a, b, fmt, fmt)
    want = float_oracle(a, b)
    expected_nan = np.zeros((4, 3), bool)
    expected_nan[1, :] |= side != "b"
    expected_nan[:, 2] |= side != "a"
    np.testing.assert_array_equal(np.isnan(want), expected_nan)  # the oracle agrees with OCP MX
    np.testing.assert_array_equal(np.isnan(got.special), expected_nan)
    assert not np.isinf(got.special).any()
    exact = exact_without_nan(a, b)
    units = Fraction(2) ** got.lsb_exponent
    assert [[Fraction(v) * units for v in row] for row in got.integers().tolist()] == exact.tolist()
    fractions = got.to_fractions()
    assert fractions[~expected_nan].tolist() == exact[~expected_nan].tolist()
    rounded = numerics.get("fp64").decode(numerics.matmul(a, b, fmt, fmt, out_format="fp64"))
    np.testing.assert_array_equal(np.isnan(rounded), expected_nan)


@pytest.mark.parametrize("name", ["mxfp8_e4m3", "mxfp4", "mxint8", "nvfp4"])
def test_nan_scale_blocks_in_dot_and_with_each_accumulator(name: str) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, numerics.BlockFormat)
    k_terms = 3 * fmt.block_size
    x = nan_blocks(fmt, 3, k_terms, [(0, 2)])
    w = nan_blocks(fmt, 3, k_terms, [(2, 0)])
    a, b = fmt.encode(x), fmt.encode(w)
    clean_a, clean_b = fmt.encode(np.nan_to_num(x, nan=0.0)), fmt.encode(np.nan_to_num(w, nan=0.0))
    expected_nan = np.array([True, False, True])
    np.testing.assert_array_equal(np.isnan(float_oracle(a, b, matrix=False)), expected_nan)
    for accumulator in (None, FloatAccumulator(numerics.get("fp32"), "blocked")):  # type: ignore[arg-type]
        got = numerics.dot(a, b, fmt, fmt, accumulator)
        clean = numerics.dot(clean_a, clean_b, fmt, fmt, accumulator)
        np.testing.assert_array_equal(np.isnan(got.special), expected_nan)
        assert got.to_fractions()[1] == clean.to_fractions()[1]  # the untouched output is unchanged
    message = f"a fixed-point accumulator cannot take Inf/NaN operands ({name} codes hold some)"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        numerics.dot(a, b, fmt, fmt, numerics.FixedAccumulator(63, lsb_exponent=-40))


def test_nan_and_inf_element_codes_inside_blocks_follow_ieee() -> None:
    fmt = numerics.get("mxfp8_e5m2")
    assert isinstance(fmt, numerics.BlockFormat)
    rng = np.random.default_rng(9)
    a, b = fmt.encode(rng.standard_normal((3, 64))), fmt.encode(rng.standard_normal((64, 4)), axis=0)
    elements = a.elements.copy()
    elements[0, 1, 5] = 0x7C  # +Inf
    elements[1, 0, 0] = 0xFC  # -Inf
    elements[2, 0, 7] = 0x7E  # NaN
    a = replace(a, elements=elements)
    got, want = numerics.matmul(a, b, fmt, fmt), float_oracle(a, b)
    np.testing.assert_array_equal(np.isnan(got.special), np.isnan(want))
    np.testing.assert_array_equal(got.special[np.isinf(want)], want[np.isinf(want)])
    assert np.isinf(want).any() and np.isnan(want).any()


def test_lower_full_refuses_nan_blocks_and_names_the_alternative() -> None:
    fmt = numerics.get("mxfp4")
    x = np.ones((2, 64))
    x[1, 40] = np.inf
    encoded = fmt.encode(x)
    message = ("mxfp4: 32 elements are NaN or Inf (a NaN block scale or a NaN/Inf element code) and have no "
               "integer lowering; lower_with_specials() sets them aside")  # fmt: skip
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        encoded.lower_full()
    sig, exp, special = encoded.lower_with_specials()
    assert np.isnan(special[1, 32:]).all() and (special[0] == 0).all() and (sig[1, 32:] == 0).all()
    np.testing.assert_array_equal(np.ldexp(sig[0].astype(float), exp[0].astype(np.int32)), encoded.decode()[0])
