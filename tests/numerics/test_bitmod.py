"""BitMoD grids and BitNet ternary quantization against plain-Python references, and `bitmod4` /
`bitmod3` bit for bit against a torch transcription of the BitMoD reference's fp16 arithmetic."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import numerics
from numerics import BitMoDFormat
from numerics._bitmod import _UNIT_EXPONENT, grid_by_code


def reference_group(group: np.ndarray, grid: np.ndarray) -> tuple[np.ndarray, float]:
    """Quantize one group to grid * scale with ties toward -inf; (values, squared error)."""
    fp16 = numerics.get("fp16")
    absmax = float(np.abs(group).max()) or 1.0
    scale = float(fp16.quantize(np.array(absmax / np.abs(grid).max()), saturate=True)[()])
    ordered = sorted(set(grid.tolist()))
    out = []
    for v in group / scale:
        best = ordered[0]
        for g in ordered:
            if abs(v - g) < abs(v - best):  # strictly closer: a tie keeps the lower value
                best = g
        out.append(best * scale)
    values = np.array(out)
    return values, float(((values - group) ** 2).sum())


def test_grids_remap_the_negative_zero_code() -> None:
    assert grid_by_code(4, 0).tolist() == [0, 0.5, 1, 1.5, 2, 3, 4, 6, 5, -0.5, -1, -1.5, -2, -3, -4, -6]
    assert [grid_by_code(4, s)[8] for s in range(4)] == [5, -5, 8, -8]
    assert grid_by_code(3, 3).tolist() == [0, 1, 2, 4, -6, -1, -2, -4]


@pytest.mark.parametrize("bits", [3, 4])
def test_each_group_takes_its_least_error_grid(bits: int) -> None:
    rng = np.random.default_rng(bits)
    x = rng.standard_t(4, (6, 96)) * np.exp2(rng.integers(-4, 4, (6, 1)))
    fmt = BitMoDFormat(bits, group_size=32, arithmetic="exact")
    encoded = fmt.encode(x)
    got = encoded.decode()
    for row in range(6):
        for g in range(3):
            group = x[row, 32 * g : 32 * (g + 1)]
            candidates = [reference_group(group, grid_by_code(bits, s)) for s in range(4)]
            errors = [c[1] for c in candidates]
            chosen = int(encoded.selectors[row, g])
            assert errors[chosen] == min(errors)
            np.testing.assert_array_equal(got[row, 32 * g : 32 * (g + 1)], candidates[chosen][0])


def test_ties_round_toward_minus_infinity() -> None:
    fmt = BitMoDFormat(4, group_size=4)
    codes, scale, _ = fmt._quantize_grid(np.array([[6.0, 2.5, -2.5, 0.25]]), 0, numerics.get("fp16"))
    assert numerics.get("fp16").decode(scale).tolist() == [1.0]
    np.testing.assert_array_equal(grid_by_code(4, 0)[codes], [[6.0, 2.0, -3.0, 0.0]])


@pytest.mark.parametrize("name", ["bitmod4", "bitmod4_exact", "bitmod3"])
def test_lower_is_exact_and_dot_uses_it(name: str) -> None:
    from fractions import Fraction

    rng = np.random.default_rng(5)
    fmt = numerics.get(name)
    a = fmt.encode(rng.standard_normal((2, 300)))
    sig, exp = a.lower_full()
    np.testing.assert_array_equal(np.ldexp(sig.astype(float), exp.astype(np.int32)), a.decode())
    b = fmt.encode(rng.standard_normal((2, 300)))
    got = numerics.dot(a, b, fmt, fmt).to_fractions()
    av, bv = a.decode(), b.decode()
    expected = [
        sum(Fraction(float(p)) * Fraction(float(q)) for p, q in zip(av[r], bv[r], strict=True)) for r in range(2)
    ]
    assert got.tolist() == expected


@pytest.mark.parametrize("name", ["bitmod4", "bitmod4_exact"])
def test_bitmod_beats_int4_on_gaussian_weights(name: str) -> None:
    x = np.random.default_rng(6).standard_normal((32, 512))
    bitmod = np.mean((numerics.get(name).quantize(x) - x) ** 2)
    int4 = np.mean((numerics.quantize_int(x, "int4", group_size=128).dequantize() - x) ** 2)
    assert bitmod < int4


def test_ternary_absmean_per_tensor_and_per_group() -> None:
    x = np.array([[0.2, -1.0, 3.0, 0.0], [0.1, 0.1, -0.1, 0.4]])
    q = numerics.quantize_ternary(x)
    assert q.scale.item() == np.abs(x).mean()
    np.testing.assert_array_equal(q.integers(), np.clip(np.round(x / np.abs(x).mean()), -1, 1))
    g = numerics.quantize_ternary(x, group_size=2)
    assert g.scale.shape == (2, 2, 1)
    np.testing.assert_array_equal(g.scale[..., 0], np.abs(x.reshape(2, 2, 2)).mean(axis=-1))
    assert set(np.unique(g.integers())) <= {-1, 0, 1}
    with pytest.raises(ValueError, match=r"^group_size must be a positive divisor of axis -1 \(length 4\), got 3$"):
        numerics.quantize_ternary(x, group_size=3)


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"^element_bits must be 3 or 4, got 5$"):
        BitMoDFormat(5)
    with pytest.raises(ValueError, match=r"^arithmetic must be 'fp16' or 'exact', got 'fp32'$"):
        BitMoDFormat(4, arithmetic="fp32")
    for name in ("bitmod4", "bitmod4_exact"):
        with pytest.raises(ValueError, match=rf"^{name}: the input holds NaN or Inf; BitMoD grids have neither$"):
            numerics.get(name).encode(np.array([np.inf]))
    with pytest.raises(ValueError, match=r"^bitmod3: the reference computes in fp16, so \|x\| must be below 65520, "
                                         r"got 70000$"):  # fmt: skip
        numerics.get("bitmod3").encode(np.array([1.0, -70000.0]))
    assert numerics.get("bitmod3_exact").encode(np.array([1.0, -70000.0])).decode()[1] == -70016.0


# The BitMoD reference (BitMoD-HPCA-25, bitmod_quant/quant_utils/quant_weight.py) transcribed line for
# line in torch fp16, its grids copied as published (FP4 grids in units of half an E2M1 step). Besides
# the weights it returns what it chose: per group the selector (-1: no grid beat the initial 1000, the
# output stays 0), and per grid its q_tensor, scale_fp and fp16 mean squared error.
REFERENCE_GRIDS = {
    3: [
        [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0],  # fp3_er_pos
        [-4.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0],  # fp3_er_neg
        [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0, 6.0],  # fp3_ea_pos
        [-6.0, -4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0],  # fp3_ea_neg
    ],
    4: [
        [-12.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 10.0, 12.0],  # fp4_er_pos
        [-12.0, -10.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0],  # fp4_er_neg
        [-12.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0],  # fp4_ea_pos
        [-16.0, -12.0, -8.0, -6.0, -4.0, -3.0, -2.0, -1.0, 0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0],  # fp4_ea_neg
    ],
}


def reference_quant_datatype(w_fp16: torch.Tensor, allow_value: list[float]) -> tuple[torch.Tensor, ...]:
    """`quant_datatype(..., group_size=None)`; also returns its q_tensor and scale_fp."""
    mid_value = [(allow_value[i] + allow_value[i + 1]) / 2 for i in range(len(allow_value) - 1)]
    w_fp16_new = w_fp16.to(torch.float16)
    rmax = torch.amax(w_fp16_new.abs(), dim=-1, keepdim=True)
    qmax = max([abs(x) for x in allow_value])
    scale_fp = rmax / qmax
    scale_fp = scale_fp.clamp(min=1e-5, max=1e4)
    x = w_fp16_new / scale_fp
    q_tensor = torch.zeros_like(x)
    for i in range(len(allow_value)):
        data = allow_value[i]
        if i == 0:
            q_tensor += torch.where(x <= mid_value[i], data, 0)
        elif i == len(allow_value) - 1:
            q_tensor += torch.where(x > mid_value[i - 1], data, 0)
        else:
            q_tensor += torch.where((mid_value[i - 1] < x) & (x <= mid_value[i]), data, 0)
    w_fp16_new = q_tensor * scale_fp
    return w_fp16_new, q_tensor, scale_fp


def reference_search_datatype(w_fp16: torch.Tensor, bits: int, group_size: int = 128) -> dict[str, np.ndarray]:
    """`search_datatype(datatype="mixed_bitmod")`: output, selector, and per grid q, scale, error."""
    K, C = w_fp16.size()  # the reference's names
    NUM_GROUP = C // group_size
    w_fp16 = w_fp16.unsqueeze(-1).reshape(K, NUM_GROUP, group_size)
    q_tensor = torch.zeros_like(w_fp16)
    error = torch.full([K, NUM_GROUP], 1e3, dtype=w_fp16.dtype, device=w_fp16.device)
    selector = torch.full([K, NUM_GROUP], -1)
    grids_q, grids_scale, grids_error = [], [], []
    for s, allow_value in enumerate(REFERENCE_GRIDS[bits]):
        w_fp16_tmp, q, scale_fp = reference_quant_datatype(w_fp16, allow_value)
        quant_error = (w_fp16_tmp - w_fp16).pow(2).mean(-1)
        update_mask = torch.lt(quant_error, error)
        error[update_mask] = quant_error[update_mask]
        q_tensor[update_mask] = w_fp16_tmp[update_mask]
        selector[update_mask] = s
        grids_q.append(q.numpy()), grids_scale.append(scale_fp[..., 0].numpy()), grids_error.append(quant_error.numpy())
    return {"output": q_tensor.reshape(K, C).numpy(), "selector": selector.numpy(), "q": np.stack(grids_q),
            "scale": np.stack(grids_scale), "error": np.stack(grids_error)}  # fmt: skip


def assert_matches_reference(x: np.ndarray, bits: int) -> dict[str, np.ndarray]:
    """bitmod{bits} on x against the transcription on fp16(x): selectors, codes (the reference's grid
    value in E2M1 steps), scales (the reference's in E2M1 steps) and fp16(decode) = its output, in
    every group where the reference chose a grid."""
    ref = reference_search_datatype(torch.from_numpy(x.astype(np.float16)), bits)
    encoded = numerics.get(f"bitmod{bits}").encode(x)
    chosen = ref["selector"] >= 0
    np.testing.assert_array_equal(encoded.selectors[chosen], ref["selector"][chosen])
    rows, groups = np.nonzero(chosen)
    unit = 2.0 ** _UNIT_EXPONENT[bits]
    by_code = [{v: c for c, v in enumerate(grid_by_code(bits, s) / unit)} for s in range(4)]
    picked = ref["q"][ref["selector"][chosen], rows, groups].astype(float)  # (chosen groups, 128)
    codes = [[by_code[s][v] for v in group] for s, group in zip(ref["selector"][chosen], picked, strict=True)]
    np.testing.assert_array_equal(encoded.codes[chosen], np.array(codes, np.uint8).reshape(-1, 128))
    scales = numerics.get("fp16").decode(encoded.scales[chosen]) * unit
    np.testing.assert_array_equal(scales, ref["scale"][ref["selector"][chosen], rows, groups].astype(np.float64))
    output = encoded.decode().astype(np.float16).reshape(*chosen.shape, 128)[chosen]
    np.testing.assert_array_equal(output, ref["output"].reshape(*chosen.shape, 128)[chosen])
    return ref


WEIGHTS = {
    "gaussian": lambda rng: rng.standard_normal((8, 4096)),
    "student_t2": lambda rng: rng.standard_t(2, (8, 4096)),
    "std_0.02": lambda rng: 0.02 * rng.standard_normal((8, 4096)),
    "std_1e-4": lambda rng: 1e-4 * rng.standard_normal((8, 4096)),
    "std_1e-6": lambda rng: 1e-6 * rng.standard_normal((8, 4096)),  # scales clamp to fp16(1e-5)
    "group_ranges": lambda rng: rng.standard_normal((8, 32, 128)) * np.exp2(rng.integers(-20, 6, (8, 32, 1))),
}


def test_reference_grids_are_the_bitfab_grids_in_order() -> None:
    for bits in (3, 4):
        for s in range(4):
            assert sorted(grid_by_code(bits, s) * 2.0 ** -_UNIT_EXPONENT[bits]) == REFERENCE_GRIDS[bits][s]


@pytest.mark.parametrize("bits", [3, 4])
@pytest.mark.parametrize("weights", list(WEIGHTS))
def test_bitmod_is_the_reference_bit_for_bit(bits: int, weights: str) -> None:
    x = WEIGHTS[weights](np.random.default_rng(bits)).reshape(8, 4096)
    ref = assert_matches_reference(x, bits)
    assert (ref["selector"] >= 0).all()  # no group here has |w| in the hundreds
    assert_matches_reference(x.astype(np.float16), bits)  # fp16 input: the same codes
    assert_matches_reference(x.astype(np.float32), bits)


def test_tiny_groups_take_the_reference_scale_clamp() -> None:
    x = np.concatenate([np.zeros(128), 1e-7 * np.arange(1, 129)])[None]
    encoded = numerics.get("bitmod4").encode(x)
    assert_matches_reference(x, 4)
    # fp16(1e-5) = 168 * 2**-24 in the reference's units, twice that in E2M1 steps
    np.testing.assert_array_equal(numerics.get("fp16").decode(encoded.scales), [[336 * 2.0**-24, 336 * 2.0**-24]])
    assert encoded.selectors.tolist() == [[0, 0]]  # fp16 errors underflow to 0: the first grid


def test_fp16_quotient_at_a_midpoint_rounds_down_as_the_reference() -> None:
    """The issue's examples: w / scale lies above a midpoint by less than half an fp16 step."""
    scale4 = 0.392822265625  # grid +8 (selector 2): absmax / 8
    group4 = np.array([8, 6, 6, 3, 3, 1.5, 1.5, -6, -6, -3, -3, -1.5, 4, -4, 0.5, 0] * 8) * scale4
    group4[1] = 0.4912109375  # 1.250466 E2M1 steps: the reference sees fp16(2.50093) = 2.5 half-steps
    scale3 = 0.51318359375  # grid -6 (selector 3): fp16(3.080078125 / 6)
    group3 = np.array([-6, 4, 4, 2, 2, 1, 1, -4, -4, -2, -2, -1, 1, 2, 0, 4] * 8) * scale3
    group3[0], group3[1] = -3.080078125, 1.5400390625  # 3.00095 steps: fp16 3.0, the midpoint of 2 and 4
    cases = ((4, group4, scale4, 2, 1.0, 1.5), (3, group3, scale3, 3, 2.0, 4.0))  # grid, reference, exact
    for bits, group, scale, selector, got, exact in cases:
        x = group.astype(np.float16)[None]  # the other elements near grid points, rounded to fp16
        assert x[0, 1] == group[1] and np.abs(x).max() == np.abs(group).max()
        assert_matches_reference(x, bits)
        for name, value in ((f"bitmod{bits}", got), (f"bitmod{bits}_exact", exact)):
            encoded = numerics.get(name).encode(x)
            assert encoded.selectors.tolist() == [[selector]], name
            assert numerics.get("fp16").decode(encoded.scales).tolist() == [[scale]], name
            assert encoded.decode()[0, 1] == value * scale, name


def test_near_equal_errors_choose_as_the_reference() -> None:
    """The issue's group (row 2, group 29 of default_rng(3) gaussian 8 x 4096): fp16 errors pick grid
    1, exact squared errors grid 3; and groups of std 0.02 whose fp16 errors tie take the lower grid."""
    x = np.random.default_rng(3).standard_normal((8, 4096))
    ref = assert_matches_reference(x, 4)
    np.testing.assert_allclose(ref["error"][:, 2, 29], [0.0096664, 0.0096512, 0.014572, 0.0096588], rtol=1e-4)
    assert numerics.get("bitmod4").encode(x).selectors[2, 29] == 1
    assert numerics.get("bitmod4_exact").encode(x).selectors[2, 29] == 3
    small = 0.02 * np.random.default_rng(7).standard_normal((8, 4096))
    ref = assert_matches_reference(small, 4)
    least = ref["error"].min(axis=0)
    tied = ((ref["error"] == least).sum(axis=0) > 1).sum()
    assert tied > 0
    differ = numerics.get("bitmod4").encode(small).selectors != numerics.get("bitmod4_exact").encode(small).selectors
    assert differ.any()


def test_groups_the_reference_zeroes_take_the_least_exact_error() -> None:
    """|w| in the hundreds: no fp16 error beats the initial 1000, so the reference outputs zeros;
    bitfab keeps the reference's rounding and takes the grid with least exact squared error."""
    x = np.random.default_rng(8).standard_normal((4, 256)) * np.array([[500.0], [0.3], [800.0], [1.0]])
    x16 = x.astype(np.float16)
    ref = reference_search_datatype(torch.from_numpy(x16), 4)
    assert (ref["selector"][[0, 2]] == -1).all() and (ref["selector"][[1, 3]] >= 0).all()
    assert (ref["output"][[0, 2]] == 0).all()
    encoded = numerics.get("bitmod4").encode(x)
    values = ref["q"].astype(np.float64) * ref["scale"].astype(np.float64)[..., None]  # (grid, row, group, 128)
    exact = ((values - x16.reshape(4, 2, 128)) ** 2).sum(axis=-1)
    for row in (0, 2):
        for group in (0, 1):
            best = int(exact[:, row, group].argmin())
            assert encoded.selectors[row, group] == best
            np.testing.assert_array_equal(encoded.decode()[row, 128 * group : 128 * (group + 1)],
                                          values[best, row, group])  # fmt: skip
    assert_matches_reference(x[[1, 3]], 4)


@pytest.mark.parametrize(("name", "limit"), [("bitmod4_exact", 65520 * 8), ("bitmod3_exact", 65520 * 6)])
def test_exact_variants_refuse_groups_beyond_every_fp16_scale(name: str, limit: int) -> None:
    fmt = numerics.get(name)
    below = np.zeros((1, 128))
    below[0, 3] = limit * (1 - 2**-12)
    np.testing.assert_allclose(fmt.decode(fmt.encode(below))[0, 3], below[0, 3], rtol=0.1)  # still reachable
    x = np.zeros((2, 128))
    x[1, 5] = 1e6
    message = f"{name}: a group's absmax 1e+06 is beyond every grid's fp16 scale; |x| must be below {limit:g}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        fmt.encode(x)


def test_exact_zero_group_scale_is_one_over_the_grid_max() -> None:
    for name, grid_max in (("bitmod4_exact", 6.0), ("bitmod3_exact", 4.0)):
        fmt = numerics.get(name)
        encoded = fmt.encode(np.zeros((1, 128)))
        fp16 = numerics.get("fp16")
        assert fp16.decode(encoded.scales)[0] == np.float16(1 / grid_max)  # the selected grid 0's max
        assert not fmt.decode(encoded).any()
