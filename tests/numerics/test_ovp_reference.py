"""OliVe as its reference code does it (clevercool/ANT-Quantization, olive_quantization/): the
nearest-value scan of quant/quant_kernel.cu and the pair masks and scale search of
antquant/quant_modules.py, re-implemented literally in numpy and compared bit for bit."""

from __future__ import annotations

import re

import numpy as np
import pytest

import numerics
from numerics import OVPFormat

FP32 = numerics.get("fp32")


def reference_grid(bits: int) -> tuple[np.ndarray, float]:
    """The scan's grid in the reference's units: int_value() (sorted normals times 32 / 2**B)
    followed by outlier_value() (sorted abfloats 2**i (1 + j 2**-M), i = 5..8), and the size of
    one int unit in those units."""
    magnitude_bits = bits - 1  # B of int_value(): the signed grid drops one bit
    unit = 32 / 2**magnitude_bits
    steps = np.arange(1, 2**magnitude_bits, dtype=np.float64)
    normals = np.sort(np.concatenate([[0.0], steps, -steps])) * unit
    mant = magnitude_bits - 2
    i, j = np.meshgrid(np.arange(5, 9), np.arange(2**mant), indexing="ij")
    keep = (i != 5) | (j != 0)
    positive = 2.0 ** i[keep] * (1 + 2.0**-mant * j[keep])
    outliers = np.sort(np.concatenate([positive, -positive]))
    return np.concatenate([normals, outliers]), unit


def reference_values(v: np.ndarray, bits: int, rounding: str = "olive", keep_larger: bool = False) -> np.ndarray:
    """Quantizer._forward after the division by the scale, for a flat v = x / s in int units.

    quant_kernel.cu scans the grid with `if(sub_v <= sub_min)` from sub_min = 102400, so it keeps
    the last minimum and returns 0 beyond that distance; the victims come from the reference's
    `torch.roll` masks on |q| > 32. numerics' options are layered on top: "nearest_even" rounds
    the normal range (|v| <= threshold) with np.rint, and keep_larger hands a pair of outliers to
    the larger |v|."""
    grid, unit = reference_grid(bits)
    data = v * unit  # the reference's data / scale: its scale is alpha / max(int_value()) = s / unit
    distance = np.abs(data[:, None] - grid[None, :])
    last = grid.size - 1 - np.argmin(distance[:, ::-1], axis=1)
    q = np.where(distance.min(axis=1) <= 102400.0, grid[last], 0.0)
    normal_max = 2 ** (bits - 1) - 1
    if rounding == "nearest_even":
        threshold = (normal_max + float(grid[grid > 32].min()) / unit) / 2
        q = np.where(np.abs(v) <= threshold, np.clip(np.rint(v), -normal_max, normal_max) * unit, q)
    mask = np.abs(q) > 32
    if keep_larger:
        pairs, flips = mask.reshape(-1, 2), np.abs(v.reshape(-1, 2))
        swap = pairs.all(axis=1) & (flips[:, 1] > flips[:, 0])
        pairs[swap, 0] = False
    victim_odd = np.roll(mask, 1, -1)
    victim_odd[::2] = False
    victim_even = np.roll(mask & ~victim_odd, -1, -1)
    victim_even[1::2] = False
    return q * ~(victim_even | victim_odd) / unit + 0.0  # + 0.0: the victims' -0.0 is numerics' 0


