"""Partial sums in the order the arrays add them, against a naive Python-integer model: the prefix
sums of every dot product (output-stationary), or inside each R-row fold and then over the folds
(weight-stationary); the sum of |products|; the results that overflow or wrap in a register; the
range of sums the weights allow for any input (every input and every subset of products, enumerated)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from bitfab.partial_sums import (
    PartialSums,
    any_input_sums,
    fits_int64,
    integer_units,
    partial_sums,
    register_range,
    signed_bits,
)
from numerics import ExactAccumulator, FixedAccumulator


def naive(a: list[list[int]], b: list[list[int]], rows: int | None) -> tuple[list[list[int]], list[int]]:
    """(the register values of every result, in the array's order; every final sum), Python ints."""
    values, finals = [], []
    for row in a:
        for j in range(len(b[0])):
            products = [row[k] * b[k][j] for k in range(len(row))]
            seen, total = [], 0
            fold = rows or len(products)
            for start in range(0, len(products), fold):
                partial = 0
                for p in products[start : start + fold]:
                    partial += p
                    seen.append(partial if rows else total + partial)
                total += partial
                seen.append(total)
            values.append(seen)
            finals.append(total)
    return values, finals


@pytest.mark.parametrize("rows", [None, 2, 3, 4])
@pytest.mark.parametrize("seed", [0, 1])
def test_extremes_equal_python_integers(rows: int | None, seed: int) -> None:
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, size=(5, 11))  # uint8 activations
    b = rng.integers(-127, 128, size=(11, 3))  # int8 weights
    register = (-(1 << 14), (1 << 14) - 1)
    got = partial_sums(a, b, rows, register)
    values, finals = naive(a.tolist(), b.tolist(), rows)
    assert got.largest == max(0, *(max(v) for v in values))
    assert got.smallest == min(0, *(min(v) for v in values))
    assert got.abs_product_sum == max(sum(abs(x * y) for x, y in zip(r, c, strict=True))
                                      for r in a.tolist() for c in b.T.tolist())  # fmt: skip
    assert got.results == 15
    assert got.results_overflowing == sum(any(not register[0] <= x <= register[1] for x in v) for v in values)
    assert got.results_wrapped == sum(not register[0] <= f <= register[1] for f in finals)


def test_a_lucky_wrap_is_an_overflow_whose_result_survives() -> None:
    """+w four times, then -w four times: the 4-row fold reaches 4 w x, the result is 0."""
    a = np.full((1, 8), 255)
    b = np.array([[127] * 4 + [-127] * 4]).T
    sums = partial_sums(a, b, 4, register_range(FixedAccumulator(16)))
    assert (sums.largest, sums.smallest, sums.max_abs, sums.bits) == (4 * 127 * 255, -4 * 127 * 255, 129540, 18)
    assert sums.overflowed and sums.results_overflowing == 1 and sums.results_wrapped == 0
    assert sums.abs_product_sum == 8 * 127 * 255


def test_weight_stationary_folds_restart_from_zero() -> None:
    """The fold sums cancel inside each fold, so only the output-stationary order overflows."""
    a = np.full((1, 8), 100)
    b = np.array([[100, 100, -100, -100] * 2]).T
    register = register_range(FixedAccumulator(15))  # 16,383: one fold's 20,000 leaves it
    assert partial_sums(a, b, 2, register).max_abs == 20_000
    assert partial_sums(a, b, 4, register).max_abs == 20_000
    assert partial_sums(a, b, None, register).max_abs == 20_000
    wide = np.array([[100, 100, 100, -100, -100, -100, 100, -100]]).T
    assert partial_sums(a, wide, 8, None).max_abs == partial_sums(a, wide, None, None).max_abs == 30_000
    assert partial_sums(a, wide, 2, None).max_abs == 20_000  # folds of two: 20,000, then 10,000 at most


def test_chunks_merge_to_the_whole() -> None:
    rng = np.random.default_rng(3)
    a, b = rng.integers(-128, 128, size=(40, 17)), rng.integers(-128, 128, size=(17, 6))
    register = (-(1 << 13), (1 << 13) - 1)
    whole = partial_sums(a, b, 4, register)
    merged = partial_sums(a[:13], b, 4, register).merged(partial_sums(a[13:], b, 4, register))
    assert merged == whole
    assert whole.summary()["max_abs_partial_sum"] == whole.max_abs
    assert whole.summary()["register_range"] == list(register)


def test_register_ranges_and_units() -> None:
    assert register_range(FixedAccumulator(12)) == (-2048, 2047)
    assert register_range(ExactAccumulator()) is None
    np.testing.assert_array_equal(integer_units(np.array([0.5, -1.25]), -2), [2, -5])
    assert integer_units(np.array([0.3]), -2) is None
    assert integer_units(np.array([2.0**60]), 0) is None
    assert fits_int64(np.array([[255] * 64]), np.array([[127]] * 64))
    assert not fits_int64(np.array([[2**40]]), np.array([[2**30]]))


def test_bits_hold_the_extremes() -> None:
    def bits(largest: int, smallest: int) -> int:
        return PartialSums(order="", largest=largest, smallest=smallest, abs_product_sum=0, results=1).bits

    assert [bits(0, 0), bits(1, 0), bits(127, -128), bits(128, 0), bits(0, -129)] == [1, 2, 8, 9, 9]


@pytest.mark.parametrize("inputs", [(0, 3), (-2, 3), (1, 2)])
def test_any_input_range_is_every_subset_sum_of_every_input(inputs: tuple[int, int]) -> None:
    weights = np.array([[3, -2, 0], [-5, 4, 1], [1, 0, -1], [2, -3, 1]])  # K = 4, N = 3
    sums = [sum(int(x[k]) * int(weights[k, n]) for k in subset)
            for x in itertools.product(range(inputs[0], inputs[1] + 1), repeat=4)
            for n in range(3) for size in range(5) for subset in itertools.combinations(range(4), size)]  # fmt: skip
    assert any_input_sums(weights, inputs) == (min(sums), max(sums))
    assert any_input_sums(np.full((4, 1), 1 << 40), (0, 1 << 30)) is None
    assert [signed_bits(*r) for r in [(0, 0), (-1, 0), (0, 255), (-256, 255), (-257, 0)]] == [1, 1, 9, 9, 10]
