"""A layer of a trained Brevitas model on generated hardware, end to end.

The layer's real inputs (test images run through the model up to that layer) become one matrix
product per chunk of images; each chunk runs on the array in Verilator and must equal
numerics.matmul bit for bit (with the measured cycles equal to the cycle model). The hardware
results times the scales are then compared with Brevitas' own float32 output of the layer and
fed through the rest of the Brevitas model (hardware in the loop).

The deviation bound asserted against Brevitas: the hardware's sum is exact, Brevitas rounds
each dequantized operand, every product and every partial sum in float32, and the hardware value
is rounded once more when scaled, so |hardware - brevitas| <= gamma(K + 3) * sum_k |a_k b_k|,
gamma(n) = n u / (1 - n u), u = 2**-24 (Higham's bound for a recursive dot product of length K,
plus the operand and scaling roundings). The bound is per output, computed from the operands.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

import hw
import models
import numerics
import sim

M_CHUNK = 4096  # rows of one co-simulated product: the depth of the WS output accumulator
U = 2.0**-24


@dataclass(frozen=True)
class Hardware:
    """Which generated design runs the layer."""

    kind: str  # "systolic" or "bitserial"
    rows: int  # systolic rows, or bit-serial lanes
    cols: int
    dataflow: str = "ws"  # systolic only
    double_buffer: bool = True  # WS only
    # systolic only: exact (Kulisch), or a W-bit register that wraps
    accumulator: numerics.ExactAccumulator | numerics.FixedAccumulator = field(
        default_factory=numerics.ExactAccumulator
    )

    def describe(self) -> str:
        if self.kind == "bitserial":
            return f"bit-serial {self.cols} PEs x {self.rows} lanes"
        buffering = " double-buffered" if self.dataflow == "ws" and self.double_buffer else ""
        register = ""
        if isinstance(self.accumulator, numerics.FixedAccumulator):
            register = f" with a {self.accumulator.width}-bit accumulator ({self.accumulator_name}, wraps)"
        return f"{self.rows}x{self.cols} {self.dataflow.upper()}{buffering} systolic array{register}"

    @property
    def accumulator_name(self) -> str:
        return numerics.accumulator_name(self.accumulator)


def parse_hardware(array: str, dataflow: str = "ws", bitserial: bool = False, accumulator: str = "exact") -> Hardware:
    if not (match := re.fullmatch(r"(\d+)x(\d+)", array)):
        raise ValueError(f"--array must be RxC (e.g. 8x8), got {array!r}")
    kind = "bitserial" if bitserial else "systolic"
    rows, cols = int(match[1]), int(match[2])
    low = 1 if bitserial else 2
    if not (low <= rows <= 64 and low <= cols <= 64):
        what = "lanes x PEs" if bitserial else "rows x cols"
        raise ValueError(f"--array {array}: {what} must each be between {low} and 64")
    return Hardware(kind, rows, cols, dataflow, accumulator=_model_accumulator(accumulator, bitserial))


def _model_accumulator(text: str, bitserial: bool) -> numerics.ExactAccumulator | numerics.FixedAccumulator:
    """--acc of `cosim model`: exact, or a W-bit register that wraps (checked against each layer later)."""
    accumulator = numerics.parse_accumulator(text)
    if isinstance(accumulator, numerics.ExactAccumulator):
        return accumulator
    if bitserial:
        raise ValueError(f"--acc {text}: the bit-serial unit accumulates exactly; a narrow accumulator runs on a "
                         "systolic array (drop --bitserial)")  # fmt: skip
    if not isinstance(accumulator, numerics.FixedAccumulator):
        raise ValueError(f"--acc {text}: model layers run with exact or int{{W}} (wrapping) accumulators; float "
                         "accumulators are not checked against a model's output yet")  # fmt: skip
    if accumulator.overflow == "saturate":
        raise ValueError(f"--acc {text}: a systolic array adds partial sums in dataflow order, so a saturating "
                         f"register has no order-free result; use int{accumulator.width} (wraps)")  # fmt: skip
    return accumulator


@dataclass
class LayerRun:
    """The outcome of one layer on hardware."""

    model: str
    format: str
    layer: str
    hardware: str
    gemm: tuple[int, int, int]  # (M, K, N) over all chunks' rows
    bit_exact: bool
    cycles: int  # measured, summed over chunks
    model_cycles: int
    max_deviation: float  # max |hardware - Brevitas| over the layer's outputs
    within_bound: bool  # every output within gamma(K + 3) * sum |a b| of Brevitas
    brevitas_accuracy: float
    hil_accuracy: float  # the rest of the model fed with the hardware's layer output
    predictions_equal: bool  # hardware-in-the-loop predictions == Brevitas' on every image
    images: int
    first_mismatch: str | None = None
    seconds: float = 0.0
    reports: list[sim.GemmReport] = field(default_factory=list, repr=False)
    extraction_faithful: bool = True  # the codes of `fmt` equal the operands read from the model's own QuantTensors

    @property
    def passed(self) -> bool:
        checks = (self.bit_exact, self.cycles == self.model_cycles, self.within_bound, self.predictions_equal)
        return all(checks) and self.extraction_faithful

    def summary(self) -> dict[str, Any]:
        """The run as JSON; cycle counts named by what they count (the layer, all its images)."""
        names = {"cycles": "cycles_layer_all_images_measured", "model_cycles": "cycles_layer_all_images_model"}
        return {names.get(k, k): v for k, v in self.__dict__.items() if k != "reports"}


def bitserial_fits(activation: Any, weight: Any) -> bool:
    """The bit-serial unit's operands: signed INT activations, INT2..8 or FP4 E2M1 weights."""
    int_weights = isinstance(weight, numerics.IntFormat) and weight.signed and 2 <= weight.bits <= 8
    signed_int = isinstance(activation, numerics.IntFormat) and activation.signed
    return signed_int and (int_weights or weight == numerics.get("fp4_e2m1"))


