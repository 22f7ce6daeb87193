"""The beat stream that runs a GEMM on `BitSerialArray`, and its exact cycle count.

Order: n-tiles of P columns, then rows m, then k-chunks of L lanes, then the weight's terms
(INT: ceil(bits / 2) Booth digits; FP4/FP3 grids: 1 term, 2 for grids with +-5). A group of
`group` weights along K shares one fp16 scale and grid selector per column. A group shorter than
the 11-cycle bit-serial scaling is padded with no-op beats, so scaling never stalls the stream.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import numerics
from numerics import BitMoDEncoded, IntFormat, Minifloat

from ._bitserial import MODES, SCALE_BITS, BitSerialConfig

FP16_ONE = 0x3C00


@dataclass(frozen=True)
class WeightPlan:
    """Weights as the PE consumes them: per (K, N) a 4-bit slice per term, plus per-group data."""

    mode: int
    terms: int
    slices: np.ndarray  # (terms, K, N)
    selectors: np.ndarray  # (groups, N)
    scales: np.ndarray  # (groups, N) fp16 codes
    group: int
    unit_exponent: int  # weight grid step is 2**unit_exponent


def plan_weights(config: BitSerialConfig, weights: np.ndarray | BitMoDEncoded, w_format: str) -> WeightPlan:
    """INT2..INT8 codes (K, N), fp4_e2m1 codes (K, N), or a BitMoD encoding along axis 0."""
    fmt = numerics.get(w_format)
    if isinstance(weights, BitMoDEncoded):
        if weights.axis != 0 or weights.format.group_size != config.group:
            raise ValueError(f"BitMoD weights must be grouped along K (axis 0) in groups of {config.group}")
        bits = weights.format.element_bits
        n, groups, size = weights.codes.shape
        codes = weights.codes.transpose(1, 2, 0).reshape(groups * size, n)
        terms = 2 if bits == 4 and (weights.selectors < 2).any() else 1
        slices = np.broadcast_to(codes[None], (terms, *codes.shape)).copy()  # the term index picks the term
        if np.any(weights.scales >> 15):
            raise ValueError("BitMoD scales must be positive fp16 values")
        return WeightPlan(MODES["fp4" if bits == 4 else "fp3"], terms, slices, weights.selectors.T.copy(),
                          weights.scales.T.copy(), config.group, -1 if bits == 4 else 0)  # fmt: skip
    codes = np.asarray(weights, dtype=np.int64)
    if codes.ndim != 2:
        raise ValueError(f"weights must be (K, N) codes, got shape {codes.shape}")
    k, n = codes.shape
    groups = -(-k // config.group)
    ones = np.full((groups, n), FP16_ONE, np.int64)
    if isinstance(fmt, IntFormat) and fmt.signed and 2 <= fmt.bits <= 8:
        terms = -(-fmt.bits // 2)
        value = np.where(codes >> (fmt.bits - 1), codes - (1 << fmt.bits), codes)  # sign-extend to 2*terms bits
        slices = np.stack([(value >> (2 * t)) & 3 for t in range(terms)])
        return WeightPlan(MODES["int"], terms, slices, np.zeros((groups, n), np.int64), ones, config.group, 0)
    if isinstance(fmt, Minifloat) and fmt.name == "fp4_e2m1":
        plain = np.where(codes == 8, 0, codes)  # -0 is 0; on grid 2 the code would mean +8
        return WeightPlan(MODES["fp4"], 1, plain[None], np.full((groups, n), 2, np.int64), ones, config.group, -1)
    raise ValueError(f"bit-serial weights are int2..int8, fp4_e2m1, bitmod4, bitmod3 (or _exact), got {w_format}")


def group_beats(config: BitSerialConfig, plan: WeightPlan) -> int:
    return max((plan.group // config.lanes) * plan.terms, SCALE_BITS)


def bitserial_cycles(config: BitSerialConfig, m: int, k: int, n: int, plan: WeightPlan) -> int:
    """Beats (one per cycle) up to the last term beat, then the last group's 11-cycle scaling and
    the output register (the no-op beats that pad a short last group are not waited for)."""
    groups, n_tiles = -(-k // plan.group), -(-n // config.cols)
    per_group = group_beats(config, plan)
    padding = per_group - (plan.group // config.lanes) * plan.terms
    return n_tiles * m * groups * per_group - padding + SCALE_BITS + 1


def bitserial_beats(config: BitSerialConfig, a_codes: np.ndarray, plan: WeightPlan) -> dict[str, np.ndarray]:
    """Every beat's fields, (beats, ...) arrays in the order of the beat layout."""
    a_codes = np.asarray(a_codes, dtype=np.int64)
    m, k = a_codes.shape
    terms, _, n = plan.slices.shape
    lanes, cols, group = config.lanes, config.cols, plan.group
    groups, n_tiles, chunks = -(-k // group), -(-n // cols), group // lanes
    per_group = group_beats(config, plan)
    a = np.zeros((m, groups * group), np.int64)
    a[:, :k] = a_codes
    a = a.reshape(m, groups, chunks, lanes)
    slices = np.zeros((terms, groups * group, n_tiles * cols), np.int64)
    slices[:, :k, :n] = plan.slices
    slices = slices.reshape(terms, groups, chunks, lanes, n_tiles, cols).transpose(4, 1, 2, 0, 5, 3)
    selectors = np.zeros((groups, n_tiles * cols), np.int64)
    selectors[:, :n] = plan.selectors
    scales = np.full((groups, n_tiles * cols), FP16_ONE, np.int64)
    scales[:, :n] = plan.scales
    shape = (n_tiles, m, groups, per_group)
    fields = {
        "a": np.zeros((*shape, lanes), np.int64),
        "w": np.zeros((*shape, cols * lanes), np.int64),
        "selector": np.zeros((*shape, cols), np.int64),
        "scale": np.zeros((*shape, cols), np.int64),
        "mode": np.full(shape, plan.mode, np.int64),
        "term": np.zeros(shape, np.int64),
        "first": np.zeros(shape, np.int64),
        "last": np.zeros(shape, np.int64),
        "emit": np.zeros(shape, np.int64),
    }
    used = chunks * terms  # beats carrying terms; the rest of a group's beats are no-ops
    term_of = np.tile(np.arange(terms), chunks)
    chunk_of = np.repeat(np.arange(chunks), terms)
    fields["a"][..., :used, :] = a[None, :, :, chunk_of, :]
    w = slices[:, :, chunk_of, term_of]  # (n_tiles, groups, used, cols, lanes)
    fields["w"][..., :used, :] = w.reshape(n_tiles, 1, groups, used, cols * lanes)
    tiles = selectors.reshape(groups, n_tiles, cols).transpose(1, 0, 2)
    fields["selector"][...] = tiles[:, None, :, None, :]
    fields["scale"][...] = scales.reshape(groups, n_tiles, cols).transpose(1, 0, 2)[:, None, :, None, :]
    fields["term"][..., :used] = term_of
    fields["first"][..., 0] = 1
    fields["last"][..., used - 1] = 1
    fields["emit"][:, :, -1, used - 1] = 1
    return {name: value.reshape(-1, *value.shape[4:]) for name, value in fields.items()}
