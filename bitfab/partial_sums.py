"""How large a layer's sums get on a systolic array: every partial sum in the order the array adds
the products and the sum of |products| (which bounds them in every order), against a fixed
register's range; and, from the weights alone, the range of sums any input can reach (what
accumulator-aware training, A2Q, bounds: sum_k |w_k| x max |x| below the register's reach).

Weight-stationary arrays add the products of a k-fold (R consecutive k) down a column, k
ascending, starting from zero; the output buffer then adds the fold sums in k order. So the
register values are the prefix sums inside each fold and the running sums of the folds.
Output-stationary PEs add every product in k order: the prefix sums over all of K. Values are
integers in units of the exact product lsb (2**(a lsb + b lsb)), computed with numpy int64 in
chunks of rows (`exact_width` <= 63 bits guarantees no int64 overflow; wider layers get None).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import numerics

CHUNK_ELEMENTS = 1 << 22  # products held at once (32 MiB of int64)


@dataclass(frozen=True, kw_only=True)
class PartialSums:
    """Extremes of a layer's sums over all of its rows (inputs), in units of the product lsb."""

    order: str  # how the array adds the products, for people
    largest: int  # the most positive partial sum (0 if none is positive)
    smallest: int  # the most negative partial sum (0 if none is negative)
    abs_product_sum: int  # max over results of sum_k |a_k b_k|: bounds every partial sum in any order
    results: int  # dot products (outputs) examined
    results_overflowing: int = 0  # results with a partial sum outside the register (0 without one)
    results_wrapped: int = 0  # results whose final sum is outside the register: they wrap and differ
    register: tuple[int, int] | None = None  # (lowest, highest) value the register holds; None: exact
    any_input: tuple[int, int] | None = None  # (lowest, highest) sum the weights allow for any input; None: unknown

    @property
    def max_abs(self) -> int:
        """The largest |partial sum|."""
        return max(self.largest, -self.smallest)

    @property
    def bits(self) -> int:
        """Two's complement bits that hold every partial sum seen."""
        return signed_bits(self.smallest, self.largest)

    @property
    def any_input_bits(self) -> int | None:
        """Two's complement bits that hold every sum of any input (None: not known)."""
        return None if self.any_input is None else signed_bits(*self.any_input)

    @property
    def overflowed(self) -> bool:
        """A partial sum left the register's range (it wrapped, whether or not the result recovered)."""
        return self.results_overflowing > 0

    def merged(self, other: PartialSums) -> PartialSums:
        """The extremes over the rows of both (chunks of one layer)."""
        return PartialSums(order=self.order, largest=max(self.largest, other.largest),
                           smallest=min(self.smallest, other.smallest),
                           abs_product_sum=max(self.abs_product_sum, other.abs_product_sum),
                           results=self.results + other.results,
                           results_overflowing=self.results_overflowing + other.results_overflowing,
                           results_wrapped=self.results_wrapped + other.results_wrapped,
                           register=self.register, any_input=self.any_input)  # fmt: skip

    def summary(self) -> dict[str, object]:
        """The figures as JSON (units: the exact product lsb)."""
        return {"units": "the exact product lsb, 2**(input lsb + weight lsb): 1 for integer codes", "order": self.order,
                "max_abs_partial_sum": self.max_abs, "largest_partial_sum": self.largest,
                "smallest_partial_sum": self.smallest, "partial_sum_bits": self.bits,
                "max_abs_product_sum": self.abs_product_sum, "results": self.results,
                "register_range": list(self.register) if self.register else None,
                "results_with_overflowing_partial_sum": self.results_overflowing,
                "results_wrapped": self.results_wrapped,
                "any_input_sum_range": list(self.any_input) if self.any_input else None,
                "any_input_sum_bits": self.any_input_bits}  # fmt: skip


def signed_bits(low: int, high: int) -> int:
    """Two's complement bits that hold every integer in [low, high] (and 0)."""
    return max(max(high, 0).bit_length(), (-low - 1).bit_length() if low < 0 else 0) + 1


def register_range(accumulator: object) -> tuple[int, int] | None:
    """(lowest, highest) of a fixed two's complement register at the product lsb; None when exact."""
    if isinstance(accumulator, numerics.FixedAccumulator):
        return -(1 << (accumulator.width - 1)), (1 << (accumulator.width - 1)) - 1
    return None