def check_mapping(fmt: str, kind: str, hardware: Hardware) -> None:
    """Refuse, before any simulation, a layer/format/hardware combination that has no mapping."""
    scheme = models.scheme(fmt)
    if hardware.kind == "bitserial":
        if not bitserial_fits(numerics.get(scheme.activation), numerics.get(scheme.weight)):
            raise ValueError(f"the bit-serial unit takes signed INT activations and INT2..8 or FP4 E2M1 weights "
                             f"(weight-only formats: {', '.join(models.WEIGHT_ONLY)}); got {fmt}")  # fmt: skip
    elif isinstance(numerics.get(scheme.activation), numerics.OVPFormat) and hardware.dataflow != "ws":
        raise ValueError(f"{fmt} activations pair along K (each row has its own scale); the OS array pairs A along M: "
                         "use --dataflow ws")  # fmt: skip
    if kind not in ("linear", "conv"):
        raise ValueError(f"layer kind {kind!r} does not map to a matrix product; linear and conv layers do")


def _array(fmt: str, codes: models.LayerCodes, hardware: Hardware, m_rows: int) -> Any:
    scheme = models.scheme(fmt)
    k, n = int(codes.input_codes.shape[1]), codes.brevitas_output.shape[1]
    if hardware.kind == "bitserial":
        group = hardware.rows * -(-k // hardware.rows)
        return hw.BitSerialArray(scheme.activation, lanes=hardware.rows, cols=hardware.cols, group=group)
    double_buffer = hardware.dataflow == "ws" and hardware.double_buffer
    # the model's own accumulator (exact unless --acc says otherwise), MX included: the run is judged against Brevitas
    return hw.SystolicArray(scheme.activation, scheme.weight, hardware.accumulator, rows=hardware.rows,
                            cols=hardware.cols, dataflow=hardware.dataflow, double_buffer=double_buffer, pipeline=1,
                            k_max=max(k, n), m_max=max(m_rows, hardware.rows))  # fmt: skip


def dequantized(codes: models.LayerCodes) -> tuple[np.ndarray, np.ndarray]:
    """(A, B) as float64 values (codes decoded times their scales)."""
    scheme = models.scheme(codes.format)

    def values(operand: Any, fmt: str, scale: np.ndarray) -> np.ndarray:
        if hasattr(operand, "decode"):  # MX and OliVe encodings carry their scales
            return np.asarray(operand.decode(), dtype=np.float64)
        return np.asarray(numerics.get(fmt).decode(operand), dtype=np.float64) * scale.astype(np.float64)

    return (values(codes.input_codes, scheme.activation, codes.input_scale),
            values(codes.weight_codes, scheme.weight, codes.weight_scale))  # fmt: skip


def simulate(array: Any, a_codes: Any, b_codes: Any, b_format: Any, build_root: Path, work: Path,
             optimize: bool) -> sim.GemmReport:  # fmt: skip
    """A @ B on the generated design: the bit-serial unit (which takes B's format) or a systolic array."""
    if isinstance(array, hw.BitSerialArray):
        return sim.cosim_bitserial(array, a_codes, b_codes, b_format, build_root, work, optimize=optimize)
    return sim.cosim_gemm(array, a_codes, b_codes, build_root, work, optimize=optimize)


def _hardware_values(report: sim.GemmReport, codes: models.LayerCodes) -> np.ndarray:
    """The array's results as layer outputs: MX block scales were applied inside the array; the
    tensor / channel / row scales of the other formats (OliVe's too) are applied here, once."""
    if isinstance(codes.input_codes, numerics.BlockEncoded):
        return report.values()
    return report.values() * codes.input_scale.astype(np.float64) * codes.weight_scale.astype(np.float64)


def run_layer(name: str, fmt: str, model: nn.Module, layer: str, images: np.ndarray, labels: np.ndarray,
              hardware: Hardware, build_root: Path, work: Path, optimize: bool | None = None,
              progress: Callable[[int, int], None] | None = None, m_chunk: int = M_CHUNK) -> LayerRun:  # fmt: skip
    """Co-simulate `layer` of the quantized `model` with `images`; see the module docstring.
    `optimize` (default: when the layer needs more than ~10**6 PE-cycles) builds optimized C++;
    `m_chunk` rows run per simulation (the depth of the weight-stationary output accumulator)."""
    kind = models.layer_kind(model, layer)
    check_mapping(fmt, kind, hardware)
    probe = models.extract(model, layer, images[:1], fmt)  # mapping errors (MX channels, OliVe convs) surface here
    rows_per_image = probe.brevitas_output.shape[0]
    per_chunk = max(1, m_chunk // rows_per_image)
    array = _array(fmt, probe, hardware, min(len(images), per_chunk) * rows_per_image)
    if optimize is None:
        work_per_pe = (
            len(images) * probe.brevitas_output.size * probe.input_codes.shape[1] / (hardware.rows * hardware.cols)
        )
        optimize = work_per_pe > 1e6
    outputs, reports, bounds_ok, deviation = [], [], True, 0.0
    chunks = range(0, len(images), per_chunk)
    faithful = True
    for index, start in enumerate(chunks):
        codes = models.extract(model, layer, images[start : start + per_chunk], fmt)
        if index == 0:
            faithful = _faithful(model, layer, images[start : start + per_chunk], codes)
        report = simulate(array, codes.input_codes, codes.weight_codes, models.scheme(fmt).weight, build_root,
                          work / f"chunk{index}", optimize)  # fmt: skip
        reports.append(report)
        if report.mismatches:
            break
        values = _hardware_values(report, codes)
        a, b = dequantized(codes)
        k = a.shape[1]
        gamma = (k + 3) * U / (1 - (k + 3) * U)
        error = np.abs(values - codes.brevitas_output.astype(np.float64))
        bounds_ok &= bool(np.all(error <= gamma * (np.abs(a) @ np.abs(b))))
        deviation = max(deviation, float(error.max()))
        outputs.append(codes.to_layer(values))
        if progress is not None:
            progress(index + 1, len(chunks))
    m = sum(r.shape[0] for r in reports)
    k, n = reports[0].shape[1:]
    bit_exact = all(r.mismatches == 0 for r in reports) and len(reports) == len(chunks)
    first = next((r.first_mismatch for r in reports if r.first_mismatch), None)
    brevitas_logits = _logits(model, images)
    hil = _logits(model, images, layer, np.concatenate(outputs)) if bit_exact else np.zeros_like(brevitas_logits)
    theirs, ours = brevitas_logits.argmax(axis=1), hil.argmax(axis=1)
    return LayerRun(name, fmt, layer, reports[0].design, (m, k, n), bit_exact, sum(r.cycles for r in reports),
                    sum(r.model_cycles for r in reports), deviation, bounds_ok and bit_exact,
                    float((theirs == labels).mean()), float((ours == labels).mean()), bool((theirs == ours).all()),
                    len(images), first, sum(r.seconds for r in reports), reports, faithful)  # fmt: skip


def _faithful(model: nn.Module, layer: str, images: np.ndarray, codes: models.LayerCodes) -> bool:
    """The typed format's codes against the operands read from the model's own QuantTensors (the
    bring-your-own-model reader, models.capture): the same values, and those reproduce Brevitas'."""
    from .byom import extraction_failures

    product = models.capture(model, f"{layer}.layer", images)
    a, b = dequantized(codes)
    same = np.array_equal(a, product.a.dequantized()) and np.array_equal(b, product.b.dequantized())
    return same and not extraction_failures(product, None, 0)


def _logits(model: nn.Module, images: np.ndarray, layer: str | None = None, output: np.ndarray | None = None) -> Any:
    """The model's logits; with `layer`, that layer's quantized product replaced by `output`
    (its float bias is still added by the model)."""
    hook = None
    if layer is not None and output is not None:
        replacement = torch.from_numpy(output.astype(np.float32))
        quant_layer = dict(model.named_modules())[layer].layer
        hook = quant_layer.register_forward_hook(lambda _m, _inputs, _out: replacement)
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return model(torch.from_numpy(images)).numpy()
    finally:
        if hook is not None:
            hook.remove()
