"""Bring your own model: any Brevitas model's (or QONNX file's) layers on generated hardware, with
verdicts that are reported separately and must all hold for PASS ((e) with a narrow accumulator).

(a) hardware = golden: the array's results equal numerics.matmul on the extracted codes, bit
    for bit, and the measured cycles equal the cycle model;
(b) extraction is faithful: the codes decode to the framework's own quantized operands (its
    grid: Brevitas' `.int()` minus the zero point, `.minifloat()`, MX values) and, times the
    scales, to its dequantized operands (`QuantTensor.value`) exactly; an integer bias decodes to
    the framework's bias; and the exact product of the framework's own grids (computed here in
    Python integers, without numerics) equals the golden product;
(c) the layer's output, bias included, is within the float32 rounding bound of the framework's:
    the hardware's sum is exact (an integer bias is added in the accumulator, exactly), the
    framework rounds each dequantized operand, every product and partial sum and the bias add in
    float32, and the result is rounded once more when scaled: |hw - ref| <= gamma(K + 4) *
    (sum_k |a_k b_k| + |bias|), gamma(n) = n u / (1 - n u), u = 2**-24;
(d) hardware in the loop: the model run with this layer's output replaced by the hardware's
    predicts (argmax over the last axis) exactly what the framework predicts, on every input;
(e) with a W-bit accumulator (`--acc int{W}`, wraps): no partial sum of any result leaves the
    register's range, in the order the array adds the products, on every input (a result that
    wrap-around brought back into range still fails: the register overflowed). The largest
    |partial sum| is reported against the register's range, with the range the weights allow
    for any input (what A2Q training bounds); with an exact accumulator these say how many bits
    the layer needs. See bitfab/accumulator_verdict.py.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

import hw
import models
import numerics
import sim

from .accumulator_verdict import accumulator_verdict, layer_partial_sums
from .endtoend import M_CHUNK, Hardware, U, bitserial_fits, simulate
from .partial_sums import PartialSums, register_range

Progress = Callable[[int, int], None]


@dataclass(kw_only=True)
class LayerVerdict:
    """One layer of a user's model on hardware: the verdicts and what they measured."""

    layer: str
    kind: str
    gemm: tuple[int, int, int]  # (M over all inputs, K, N)
    input_format: str
    weight_format: str
    bias: str
    hardware: str
    hardware_exact: bool  # (a)
    cycles: int
    model_cycles: int
    extraction_faithful: bool  # (b)
    max_deviation: float
    within_bound: bool  # (c)
    predictions_equal: bool  # (d)
    framework_accuracy: float | None
    hil_accuracy: float | None
    inputs: int
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0
    formats: tuple[str, str] = ("", "")  # numerics names of the input and weight codes
    zero_points: tuple[int, int] = (0, 0)  # subtracted at the array edge
    accumulator: str = "exact"  # numerics.accumulator_name of the array's accumulator
    partial_sums: PartialSums | None = None  # None: not measured (bit-serial, MX, sums beyond int64)
    accumulator_holds: bool = True  # (e)
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> dict[str, Any]:
        names = {"cycles": "cycles_layer_all_inputs_measured", "model_cycles": "cycles_layer_all_inputs_model"}
        out = {names.get(k, k): v for k, v in self.__dict__.items()}
        out["partial_sums"] = self.partial_sums.summary() if self.partial_sums is not None else None
        out["passed"] = self.passed
        return out


class TorchSource:
    """A PyTorch (Brevitas) model as a source of layers."""

    def __init__(self, model: Any, name: str) -> None:
        self.model, self.name = model, name

    def layers(self) -> list[str]:
        return models.layers(self.model)

    def describe(self, example: np.ndarray | None) -> list[models.LayerInfo]:
        return models.describe(self.model, example)

    def capture(self, layer: str, inputs: np.ndarray) -> models.Product:
        return models.capture(self.model, layer, inputs)

    def capture_slices(self, layer: str, inputs: np.ndarray) -> list[models.Product] | None:
        """A batched product (attention) as one GEMM per (sample, head); None for other layers."""
        return models.capture_slices(self.model, layer, inputs)

    def forward(self, inputs: np.ndarray, replace: dict[str, np.ndarray] | None = None) -> np.ndarray:
        return np.asarray(models.forward_with(self.model, inputs, replace or {}))


def source_for(model: Any, name: str) -> Any:
    """A source of layers for a loaded model: PyTorch modules are wrapped, QONNX models are one."""
    return model if hasattr(model, "capture") else TorchSource(model, name)


