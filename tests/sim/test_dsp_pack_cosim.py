# amaranth: UnusedElaboratable=no
"""DSP packing in Verilator: two PEs of an output-stationary row share one multiplier,
a * (b1 * 2**S + b0), and must give the same results and cycles as the plain array.

The split of the shared product depends on a, b0 and b1 together (the low product's sign borrows
from the high one), so the outer-product GEMM here runs every (a, b0, b1) triple: M = every a-code,
K = 1, and the columns of B hold every pair of b-codes side by side, (b0, b1) in columns (2q, 2q + 1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hw
import sim
from tests.sim.test_systolic_cosim import RAGGED, check_extremes_and_folds


def every_triple(cfg: hw.ArrayConfig) -> tuple[np.ndarray, np.ndarray]:
    """A (every a-code x 1) and B (1 x 2 * n**2): column pair q holds b-codes (q mod n, q div n)."""
    n = 1 << cfg.b_format.bits
    pairs = np.arange(n * n)
    b = np.empty((1, 2 * n * n), dtype=np.int64)
    b[0, 0::2], b[0, 1::2] = pairs % n, pairs // n
    return np.arange(1 << cfg.a_format.bits)[:, None], b


def _check(array: hw.SystolicArray, a: object, b: object, build_root: Path, work: Path) -> None:
    report = sim.cosim_gemm(array, a, b, build_root, work)
    assert report.passed, report.failure()


TRIPLES = [("int8", "int4", 1), ("int4", "int4", 0), ("uint8", "int4", 2)]


@pytest.mark.slow
@pytest.mark.parametrize(("a_format", "b_format", "pipeline"), TRIPLES,
                         ids=[f"{a}x{b}-pipeline{p}" for a, b, p in TRIPLES])  # fmt: skip
def test_every_activation_meets_every_weight_pair_on_one_multiplier(
    a_format: str, b_format: str, pipeline: int, build_root: Path, tmp_path: Path
) -> None:
    """int8 x int4 packs 8 x 17 bits (the low product in 12), uint8 x int4 9 x 18 (a full
    MULT18X18D port), int4 x int4 4 x 13; pipelines 0-2 move the split before or after registers."""
    array = hw.SystolicArray(a_format, b_format, rows=2, cols=4, dataflow="os", pipeline=pipeline, k_max=64,
                             m_max=256, dsp_pack=True)  # fmt: skip
    _check(array, *every_triple(array.config), build_root, tmp_path)


@pytest.mark.slow
def test_packed_gemms_fold_and_reach_their_extremes(build_root: Path, tmp_path: Path) -> None:
    """Ragged GEMMs across folds (M, K, N not multiples of 4) and the all-extreme R x k_max x C
    GEMM, where every accumulator of both PEs of a pair reaches its end of the range."""
    array = hw.SystolicArray("int8", "int4", rows=4, cols=4, dataflow="os", pipeline=1, k_max=256, m_max=256,
                             dsp_pack=True)  # fmt: skip
    check_extremes_and_folds(array, build_root, tmp_path, seed=44)


def test_packed_cycles_are_the_plain_arrays() -> None:
    """The partner's product waits one register for its own activation: no cycle changes."""
    options = {"rows": 4, "cols": 4, "dataflow": "os", "pipeline": 1, "k_max": 256, "m_max": 256}
    plain = hw.ArrayConfig.build("int8", "int4", **options)  # type: ignore[arg-type]
    packed = hw.ArrayConfig.build("int8", "int4", dsp_pack=True, **options)  # type: ignore[arg-type]
    for m, k, n in RAGGED:
        assert hw.cycles(packed, m, k, n) == hw.cycles(plain, m, k, n)
    assert (packed.pack_shift, packed.packed_width) == (12, 17)


@pytest.mark.parametrize(("a", "b", "options", "message"), [
    ("int8", "int4", {"dataflow": "ws"}, r"^dsp_pack is built for output-stationary arrays \(dataflow='os'\), "
                                         r"got 'ws'$"),
    ("int8", "int4", {"cols": 3}, r"^dsp_pack pairs columns: cols must be even, got 3$"),
    ("int8", "int4", {"dsp_budget": 4}, r"^dsp_pack puts every column pair on one DSP multiplier: dsp_budget must "
                                        r"be None, got 4$"),
    ("int8", "int8", {}, r"^dsp_pack needs a x \(two weights\) within one 18 x 18 DSP: int8 x int8 packs 8 x 25 "
                         r"bits \(int8 x int4, int4 x int4 fit\)$"),
    ("fp8_e4m3", "fp8_e4m3", {}, r"^dsp_pack takes integer operands and an exact or int\{W\} accumulator, got "
                                 r"fp8_e4m3 x fp8_e4m3 with exact$"),
    ("mxint8", "mxint8", {}, r"^dsp_pack takes integer operands and an exact or int\{W\} accumulator, got "
                             r"mxint8 x mxint8 with fp32"),
])  # fmt: skip
def test_packing_where_it_does_not_apply_is_refused(a: str, b: str, options: dict, message: str) -> None:
    config = {"rows": 2, "cols": 4, "dataflow": "os", **options}
    with pytest.raises(ValueError, match=message):
        hw.SystolicArray(a, b, dsp_pack=True, **config)