def adversarial(bits: int, rng: np.random.Generator) -> np.ndarray:
    """Every tie of the grid (normal half-integers, the threshold, midpoints of adjacent abfloats),
    their float64 neighbours, beyond the top, and random values, shuffled into random pairs."""
    normal_max = 2 ** (bits - 1) - 1
    abfloats = numerics.get(f"ovp{bits}").grid[0]  # type: ignore[attr-defined]
    halves = np.arange(-normal_max - 3, normal_max + 3) + 0.5
    ties = np.concatenate([halves, [(normal_max + abfloats[0]) / 2], (abfloats[1:] + abfloats[:-1]) / 2])
    ties = np.concatenate([ties, -ties])
    near = np.concatenate([np.nextafter(ties, np.inf), np.nextafter(ties, -np.inf)])
    top = float(abfloats[-1])
    far = np.array([top, 1.5 * top, 20 * top, -top, -1.5 * top, -20 * top, 0.0, -0.0])
    noise = np.concatenate([rng.standard_normal(2000) * normal_max / 3, rng.uniform(-1.2 * top, 1.2 * top, 1000)])
    values = np.concatenate([ties, ties, near, far, noise, np.rint(noise)])
    return rng.permutation(values[: values.size // 2 * 2])


@pytest.mark.parametrize("scale", [1.0, 0.75, float(np.float32(0.0123))])
@pytest.mark.parametrize("bits", [4, 8])
def test_default_rounding_is_the_references_scan(bits: int, scale: float) -> None:
    v = adversarial(bits, np.random.default_rng(bits))
    got = numerics.get(f"ovp{bits}").encode(v * scale, scale=scale).decode() / scale
    np.testing.assert_array_equal(got, reference_values(v * scale / scale, bits))


@pytest.mark.parametrize("keep_larger", [False, True])
@pytest.mark.parametrize("rounding", ["olive", "nearest_even"])
@pytest.mark.parametrize("bits", [4, 8])
def test_every_option_equals_the_oracle(bits: int, rounding: str, keep_larger: bool) -> None:
    v = adversarial(bits, np.random.default_rng(10 + bits))
    fmt = OVPFormat(bits, "keep_larger" if keep_larger else "keep_first", rounding=rounding)  # type: ignore[arg-type]
    np.testing.assert_array_equal(fmt.encode(v, scale=1.0).decode(), reference_values(v, bits, rounding, keep_larger))


# x / s, then what the reference gives (ties toward +inf, the threshold an outlier) and what
# rounding="nearest_even" gives (normal ties to even, the threshold normal)
TIES = {
    4: [(0.5, 1, 0), (-0.5, 0, 0), (1.5, 2, 2), (-1.5, -1, -2), (2.5, 3, 2), (-2.5, -2, -2), (6.5, 7, 6),
        (-6.5, -6, -6), (7.5, 7, 7), (-7.5, -7, -7), (9.5, 12, 7), (-9.5, -12, -7), (9.499999, 7, 7),
        (-9.499999, -7, -7), (14, 16, 16), (-14, -12, -12), (20, 24, 24), (-20, -16, -16), (40, 48, 48),
        (-40, -32, -32), (80, 96, 96), (-80, -64, -64), (500, 96, 96), (-500, -96, -96)],
    8: [(0.5, 1, 0), (-0.5, 0, 0), (2.5, 3, 2), (-2.5, -2, -2), (126.5, 127, 126), (-126.5, -126, -126),
        (129.5, 132, 127), (-129.5, -132, -127), (129.49999, 127, 127), (134, 136, 136), (-134, -132, -132),
        (254, 256, 256), (-254, -252, -252), (1016, 1024, 1024), (-1016, -1008, -1008), (2000, 2016, 2016),
        (-2000, -1984, -1984), (9000, 2016, 2016), (-9000, -2016, -2016)],
}  # fmt: skip


@pytest.mark.parametrize("bits", [4, 8])
def test_ties_and_thresholds(bits: int) -> None:
    v, olive, even = np.array(TIES[bits], np.float64).T
    pairs = np.stack([v, np.zeros_like(v)], axis=1)  # each beside a 0, so no pair holds two outliers
    assert numerics.get(f"ovp{bits}").encode(pairs, scale=1.0).decode()[:, 0].tolist() == olive.tolist()
    assert OVPFormat(bits, rounding="nearest_even").encode(pairs, scale=1.0).decode()[:, 0].tolist() == even.tolist()
    swapped = numerics.get(f"ovp{bits}").encode(pairs[:, ::-1], scale=1.0).decode()[:, 1]  # the odd slot
    assert swapped.tolist() == olive.tolist()


def test_a_pair_of_threshold_values_keeps_the_first() -> None:
    """Both ±9.5 are outliers under the reference's scan, so the odd one is the victim."""
    encoded = numerics.get("ovp4").encode(np.array([-9.5, 9.5, 9.5, -14.0]), scale=1.0)
    assert encoded.decode().tolist() == [-12, 0, 12, 0]
    assert encoded.codes.reshape(-1).tolist() == [0b1001, 0b1000, 0b0001, 0b1000]


def test_far_values_saturate_where_the_reference_returns_zero() -> None:
    """The reference's scan starts from sub_min = 102400 (its units: 25,600 int4 units), so farther
    values come out 0; numerics saturates to the top abfloat instead (a documented deviation)."""
    v = np.array([30_000.0, 0.0, -30_000.0, 0.0])
    assert reference_values(v, 4).tolist() == [0, 0, 0, 0]
    assert numerics.get("ovp4").encode(v, scale=1.0).decode().tolist() == [96, 0, -96, 0]


def reference_search(x: np.ndarray, bits: int, per_channel: bool, percent: tuple[int, int]) -> np.ndarray:
    """Quantizer.search_mse with the pairs of _forward: x_max = max(|mean + 3 std|, |mean - 3 std|)
    per output channel (weights) or per tensor (activations), std unbiased (torch's default); the
    first alpha = x_max * i / 100 with the least mean squared error (`score < best_score`). The
    scale is alpha / N in int units, stored as fp32 here as numerics stores every scale."""
    rows = x if per_channel else x.reshape(1, -1)
    mean, std = rows.mean(axis=1), rows.std(axis=1, ddof=1)
    x_max = np.maximum(np.abs(mean + 3 * std), np.abs(mean - 3 * std))
    best_score, best = np.full(rows.shape[0], 1e10), x_max
    normal_max = 2 ** (bits - 1) - 1
    for i in range(*percent, 2):
        scale = FP32.decode(FP32.encode(x_max * (i * 0.01) / normal_max))
        q = reference_values((rows / scale[:, None]).reshape(-1), bits).reshape(rows.shape) * scale[:, None]
        score = np.mean((q - rows) ** 2, axis=1)
        best = np.where(score < best_score, scale, best)
        best_score = np.where(score < best_score, score, best_score)
    return best


TENSORS = {
    "gaussian": lambda rng: rng.standard_normal((8, 128)),
    "student_t2": lambda rng: rng.standard_t(2, (8, 128)),
    "shifted": lambda rng: rng.standard_normal((8, 128)) * 0.02 + 0.05,
}


@pytest.mark.parametrize(
    ("tensor", "bits", "per_channel", "percent"),
    [
        (tensor, bits, per_channel, (75, 150))
        for tensor in sorted(TENSORS)
        for bits in (4, 8)
        for per_channel in (False, True)
    ]
    + [("student_t2", 4, True, (75, 250)), ("gaussian", 8, False, (75, 250))],
    ids=lambda v: "_".join(map(str, v)) if isinstance(v, tuple) else str(v),
)
def test_olive_scale_search_equals_the_reference(tensor: str, bits: int, per_channel: bool,
                                                 percent: tuple[int, int]) -> None:  # fmt: skip
    x = TENSORS[tensor](np.random.default_rng(bits))
    fmt = OVPFormat(bits, scale_mode="olive", channel_axis=0 if per_channel else None, search_percent=percent)
    encoded = fmt.encode(x)
    np.testing.assert_array_equal(FP32.decode(encoded.scale), reference_search(x, bits, per_channel, percent))
    np.testing.assert_array_equal(fmt.encode(x).codes, encoded.codes)  # deterministic


def test_olive_scale_search_takes_the_first_least_error() -> None:
    x = np.random.default_rng(5).standard_t(3, 4096)
    fmt = OVPFormat(4, scale_mode="olive")
    x_max = max(abs(x.mean() + 3 * x.std(ddof=1)), abs(x.mean() - 3 * x.std(ddof=1)))
    candidates = FP32.decode(FP32.encode(x_max * (np.arange(75, 150, 2) * 0.01) / 7))
    errors = [np.sum((fmt.encode(x, scale=s).decode() - x) ** 2) for s in candidates]
    assert FP32.decode(fmt.encode(x).scale) == candidates[int(np.argmin(errors))]
    zeros = fmt.encode(np.zeros(6))  # every candidate is exact: the first (0.75 of x_max = 1) wins
    assert FP32.decode(zeros.scale) == np.float32(0.75 / 7) and not zeros.decode().any()


def test_olive_scale_search_on_one_value_per_channel() -> None:
    """One element has no unbiased std (torch's is NaN): numerics takes std 0, so x_max = |x|."""
    x = np.array([[3.0], [-2.0]])
    encoded = OVPFormat(4, scale_mode="olive", channel_axis=0).encode(x)
    candidates = FP32.decode(FP32.encode(np.abs(x) * (np.arange(75, 150, 2) * 0.01) / 7))
    errors = (np.rint(x / candidates).clip(-7, 7) * candidates - x) ** 2
    np.testing.assert_array_equal(FP32.decode(encoded.scale), candidates[[0, 1], np.argmin(errors, axis=1)])


@pytest.mark.parametrize(("channel_axis", "shape"), [(None, (0, 32)), (0, (3, 0))])
def test_olive_scale_search_on_empty_input(channel_axis: int | None, shape: tuple[int, int]) -> None:
    encoded = OVPFormat(4, scale_mode="olive", channel_axis=channel_axis).encode(np.zeros(shape))
    assert encoded.decode().shape == shape


def test_options_and_errors() -> None:
    fmt = numerics.get("ovp4")
    assert fmt.rounding == "olive" and fmt.scale_mode == "mse"  # type: ignore[attr-defined]
    assert fmt.spec()["rounding"] == "olive"
    with pytest.raises(ValueError, match=r"^rounding must be 'olive' or 'nearest_even', got 'even'$"):
        OVPFormat(4, rounding="even")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"^scale_mode must be 'mse', 'olive' or 'absmax', got 'x'$"):
        OVPFormat(4, scale_mode="x")  # type: ignore[arg-type]
    for bad in [(150, 75), (0, 10), (75,), (75.0, 150)]:
        message = f"search_percent must be a pair of ints 0 < low < high, got {bad!r}"
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            OVPFormat(4, search_percent=bad)  # type: ignore[arg-type]
