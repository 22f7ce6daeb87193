"""Verdict (e) of a bring-your-own-model run (bitfab/byom.py): did the array's W-bit accumulator
hold every sum of the layer? Measured on the run's inputs from the partial sums in the order the
array adds them (bitfab/partial_sums.py), and bounded for any input from the weights alone (the
bound accumulator-aware training, A2Q, guarantees). Any partial sum outside the register is an
overflow and fails the layer, even where wrap-around brought the final sum back into range."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

import hw
import models
import numerics

from .partial_sums import PartialSums, any_input_sums, fits_int64, integer_units, partial_sums, register_range


def layer_partial_sums(product: models.Product, config: hw.ArrayConfig) -> PartialSums | None:
    """The layer's partial sums on `config`'s array, with the weights' bound for any input; None
    where they are not integers at the product lsb (MX) or could leave int64."""
    if config.block is not None:
        return None
    a = integer_units(product.a.decoded(), config.a_format.lsb_exponent)
    b = integer_units(product.b.decoded(), config.b_format.lsb_exponent)
    if a is None or b is None or not fits_int64(a, b):
        return None
    rows = config.rows if config.dataflow == "ws" else None
    sums = partial_sums(a, b, rows, register_range(config.accumulator))
    inputs = input_range(config)
    return sums if inputs is None else dataclasses.replace(sums, any_input=any_input_sums(b, inputs))


def input_range(config: hw.ArrayConfig) -> tuple[int, int] | None:
    """(lowest, highest) input any code of the a stream gives, in units of the a lsb (None: unknown)."""
    stream = config.a_code_format
    if config.block is not None or config.a_ovp is not None or stream.bits > 16:
        return None
    values = np.asarray(stream.decode(np.arange(1 << stream.bits, dtype=np.uint32)), dtype=np.float64)
    units = integer_units(values[np.isfinite(values)] - config.a_zero_point, config.a_format.lsb_exponent)
    return None if units is None or units.size == 0 else (int(units.min()), int(units.max()))


def accumulator_verdict(sums: PartialSums | None, accumulator: Any, unmeasured_wrapped: int = 0,
                        ) -> tuple[str | None, list[str]]:  # fmt: skip
    """(the (e) failure or None, warnings) for a layer run with `accumulator`. `sums`: the
    layer's partial sums over every input (None: not measured, and `unmeasured_wrapped` results
    differed from the framework's exact sums)."""
    register = register_range(accumulator)
    if register is None:
        return None, []
    name = numerics.accumulator_name(accumulator)
    where = f"the {name} register (range {register[0]:,}..{register[1]:,})"
    if sums is None:
        failure = None
        if unmeasured_wrapped:
            failure = (f"(e) accumulator overflow: {unmeasured_wrapped:,} results wrapped around {where} and differ "
                       "from the framework's exact sums")  # fmt: skip
        return failure, [f"partial sums of this layer were not measured (sums beyond 63 bits or not whole product "
                         f"lsbs); {where} is checked through the results only"]  # fmt: skip
    seen = f"the largest |partial sum| is {sums.max_abs:,} ({sums.bits} bits) in the array's order ({sums.order})"
    if sums.any_input is not None:
        low, high = sums.any_input
        allowed = f"the weights allow sums of {low:,}..{high:,} ({sums.any_input_bits} bits) for any input"
        safe = register[0] <= low and high <= register[1]
    else:
        allowed = f"a sum of |products| reaches {sums.abs_product_sum:,} (another order could overflow)"
        safe = sums.abs_product_sum <= register[1]
    if sums.overflowed:
        recovered = sums.results_overflowing - sums.results_wrapped
        back = f" ({recovered:,} came back into range by wrap-around luck)" if recovered else ""
        need = max(sums.bits, sums.any_input_bits or 0)
        return (f"(e) accumulator overflow: {sums.results_overflowing:,} of {sums.results:,} results had a partial "
                f"sum outside {where}; {sums.results_wrapped:,} of them wrapped to a value that differs from the "
                f"framework's exact sum{back}; {seen}, and {allowed}: use --acc int{need} or wider, or weights "
                f"trained (A2Q) for {name}"), []  # fmt: skip
    if not safe:
        return None, [f"no partial sum of these inputs left {where}, but {allowed}: other inputs may overflow it"]
    return None, []
