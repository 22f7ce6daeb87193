# amaranth: UnusedElaboratable=no
"""Output-stationary arrays whose products run on instantiated ECP5 MULT18X18Ds (the DSP's own
input and output registers in use), simulated with sim/primitives/MULT18X18D.v in Verilator:
the same results and cycles as the array whose `*` the synthesis tool maps.

The outer-product GEMM (M = every a-code, K = 1, N = every b-code) meets every operand pair in
the DSP once; the extreme GEMM drives every accumulator to both ends of its range; ragged GEMMs
fold; the float-accumulator case takes the un-aligned product (`exact_product`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import hw
import numerics
import sim
from tests.sim.test_systolic_cosim import RAGGED, check_extremes_and_folds


def every_pair(cfg: hw.ArrayConfig) -> tuple[np.ndarray, np.ndarray]:
    """A (every a-code x 1) and B (1 x every b-code)."""
    return np.arange(1 << cfg.a_format.bits)[:, None], np.arange(1 << cfg.b_format.bits)[None, :]


def _check(array: hw.SystolicArray, a: object, b: object, build_root: Path, work: Path) -> None:
    report = sim.cosim_gemm(array, a, b, build_root, work)
    assert report.passed, report.failure()


PAIRS = [("int8", "int8", "int32", 1), ("uint8", "int8", "exact", 0), ("int4", "uint4", "exact", 2),
         ("fp8_e4m3", "fp8_e4m3", "fp32", 1)]  # fmt: skip


@pytest.mark.slow
@pytest.mark.parametrize(("a_format", "b_format", "accumulator", "pipeline"), PAIRS,
                         ids=[f"{a}x{b}-{acc}-pipeline{p}" for a, b, acc, p in PAIRS])  # fmt: skip
def test_every_operand_pair_through_the_dsp_model(
    a_format: str, b_format: str, accumulator: str, pipeline: int, build_root: Path, tmp_path: Path
) -> None:
    """Pipeline 0 uses the DSP's input registers only; 1 and 2 its output register too (where the
    fabric product register was)."""
    array = hw.SystolicArray(a_format, b_format, numerics.parse_accumulator(accumulator), rows=2, cols=4,
                             dataflow="os", pipeline=pipeline, k_max=64, dsp_primitive="ecp5")  # fmt: skip
    _check(array, *every_pair(array.config), build_root, tmp_path)


@pytest.mark.slow
def test_dsp_primitive_gemms_fold_and_reach_their_extremes(build_root: Path, tmp_path: Path) -> None:
    array = hw.SystolicArray("int8", "int8", numerics.parse_accumulator("int32"), rows=4, cols=4, dataflow="os",
                             pipeline=1, k_max=256, dsp_primitive="ecp5")  # fmt: skip
    check_extremes_and_folds(array, build_root, tmp_path, seed=45)


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["mxfp8_e4m3", "ovp4"])
def test_block_and_pair_formats_through_the_dsp_model(fmt: str, build_root: Path, tmp_path: Path) -> None:
    """MX products (their block scales ride beside the DSP) and OliVe pairs (decoded at the edge)."""
    array = hw.SystolicArray(fmt, fmt, rows=2, cols=2, dataflow="os", pipeline=1, k_max=128, dsp_primitive="ecp5")
    encoding = numerics.get(fmt)
    rng = np.random.default_rng(46)
    a, b = rng.standard_t(2, size=(6, 64)) * 3, rng.standard_t(2, size=(64, 4))  # even M and N: OliVe pairs
    a_axis = -1 if fmt.startswith("mx") else 0  # MX blocks run along K; OliVe pairs along the stream's lanes
    b_axis = 0 if fmt.startswith("mx") else 1
    _check(array, encoding.encode(a, axis=a_axis), encoding.encode(b, axis=b_axis), build_root, tmp_path)


def test_dsp_primitive_keeps_the_cycles() -> None:
    """The DSP's registers stand where the fabric's were: no cycle changes."""
    options = {"rows": 4, "cols": 4, "dataflow": "os", "pipeline": 1, "k_max": 256}
    plain = hw.ArrayConfig.build("int8", "int8", **options)  # type: ignore[arg-type]
    hard = hw.ArrayConfig.build("int8", "int8", dsp_primitive="ecp5", **options)  # type: ignore[arg-type]
    for m, k, n in RAGGED:
        assert hw.cycles(hard, m, k, n) == hw.cycles(plain, m, k, n)
    assert hard.latency == plain.latency


def test_the_verilog_instantiates_one_dsp_per_pe() -> None:
    array = hw.SystolicArray("int8", "int8", rows=2, cols=3, dataflow="os", pipeline=1, dsp_primitive="ecp5")
    verilog = hw.to_verilog(array, "top")
    assert verilog.count("MULT18X18D #(") == 6
    assert verilog.count('.REG_OUTPUT_CLK("CLK0")') == 6
    assert sim.primitive_sources(verilog)[0].name == "MULT18X18D.v"


@pytest.mark.parametrize(("a", "b", "options", "message"), [
    ("int8", "int8", {"dataflow": "ws"}, r"^dsp_primitive is built for output-stationary arrays "
                                         r"\(dataflow='os'\), got 'ws'$"),
    ("int8", "int8", {"dsp_primitive": "xilinx7"}, r"^dsp_primitive must be one of ecp5 \(or None: the synthesis "
                                                   r"tool maps `\*`\), got 'xilinx7'$"),
    ("int8", "int4", {"dsp_pack": True}, r"^dsp_primitive and dsp_pack cannot be combined"),
    ("int8", "int8", {"dsp_budget": 0}, r"^dsp_primitive needs DSPs: dsp_budget is 0"),
    ("int20", "int8", {}, r"^dsp_primitive needs operands within one 18 x 18 DSP: int20 x int8 multiplies "
                          r"20 x 8 bits$"),
])  # fmt: skip
def test_dsp_primitive_where_it_does_not_apply_is_refused(a: str, b: str, options: dict, message: str) -> None:
    config = {"rows": 2, "cols": 4, "dataflow": "os", "dsp_primitive": "ecp5", **options}
    with pytest.raises(ValueError, match=message):
        hw.SystolicArray(a, b, **config)