def array_for(product: models.Product, hardware: Hardware, m_rows: int) -> Any:
    """The generated design for a layer's operand formats."""
    a, b = product.a.format, product.b.format
    _, k, n = product.gemm
    if hardware.kind == "bitserial":
        if product.a.zero_point or product.b.zero_point:
            raise ValueError(f"layer {product.name!r}: the bit-serial unit has no zero-point subtraction; "
                             "run it on a systolic array")  # fmt: skip
        if not bitserial_fits(a, b):
            raise ValueError(f"layer {product.name!r}: the bit-serial unit takes signed INT activations and INT2..8 "
                             f"or FP4 E2M1 weights; this layer has {models.format_name(a)} x "
                             f"{models.format_name(b)}")  # fmt: skip
        group = hardware.rows * -(-k // hardware.rows)
        return hw.BitSerialArray(a, lanes=hardware.rows, cols=hardware.cols, group=group)
    double_buffer = hardware.dataflow == "ws" and hardware.double_buffer
    # buffer depths rounded up to powers of two: layers of similar size share one generated design (and build)
    k_max, m_max = _power_of_two_at_least(max(k, n, 64)), _power_of_two_at_least(max(m_rows, hardware.rows, 64))
    options = {"rows": hardware.rows, "cols": hardware.cols, "dataflow": hardware.dataflow,
               "double_buffer": double_buffer, "pipeline": 1, "k_max": k_max, "m_max": m_max,
               "a_zero_point": product.a.zero_point, "b_zero_point": product.b.zero_point}  # fmt: skip
    try:  # checked before the component is built: a refused design is not an unused one
        hw.ArrayConfig.build(a, b, hardware.accumulator, **options)  # type: ignore[arg-type]
    except ValueError as error:
        raise ValueError(f"layer {product.name!r} ({product.a.description} x {product.b.description}): "
                         f"no array: {error}") from None  # fmt: skip
    return hw.SystolicArray(a, b, hardware.accumulator, **options)


def _power_of_two_at_least(n: int) -> int:
    return 1 << (n - 1).bit_length()


def exact_integers(values: np.ndarray) -> tuple[np.ndarray, int]:
    """(integers, e) with values == integers * 2**e exactly (object array of Python ints)."""
    values = np.asarray(values, dtype=np.float64)
    mantissa, exponent = np.frexp(values)
    significand = (mantissa * 2.0**53).astype(np.int64)
    nonzero = significand != 0
    if not nonzero.any():
        return np.zeros(values.shape, dtype=object), 0
    # each value's lowest set bit, so the common exponent is as high as it can be (small integers)
    trailing = np.log2(np.where(nonzero, significand & -significand, 1)).astype(np.int64)
    odd = significand >> trailing
    exponent = exponent - 53 + trailing
    low = int(exponent[nonzero].min())
    integers = odd.astype(object) * np.power(2, np.where(nonzero, exponent - low, 0).astype(object))
    return integers, low


def exact_product(a: np.ndarray, b: np.ndarray, lsb_exponent: int) -> np.ndarray | None:
    """a @ b exactly, as Python integers in units of 2**lsb_exponent (None: not whole there)."""
    ia, ea = exact_integers(a)
    ib, eb = exact_integers(b)
    product = ia.dot(ib)
    shift = ea + eb - lsb_exponent
    if shift >= 0:
        return product * (1 << shift)
    divisor = 1 << -shift
    if any(int(v) % divisor for v in product.flat):
        return None
    return product // divisor


def extraction_failures(product: models.Product, golden: np.ndarray | None, lsb_exponent: int,
                        accumulator: Any = None) -> list[str]:  # fmt: skip
    """Verdict (b): what does not reproduce the framework's own operands and product. `golden` is
    in `accumulator` (a wrapping register: the framework's exact product is wrapped the same way;
    whether the register held the sums is verdict (e), not a matter of extraction)."""
    failures = []
    for role, operand in (("input", product.a), ("weight", product.b)):
        decoded = operand.decoded()
        if not np.array_equal(decoded, operand.grid):
            at = tuple(np.argwhere(decoded != operand.grid)[0])
            failures.append(f"{role} codes decode to {decoded[at]!r} at {tuple(int(i) for i in at)}, the "
                            f"framework's grid value is {operand.grid[at]!r} ({operand.description})")  # fmt: skip
            continue
        dequantized = operand.dequantized().astype(np.float32)
        if not np.array_equal(dequantized, operand.values):
            bad = np.argwhere(dequantized != operand.values)[0]
            failures.append(f"{role} codes x scales give {dequantized[tuple(bad)]!r} at {tuple(int(i) for i in bad)}, "
                            f"the framework's value is {operand.values[tuple(bad)]!r}")  # fmt: skip
    if product.bias_codes is not None:
        scale = (np.float32(product.a.scale) * product.b.scale.astype(np.float32)).astype(np.float64)
        if not np.array_equal((product.bias_codes * scale).astype(np.float32), product.bias):
            failures.append("the integer bias codes times scale_in*scale_w do not give the framework's bias")
    if golden is not None:
        framework = exact_product(product.a.grid, product.b.grid, lsb_exponent)
        if framework is not None and (register := register_range(accumulator)) is not None:
            span = register[1] - register[0] + 1
            framework = (framework - register[0]) % span + register[0]
        if framework is None or not np.array_equal(framework, golden):
            failures.append("the exact product of the framework's own integer operands differs from the golden "
                            "product of the extracted codes")  # fmt: skip
    return failures


def layer_output(report: sim.GemmReport, product: models.Product) -> np.ndarray:
    """The layer's output from the hardware's exact sums: an integer bias joins the sum exactly,
    then the scales; a float bias is added after scaling."""
    scale = np.asarray(product.a.scale, dtype=np.float64) * np.asarray(product.b.scale, dtype=np.float64)
    if product.bias_codes is not None:
        lsb, acc, bias = report.lsb_exponent, np.asarray(report.result, dtype=object), product.bias_codes.astype(object)
        exact = acc + bias * (1 << -lsb) if lsb <= 0 else acc * (1 << lsb) + bias
        return np.ldexp(exact.astype(np.float64), min(lsb, 0)) * scale
    values = report.values() * scale
    return values + product.bias.astype(np.float64) if product.bias is not None else values


def deviation_bound(product: models.Product) -> np.ndarray:
    """Per output: gamma(K + 4) * (sum_k |a_k b_k| + |bias|)."""
    _, k, _ = product.gemm
    gamma = (k + 4) * U / (1 - (k + 4) * U)
    magnitude = np.abs(product.a.dequantized()) @ np.abs(product.b.dequantized())
    if product.bias is not None:
        magnitude = magnitude + np.abs(product.bias.astype(np.float64))
    return gamma * magnitude


def run_layer(source: Any, layer: str, inputs: np.ndarray, labels: np.ndarray | None, hardware: Hardware,
              build_root: Path, work: Path, progress: Progress | None = None, m_chunk: int = M_CHUNK,
              optimize: bool | None = None) -> LayerVerdict:  # fmt: skip
    """Run `layer` of `source` (see `source_for`) with `inputs` on `hardware`; see the module docstring."""
    slices = source.capture_slices(layer, inputs) if hasattr(source, "capture_slices") else None
    probe = slices[0] if slices else source.capture(layer, inputs[:1])
    rows_per_input = probe.gemm[0]
    per_chunk = max(1, m_chunk // rows_per_input)
    array = array_for(probe, hardware, probe.gemm[0] if slices else min(len(inputs), per_chunk) * rows_per_input)
    accumulator = array.config.accumulator if isinstance(array, hw.SystolicArray) else numerics.ExactAccumulator()
    if optimize is None:
        _, k, n = probe.gemm
        optimize = len(inputs) * rows_per_input * k * n / (hardware.rows * hardware.cols) > 1e6
    failures: list[str] = []
    outputs, reports, deviation, bound_ok = [], [], 0.0, True
    faithful = True
    sums: PartialSums | None = None
    measured, unmeasured_wrapped = isinstance(array, hw.SystolicArray), 0
    starts = range(len(slices)) if slices else range(0, len(inputs), per_chunk)
    for index, start in enumerate(starts):
        product = slices[index] if slices else source.capture(layer, inputs[start : start + per_chunk])
        report = simulate(array, product.a.codes, product.b.codes, product.b.format, build_root, work / f"chunk{index}",
                          optimize)  # fmt: skip
        reports.append(report)
        golden = _golden(array, product, report)
        problems = extraction_failures(product, golden, report.lsb_exponent, accumulator)
        if problems and faithful:
            failures.append(f"(b) extraction of {product.name}: " + problems[0] + " - the layer's quantizer is read "
                            "wrongly or is not representable; report it with the quantizer's class")  # fmt: skip
        faithful &= not problems
        chunk_sums = layer_partial_sums(product, array.config) if measured else None
        measured &= chunk_sums is not None
        if chunk_sums is None and register_range(accumulator) is not None and golden is not None:
            framework = exact_product(product.a.grid, product.b.grid, report.lsb_exponent)
            unmeasured_wrapped += 0 if framework is None else int((framework != golden).sum())
        sums = chunk_sums if sums is None or chunk_sums is None else sums.merged(chunk_sums)
        if report.mismatches or report.cycles != report.model_cycles:
            break
        values = layer_output(report, product)
        error = np.abs(values - product.reference.astype(np.float64))
        within = error <= deviation_bound(product)
        if not within.all() and bound_ok:
            i, j = (int(x) for x in np.argwhere(~within)[0])
            cause = ("results wrapped around the accumulator, see (e)" if chunk_sums and chunk_sums.results_wrapped
                     else "the bias or the scales are not what the framework applies")  # fmt: skip
            failures.append(f"(c) output of {product.name}: [{i}, {j}] is {float(values[i, j])!r} on hardware, "
                            f"{float(product.reference[i, j])!r} in the framework, beyond the float32 rounding bound: "
                            f"{cause}")  # fmt: skip
        bound_ok &= bool(within.all())
        deviation = max(deviation, float(error.max()))
        outputs.append(product.fold(values.astype(np.float32)))
        if progress is not None:
            progress(index + 1, len(starts))
    sums = sums if measured else None
    exact = all(r.mismatches == 0 for r in reports) and len(reports) == len(starts)
    cycles_ok = exact and all(r.cycles == r.model_cycles for r in reports)
    if not exact:
        first = next((r.first_mismatch for r in reports if r.first_mismatch), "")
        failures.insert(0, f"(a) hardware: results differ from numerics.matmul on the same codes ({first}): a "
                           "hardware bug")  # fmt: skip
    elif not cycles_ok:
        bad = next(r for r in reports if r.cycles != r.model_cycles)
        failures.insert(0, f"(a) hardware: measured {bad.cycles} cycles, the cycle model says {bad.model_cycles}")
    overflow, warnings = accumulator_verdict(sums, accumulator, unmeasured_wrapped)
    if overflow is not None:  # before (c) and (d), which it explains
        failures.insert(next((i for i, f in enumerate(failures) if not f.startswith(("(a)", "(b)"))),
                             len(failures)), overflow)  # fmt: skip
    reference_out = source.forward(inputs)
    theirs = reference_out.reshape(len(inputs), -1).argmax(axis=1)
    same = False
    ours = None
    if cycles_ok:
        hil = source.forward(inputs, {layer: outputs if slices else np.concatenate(outputs)})
        ours = hil.reshape(len(inputs), -1).argmax(axis=1)
        same = bool((theirs == ours).all())
        if not same:
            failures.append(f"(d) hardware in the loop: {int((theirs != ours).sum())} of {len(inputs)} predictions "
                            "differ from the framework's")  # fmt: skip
    accuracy = (lambda p: float((p == labels).mean())) if labels is not None else None
    m = sum(r.shape[0] for r in reports)  # attention: over all (sample, head) slices
    _, k, n = reports[0].shape
    return LayerVerdict(layer=layer, kind=probe.kind, gemm=(m, k, n), input_format=probe.a.description,
                        weight_format=probe.b.description, bias=probe.bias_description, hardware=reports[0].design,
                        hardware_exact=exact, cycles=sum(r.cycles for r in reports),
                        model_cycles=sum(r.model_cycles for r in reports), extraction_faithful=faithful,
                        max_deviation=deviation, within_bound=bound_ok and cycles_ok, predictions_equal=same,
                        framework_accuracy=accuracy(theirs) if accuracy else None,
                        hil_accuracy=accuracy(ours) if accuracy and ours is not None else None, inputs=len(inputs),
                        failures=failures, seconds=sum(r.seconds for r in reports),
                        formats=(models.format_name(probe.a.format), models.format_name(probe.b.format)),
                        zero_points=(probe.a.zero_point, probe.b.zero_point),
                        accumulator=numerics.accumulator_name(accumulator), partial_sums=sums,
                        accumulator_holds=overflow is None, warnings=warnings)  # fmt: skip


def _golden(array: Any, product: models.Product, report: sim.GemmReport) -> np.ndarray | None:
    """numerics' exact product of the extracted codes, in the report's units."""
    if isinstance(array, hw.BitSerialArray):
        result = numerics.matmul(product.a.codes, product.b.codes, array.config.a_format, product.b.format)
        return sim.in_units(result, report.lsb_exponent)
    want, flags = sim.expected_gemm(array.config, product.a.codes, product.b.codes)
    return None if flags.any() else want
