# amaranth: UnusedElaboratable=no
"""Design points (synth/_designs.py): the output stage as a DesignSpec option, what it builds and
what the cost model's features count for it."""

from __future__ import annotations

import re

import pytest

import hw
import synth
from synth._designs import STAGE_FEATURES

BARE = synth.DesignSpec("array", "int8", "int8", 2, 4, "ws", True)
STAGED = synth.DesignSpec("array", "int8", "int8", 2, 4, "ws", True, output_stage=True)


def _unelaborated(design: hw.SystolicArray | hw.RequantArray) -> hw.SystolicArray | hw.RequantArray:
    """A design looked at, never elaborated: the file-level `UnusedElaboratable=no` above does not
    reach it (Amaranth reads the option from synth/_designs.py, where it was made), and its warning
    would fire whenever the garbage collector gets to it, inside some later test."""
    design._MustUse__silence = True  # type: ignore[union-attr]
    return design


def test_the_spec_builds_a_requant_array_with_the_same_array_options() -> None:
    spec = synth.DesignSpec("array", "int4", "int4", 2, 4, "os", output_stage=True, out_bits=8, bias_bits=16,
                            multiplier_bits=8, n_max=40, k=256, m_max=32)  # fmt: skip
    design = _unelaborated(spec.build())
    assert isinstance(design, hw.RequantArray)
    stage, array = design.config, design.config.array
    assert (stage.out_bits, stage.bias_bits, stage.multiplier_bits, stage.n_max, stage.folds_max) == (8, 16, 8, 40, 10)
    options = (array.rows, array.cols, array.dataflow, array.k_max, array.m_max, array.pipeline)
    assert options == (2, 4, "os", 256, 32, 1)
    assert array.dsp_budget == 0  # LUT multipliers in the PEs, as for the bare array
    assert isinstance(_unelaborated(BARE.build()), hw.SystolicArray)


def test_the_features_count_the_stage_on_every_lane() -> None:
    """int8 x int8 exact, k_max 1024: a 26-bit accumulator; with a 32-bit bias the product is
    (33 bits) x 16, 51 bits with the rounding increment; 64 channels on 4 lanes fill 16 rows."""
    bare, staged = synth.features(BARE), synth.features(STAGED)
    assert all(bare[name] == 0.0 for name in STAGE_FEATURES)
    assert {name: staged[name] for name in bare if name not in STAGE_FEATURES} == {
        name: value for name, value in bare.items() if name not in STAGE_FEATURES
    }  # the array is counted as before
    assert staged["stage_multiplier"] == 4 * 33 * 16
    assert staged["stage_lane"] == 4 * (52 * (6 + 4) + 32)
    assert staged["stage_memory"] == 0.0  # one 16-word LUT RAM bank: no read multiplexer
    assert staged["stage_unit"] == 1.0
    deep = synth.features(synth.DesignSpec("array", "int8", "int8", 2, 4, "ws", True, output_stage=True, n_max=256))
    assert deep["stage_memory"] == 4 * (32 + 16) * 3  # 64 rows: three more banks behind the first


def test_dsps_take_the_stage_products_too() -> None:
    """With DSPs, every (acc + bias) x multiplier product takes 18 x 18 pieces: 33 x 17 bits, two."""
    assert BARE.dsp_blocks() == 8 and BARE.dsp_features() == ("multiplier",)
    assert STAGED.dsp_blocks() == 8 + 4 * 2 and STAGED.dsp_features() == ("multiplier", "stage_multiplier")


def test_records_without_a_stage_read_and_write_as_before() -> None:
    fields = BARE.to_json()
    assert "output_stage" not in fields and "n_max" not in fields
    assert synth.DesignSpec(**fields) == BARE
    assert synth.DesignSpec(**STAGED.to_json()) == STAGED
    assert STAGED.label() == "2x4 ws-db int8xint8 exact, stage int32 b32 m16 n64"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "pe", "rows": 1, "cols": 1}, "an output stage needs kind 'array', got 'pe'"),
        ({"accumulator": "fp32"}, "the output stage takes an exact or int{W} accumulator, got 'fp32'"),
        ({"out_bits": 1}, "out_bits must be between 2 and 48, got 1"),
        ({"multiplier_bits": 33}, "multiplier_bits must be between 1 and 32, got 33"),
        ({"n_max": 0}, "n_max must be between 1 and 65535, got 0"),
    ],
)
def test_bad_stages_are_refused(options: dict, message: str) -> None:
    spec = {"kind": "array", "a": "int8", "b": "int8", "rows": 2, "cols": 2, "output_stage": True, **options}
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        synth.DesignSpec(**spec)
    with pytest.raises(ValueError, match="has no output stage"):
        BARE.stage_config()
