"""What a cocotb testbench module imports: the runner's stimulus, parameters and results files.

Kept free of hw/numerics imports: the simulator's embedded Python starts these modules on every
run, and importing amaranth and numba there costs seconds.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np


def stimulus() -> dict[str, np.ndarray]:
    """Inside a cocotb module: the arrays the runner passed in."""
    with np.load(os.environ["BITFAB_STIMULUS"]) as data:
        return {key: data[key] for key in data.files}


def parameters() -> dict[str, Any]:
    return dict(json.loads(os.environ.get("BITFAB_PARAMETERS", "{}")))


def record(**arrays: np.ndarray) -> None:
    """Inside a cocotb module: hand sampled outputs back to the runner."""
    np.savez(os.environ["BITFAB_RESULTS"], **arrays)