def order_of(rows: int | None) -> str:
    if rows is None:
        return "k order, one running sum per result (output-stationary PEs)"
    return f"k order inside {rows}-row folds, then the fold sums in k order (weight-stationary columns)"


def partial_sums(a: np.ndarray, b: np.ndarray, rows: int | None, register: tuple[int, int] | None) -> PartialSums:
    """The extremes of A (M, K) @ B (K, N), integer arrays, in the array's order: `rows` = R for
    a weight-stationary array (k-folds of R), None for an output-stationary one (one running sum)."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    m, k = a.shape
    n = b.shape[1]
    if rows is not None and k % rows:  # zero products pad the last fold, as the array's idle rows do
        pad = rows - k % rows
        a, b = np.pad(a, ((0, 0), (0, pad))), np.pad(b, ((0, pad), (0, 0)))
        k += pad
    low, high = register if register is not None else (-(1 << 63), (1 << 63) - 1)
    largest, smallest, magnitude, overflowing, wrapped = 0, 0, 0, 0, 0
    step = max(1, CHUNK_ELEMENTS // max(1, k * n))
    for start in range(0, m, step):
        products = a[start : start + step, :, None] * b[None, :, :]  # (rows, K, N)
        if rows is None:
            prefixes = [np.cumsum(products, axis=1)]
        else:
            folds = np.cumsum(products.reshape(len(products), k // rows, rows, n), axis=2)
            prefixes = [folds.reshape(len(products), k, n), np.cumsum(folds[:, :, -1, :], axis=1)]
        largest = max(largest, *(int(p.max()) for p in prefixes))
        smallest = min(smallest, *(int(p.min()) for p in prefixes))
        magnitude = max(magnitude, int(np.abs(products).sum(axis=1).max()))
        outside = np.zeros((len(products), n), dtype=bool)
        for p in prefixes:
            outside |= ((p < low) | (p > high)).any(axis=1)
        final = prefixes[-1][:, -1, :]
        overflowing += int(outside.sum())
        wrapped += int(((final < low) | (final > high)).sum())
    return PartialSums(order=order_of(rows), largest=largest, smallest=smallest, abs_product_sum=magnitude,
                       results=m * n, results_overflowing=overflowing, results_wrapped=wrapped,
                       register=register)  # fmt: skip


def integer_units(values: np.ndarray, lsb_exponent: int) -> np.ndarray | None:
    """`values` (float64) as int64 multiples of 2**lsb_exponent, or None if one is not whole there
    or too large for exact int64 arithmetic."""
    scaled = np.ldexp(np.asarray(values, dtype=np.float64), -lsb_exponent)
    if scaled.size and (not np.isfinite(scaled).all() or np.abs(scaled).max() >= 2.0**53):
        return None
    if not np.array_equal(scaled, np.round(scaled)):
        return None
    return scaled.astype(np.int64)


def fits_int64(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether every partial sum and sum of |products| of A @ B stays below 2**62 (int64 exact)."""
    if a.size == 0 or b.size == 0:
        return True
    bound = int(np.abs(a).max()) * int(np.abs(b).max()) * a.shape[1]
    return bound < 1 << 62


def any_input_sums(weights: np.ndarray, inputs: tuple[int, int]) -> tuple[int, int] | None:
    """(lowest, highest) partial sum of x @ W (`weights` (K, N), integers) over every input with
    lowest <= x_k <= highest, in any order of addition (a partial sum adds a subset of the
    products): per output, the sum of each product's most negative (most positive) value or 0.
    This is what accumulator-aware training (A2Q) bounds. None when it could leave int64."""
    weights = np.asarray(weights, dtype=np.int64)
    low, high = inputs
    if weights.size == 0 or max(abs(low), abs(high)) * int(np.abs(weights).max()) * len(weights) >= 1 << 62:
        return None
    ends = np.stack([weights * low, weights * high, np.zeros_like(weights)])
    return int(ends.min(axis=0).sum(axis=0).min()), int(ends.max(axis=0).sum(axis=0).max())
