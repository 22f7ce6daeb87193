"""A whole network on generated hardware: every mappable layer on the requantizing array in turn,
codes between layers, the host only where the model's program says so (models/_network.py).

Per chunk of inputs, Brevitas runs once (its codes, scales and outputs at every layer: the
reference), then the model's hardware program runs with a `_Network` whose `layer` executes the
layer's GEMM and output stage on `hw.RequantArray` in Verilator (or, with `simulate=False`, in
numerics only). The input of every layer is the previous layer's hardware codes, never Brevitas'
values. Verdicts per layer: the hardware against numerics (bit for bit, cycles = model), and the
hardware's codes against Brevitas' integers at the same boundary (max |difference| in output
LSBs; zero wherever the stage is exact: power-of-two scales and biases on the accumulator grid).
Minifloat activations (FP8 networks) run on a design whose stage rounds hidden layers to the
minifloat (`hw.RequantArray(out_format=...)`) and the last layer to integers for the host; their
LSB differences count code steps (adjacent values of the format are one step apart).
"""

from __future__ import annotations

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
from synth.energy import gemm_energy, output_stage_pj

from .endtoend import Hardware, bitserial_fits

MULTIPLIER_BITS = 16  # an 18x18 DSP's operand; power-of-two ratios are exact at any width
OUT_BITS = 32
FLOAT_BIAS_BITS = 48  # a minifloat array's accumulator lsb lies far below the operands' scales
STAGE_BOUND_LSB = 1.0  # the stage alone vs Brevitas, float scales: one rounding more, never more
M_ROWS = 1024  # rows of the largest layer per simulation: its operand streams stay within the player's depth


@dataclass
class LayerRecord:
    """One layer over all chunks of inputs."""

    layer: str
    kind: str
    stage: str  # the output stage in words
    exact_stage: bool  # multipliers equal the scale ratios and the bias is whole accumulator units
    gemm: tuple[int, int, int] = (0, 0, 0)  # (M over all chunks, K, N)
    bit_exact: bool = True
    first_mismatch: str | None = None
    cycles: int = 0
    model_cycles: int = 0
    brevitas_max_lsb: float = 0.0  # max |hardware - Brevitas| in output LSBs, earlier layers' errors carried
    brevitas_differing: int = 0  # outputs that differ from Brevitas at all
    stage_max_lsb: float = 0.0  # the stage alone: fed Brevitas' own input codes, max |difference| in output LSBs
    single_input_cycles: int = 0  # the cycle model for one input's rows
    outputs: int = 0
    energy_pj: float = 0.0

    @property
    def agrees_with_brevitas(self) -> bool:
        return self.brevitas_differing == 0


@dataclass
class NetworkRun:
    model: str
    format: str | None  # a bundled model's format; None: read from the model's quantizers
    hardware: str
    images: int
    layers: list[LayerRecord]
    host: list[str]  # what ran on the host between hardware segments, in order
    brevitas_accuracy: float | None
    hardware_accuracy: float | None
    same_predictions: int  # inputs whose hardware prediction equals Brevitas'
    simulated: bool
    host_differing: int = 0  # host quantizations that differ from Brevitas' codes
    seconds: float = 0.0
    chunks: int = 1
    extras: dict[str, Any] = field(default_factory=dict)
    design: hw.RequantArray | None = field(default=None, repr=False)  # the one design every layer ran on

    @property
    def cycles_per_inference(self) -> float:
        """Hardware cycles of one inference: every layer's cycles over all chunks, per input."""
        return sum(record.cycles for record in self.layers) / self.images

    @property
    def energy_pj_per_inference(self) -> float | None:
        """None on the bit-serial unit: synth.energy has no model of it."""
        if isinstance(self.design, hw.RequantBitSerial):
            return None
        return sum(record.energy_pj for record in self.layers) / self.images

    @property
    def exact(self) -> bool:
        """Every stage is exact: the run must then equal Brevitas bit for bit."""
        return all(record.exact_stage for record in self.layers)

    @property
    def hardware_ok(self) -> bool:
        return all(r.bit_exact and r.cycles == r.model_cycles for r in self.layers)

    @property
    def stages_match_the_model(self) -> bool:
        """Fed Brevitas' own inputs, every stage is within one LSB of Brevitas (integer-only
        requantization of float scales rounds once more, no further): more means the hardware
        program is not the model's forward pass (a missing ReLU, a wrong `into`)."""
        return all(r.stage_max_lsb <= STAGE_BOUND_LSB for r in self.layers)

    @property
    def passed(self) -> bool:
        if not (self.hardware_ok and self.stages_match_the_model):
            return False
        if not self.exact:
            return True
        agrees = all(r.agrees_with_brevitas for r in self.layers) and self.host_differing == 0
        return agrees and self.same_predictions == self.images

    @property
    def latency_cycles(self) -> int:
        """Cycles of one input alone, layer after layer (the cycle model at one input's rows):
        a batch shares each layer's weight loads and pipeline fill, so its per-input cost is lower."""
        return sum(r.single_input_cycles for r in self.layers)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("layers", "extras", "design")}
        out["layers"] = [{**r.__dict__} for r in self.layers]
        out.update(cycles_per_inference=self.cycles_per_inference, latency_cycles=self.latency_cycles,
                   energy_pj_per_inference=self.energy_pj_per_inference, exact=self.exact, passed=self.passed,
                   stages_match_the_model=self.stages_match_the_model, **self.extras)  # fmt: skip
        return out


def _stage(tap: models.Tap, into: models.Tap | None, relu: bool, acc_exponent: int, fraction_bits: int) -> tuple[
        numerics.Requantization, np.ndarray, bool, str]:  # fmt: skip
    """(stage, output scale per channel, exact, description) of a layer whose codes go `into`
    the next layer's input quantizer (or, None, to the host in accumulator units); the hardware's
    accumulator lsb is 2**acc_exponent value units (0 for integer arrays), the last `fraction_bits`
    of which are a scale's fraction (the bit-serial unit's fp16 group scale) that output to the
    host drops."""
    unit = tap.accumulator_scale * 2.0**acc_exponent
    units = tap.bias / unit
    bias = np.rint(units).astype(np.int64)
    exact = bool(np.all(units == bias))
    activation = "relu" if relu else "identity"
    if into is None:
        stage = numerics.Requantization(bias, np.ones_like(bias), fraction_bits, f"int{OUT_BITS}",
                                        activation=activation)  # fmt: skip
        units = "accumulator units" if not fraction_bits else f"accumulator units / 2**{fraction_bits}"
        return stage, unit * 2.0**fraction_bits, exact, \
            f"bias{', ReLU' if relu else ''}, {units} (int{OUT_BITS}) to the host"  # fmt: skip
    activation_format = into.input_format
    ratio = unit / into.input_scale
    multiplier, shift = numerics.quantized_multiplier(ratio, bits=MULTIPLIER_BITS)
    exact &= bool(np.all(np.ldexp(multiplier.astype(np.float64), -shift) == ratio))
    powers = np.unique(np.log2(ratio))
    if exact and powers.size == 1 and float(powers[0]).is_integer():
        words = f"x 2**{int(powers[0])}"
    else:
        words = f"x {int(multiplier.min())}..{int(multiplier.max())} / 2**{shift}"
    stage = numerics.Requantization(bias, multiplier, shift, activation_format, activation=activation)
    scale = np.full(bias.shape, into.input_scale)
    words = f"bias, {words}{', ReLU' if relu else ''}, to {activation_format} ({into.codes.name}'s input)"
    return stage, scale, exact, words


class _Engine:
    """Runs a layer's product and stage on the design (Verilator, or numerics' golden model) and
    keeps the per-layer records: cycles, energy, bit-exactness."""

    def __init__(self, design: Any, simulate: bool, build_root: Path, work: Path) -> None:
        self.design, self.simulate, self.build_root, self.work = design, simulate, build_root, work
        self.bitserial = isinstance(design, hw.RequantBitSerial)
        # accumulator bits below the operands' grid, which output to the host drops: the bit-serial
        # unit's fp16 group scale fraction, a minifloat array's products' fraction
        array = design.config.array
        self.fraction_bits = -array.lsb_exponent_offset if self.bitserial else max(0, -array.lsb_exponent)
        self.records: dict[str, LayerRecord] = {}
        self.seconds = 0.0

    def acc_exponent(self, tap: models.Tap) -> int:
        """The exponent of the hardware accumulator's lsb in grid units of the layer's operands."""
        unit = self.design.config.array
        if self.bitserial:
            return sim.bitserial_lsb(unit, hw.plan_weights(unit, tap.codes.weight_codes, tap.weight_format))
        return unit.lsb_exponent

    def golden(self, a: Any, tap: models.Tap, stage: numerics.Requantization) -> np.ndarray:
        """The stage's output on the output format's grid (`_units`), from numerics."""
        b, config = tap.codes.weight_codes, self.design.config
        if self.bitserial:
            product = numerics.matmul(a, b, config.array.a_format, tap.weight_format)
            return stage.integers(np.asarray(sim.in_units(product, self.acc_exponent(tap)), dtype=np.int64))
        return _units(stage, sim.expected_codes(config, a, b, stage))

    def cycle_model(self, m: int, k: int, n: int, tap: models.Tap) -> int:
        """The design's cycles for an M x K x N layer (the stage's register included)."""
        config = self.design.config
        if self.bitserial:
            plan = hw.plan_weights(config.array, tap.codes.weight_codes, tap.weight_format)
            return int(hw.bitserial_cycles(config.array, m, k, n, plan)) + 1
        return int(hw.requant_cycles(config, m, k, n))

    def execute(self, layer: str, a: Any, tap: models.Tap, stage: numerics.Requantization) -> np.ndarray:
        record, b, config = self.records[layer], tap.codes.weight_codes, self.design.config
        (m, k), n = a.shape, b.shape[1]
        if not self.bitserial:
            record.energy_pj += layer_energy_pj(config, m, k, n)
        if not self.simulate:
            record.cycles += self.cycle_model(m, k, n, tap)
            record.model_cycles = record.cycles
            return self.golden(a, tap, stage)
        work, optimize = self.work / layer, m * k * n > 2e6
        if self.bitserial:
            report = sim.cosim_requant_bitserial(self.design, a, b, tap.weight_format, stage, self.build_root, work,
                                                 optimize=optimize)  # fmt: skip
        else:
            report = sim.cosim_requant(self.design, a, b, stage, self.build_root, work, optimize=optimize)
        self.seconds += report.seconds
        record.cycles += report.cycles
        record.model_cycles += report.model_cycles
        if report.mismatches and record.bit_exact:
            record.bit_exact, record.first_mismatch = False, report.first_mismatch
        return _units(stage, report.result)


def _units(stage: numerics.Requantization, result: Any) -> np.ndarray:
    """A stage's output as values of its format's grid: the integers (INT), or the minifloat's
    values decoded from its codes."""
    output = stage.output_format
    if isinstance(output, numerics.Minifloat):
        return output.decode(np.asarray(result, dtype=np.int64).astype(output.code_dtype))
    return np.asarray(result, dtype=np.int64)


class _Network:
    """`models.Network` over one chunk of inputs; its engine runs each layer (Verilator or numerics)."""

    def __init__(self, model: nn.Module, images: np.ndarray, taps: dict[str, models.Tap], engine: _Engine,
                 host: list[str], counts: dict[str, int]) -> None:  # fmt: skip
        self.model, self.images, self.taps, self.engine = model, images, taps, engine
        self.records, self.host_ops, self.counts = engine.records, host, counts

    def _tap(self, layer: str) -> models.Tap:
        if layer not in self.taps:
            raise ValueError(f"the hardware program names layer {layer!r}; the model's quantized layers: "
                             f"{', '.join(self.taps)}")  # fmt: skip
        return self.taps[layer]

    def quantize(self, layer: str, values: models.Codes | np.ndarray) -> models.Codes:
        tap = self._tap(layer)
        fmt = numerics.get(tap.input_format)
        data = values.values() if isinstance(values, models.Codes) else np.asarray(values, dtype=np.float64)
        integers = fmt.decode(fmt.encode(data / tap.input_scale, saturate=True))
        if isinstance(fmt, numerics.IntFormat):
            integers = integers.astype(np.int64)
        reference = tap.input_units.reshape(integers.shape)
        self.counts["host_differing"] += int(np.count_nonzero(integers != reference))
        self._note(f"quantize to {layer}'s input ({tap.input_format}, scale {tap.input_scale:g})")
        return models.Codes(integers, np.asarray(tap.input_scale))

    def host(self, what: str, function: Callable[..., torch.Tensor], *inputs: models.Codes | np.ndarray) -> np.ndarray:
        tensors = [torch.from_numpy(x.values() if isinstance(x, models.Codes) else np.asarray(x, np.float64))
                   for x in inputs]  # fmt: skip
        with torch.no_grad():
            out = function(*tensors)
        self._note(what)
        return out.numpy()

    def _note(self, what: str) -> None:
        if what not in self.host_ops:
            self.host_ops.append(what)

    def layer(self, name: str, x: models.Codes, relu: bool = False, into: str | None = None) -> models.Codes:
        tap = self._tap(name)
        stage, scale, exact, words = _stage(tap, None if into is None else self._tap(into), relu,
                                            self.engine.acc_exponent(tap), self.engine.fraction_bits)  # fmt: skip
        record = self.records.setdefault(name, LayerRecord(name, tap.codes.kind, words, exact))
        rows = self._rows(name, tap, x)
        a = numerics.get(tap.input_format).encode(rows.astype(np.float64))
        integers = self.engine.execute(name, a, tap, stage)
        out = tap.codes.to_layer(integers)
        channel_scale = scale.reshape((1, -1, 1, 1) if tap.codes.kind == "conv" else (-1,))
        lsb_error = self._lsb_error(tap, into, relu, out, channel_scale)
        alone = tap.codes.to_layer(self.engine.golden(tap.codes.input_codes, tap, stage))
        stage_error = self._lsb_error(tap, into, relu, alone, channel_scale)
        m, k = a.shape
        record.gemm = (record.gemm[0] + m, k, integers.shape[1])
        record.single_input_cycles = self.engine.cycle_model(m // len(self.images), k, integers.shape[1], tap)
        record.brevitas_max_lsb = max(record.brevitas_max_lsb, float(lsb_error.max(initial=0)))
        record.stage_max_lsb = max(record.stage_max_lsb, float(stage_error.max(initial=0)))
        record.brevitas_differing += int(np.count_nonzero(lsb_error))
        record.outputs += out.size
        return models.Codes(out, channel_scale)

    def _lsb_error(self, tap: models.Tap, into: str | None, relu: bool, out: np.ndarray,
                   channel_scale: np.ndarray) -> np.ndarray:  # fmt: skip
        """|codes - Brevitas| in the output's LSBs: against the next layer's input values (integers,
        or a minifloat's values: code steps), or (to the host) against the layer's float output with
        its bias, in accumulator units."""
        if into is not None:
            target = self.taps[into]
            return code_steps(target.input_format, out, target.input_units.reshape(out.shape))
        reference = np.maximum(tap.output, 0) if relu else tap.output
        return np.abs(out * channel_scale - reference.astype(np.float64)) / channel_scale

    def _rows(self, name: str, tap: models.Tap, x: models.Codes) -> np.ndarray:
        """The layer's A (M, K) from its input codes: a linear layer's rows, a convolution's im2col
        (host work; the padding is code 0, the zero point of the symmetric INT formats)."""
        k = tap.codes.weight_codes.shape[0]
        if tap.codes.kind != "conv":
            return x.integers.reshape(-1, k)
        module = dict(self.model.named_modules())[name]
        conv = getattr(module, "layer", module)  # a bundled layer wraps its QuantConv2d; a stock one is it
        to_rows = models.gemm_layouts(conv, "conv2d")[0]
        kernel, stride, padding = (
            "x".join(str(v) for v in getattr(conv, a)) for a in ("kernel_size", "stride", "padding")
        )
        self._note(f"im2col for {name} (kernel {kernel}, stride {stride}, padding {padding}), on codes")
        return to_rows(torch.from_numpy(x.integers.astype(np.float64))).numpy()


def code_steps(fmt: str, got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in steps of the format's grid: the integers' difference (INT), or how many
    values of the minifloat lie between them (+0 and -0 are one value)."""
    resolved = numerics.get(fmt)
    if not isinstance(resolved, numerics.Minifloat):
        return np.abs(np.asarray(got) - np.asarray(want)).astype(np.float64)
    ranks = [_rank(resolved, x) for x in (got, want)]
    return np.abs(ranks[0] - ranks[1]).astype(np.float64)


def _rank(fmt: numerics.Minifloat, values: np.ndarray) -> np.ndarray:
    """A minifloat's values as signed ordinals: 0 for zero, +-k for the k-th magnitude."""
    codes = fmt.encode(np.asarray(values, dtype=np.float64), saturate=True).astype(np.int64)
    sign = 1 << (fmt.bits - 1)
    magnitude = codes & (sign - 1)
    return np.where(codes & sign, -magnitude, magnitude)


def requant_design(taps: dict[str, models.Tap], hardware: Hardware, m_max: int, k_max: int | None = None,
                   n_max: int | None = None) -> hw.RequantArray | hw.RequantBitSerial:  # fmt: skip
    """One design for every layer: the layers' shared formats, K and N up to the largest layer's
    (or the given maxima, so that one design serves several networks)."""
    formats = {(t.input_format, t.weight_format) for t in taps.values()}
    if len(formats) != 1:
        listed = ", ".join(f"{name}: {t.input_format} x {t.weight_format}" for name, t in taps.items())
        raise ValueError(f"one array runs the whole network, so its layers must share their formats; got {listed}")
    ((a_format, w_format),) = formats
    k_need = max(t.codes.weight_codes.shape[0] for t in taps.values())
    n_need = max(t.codes.weight_codes.shape[1] for t in taps.values())
    k_max, n_max = k_max or k_need, n_max or n_need
    if k_max < k_need or n_max < n_need:
        raise ValueError(
            f"the network needs K up to {k_need} and N up to {n_need}; the design holds {k_max} and {n_max}"
        )
    activation, weight = numerics.get(a_format), numerics.get(w_format)
    floats = isinstance(activation, numerics.Minifloat)
    if hardware.kind != "bitserial" and not (
        isinstance(weight, numerics.IntFormat | numerics.Minifloat)
        and (isinstance(activation, numerics.IntFormat) or (floats and activation.signed and activation.subnormals))
    ):
        raise ValueError(f"a whole-network run takes INT or signed minifloat (with subnormals) activations and INT or "
                         f"minifloat weights (the stages the output rounder has); this network has {a_format} x "
                         f"{w_format}")  # fmt: skip
    if hardware.kind == "bitserial":
        if not bitserial_fits(numerics.get(a_format), numerics.get(w_format)):
            raise ValueError(f"the bit-serial unit takes signed INT activations and INT2..8 or FP4 E2M1 weights; "
                             f"this network has {a_format} x {w_format}")  # fmt: skip
        lanes = hardware.rows
        group = lanes * -(-k_max // lanes)  # one group holds the longest K: the unit's scale is per group
        return _may_stay_unelaborated(hw.RequantBitSerial(a_format, lanes=lanes, cols=hardware.cols, group=group,
                                                          out_bits=OUT_BITS, bias_bits=64,
                                                          multiplier_bits=MULTIPLIER_BITS, n_max=n_max))  # fmt: skip
    if not isinstance(hardware.accumulator, numerics.ExactAccumulator):
        raise ValueError("a whole-network run uses the exact accumulator")
    return _may_stay_unelaborated(hw.RequantArray(a_format, w_format, rows=hardware.rows, cols=hardware.cols,
                           dataflow=hardware.dataflow, double_buffer=hardware.dataflow == "ws", pipeline=1,
                           k_max=k_max, m_max=max(m_max, hardware.rows), n_max=n_max, out_bits=OUT_BITS,
                           multiplier_bits=MULTIPLIER_BITS, bias_bits=FLOAT_BIAS_BITS if floats else 32,
                           out_format=a_format if floats else None))  # fmt: skip


def _may_stay_unelaborated(design: Any) -> Any:
    """A network run may end before its design is built (a layer refused on the way; a numerics-only
    run), so Amaranth's never-elaborated warning would be noise, raised whenever the object is
    collected (an error under `pytest -W error`, in whichever test is running then)."""
    design._MustUse__silence = True
    return design


def run_network(name: str, model: nn.Module, fmt: str | None, images: np.ndarray, labels: np.ndarray | None,
                hardware: Hardware, build_root: Path, work: Path, simulate: bool = True, chunk: int = 64,
                progress: Callable[[int, int], None] | None = None,
                maxima: tuple[int, int, int] | None = None) -> NetworkRun:  # fmt: skip
    """Run `images` through the whole `model` on hardware (see the module docstring), `chunk`
    inputs per simulation; `maxima` (K, N, M) sizes the design (default: this network's)."""
    program = models.hardware_program(model)
    design, per_chunk = network_design(name, model, fmt, images, hardware, chunk, maxima)
    engine = _Engine(design, simulate, build_root, work)
    host: list[str] = []
    counts = {"host_differing": 0}

    brevitas_logits, hardware_logits = [], []
    starts = range(0, len(images), per_chunk)
    for index, start in enumerate(starts):
        batch = images[start : start + per_chunk]
        taps, logits = models.brevitas_taps(model, fmt, batch)
        net = _Network(model, batch, taps, engine, host, counts)
        out = program(net)
        brevitas_logits.append(logits)
        hardware_logits.append(out.values().reshape(len(batch), -1))
        if progress is not None:
            progress(index + 1, len(starts))
    theirs = np.concatenate(brevitas_logits).argmax(axis=1)
    ours = np.concatenate(hardware_logits).argmax(axis=1)
    accuracy = (lambda p: float((p == labels).mean())) if labels is not None else (lambda p: None)
    return NetworkRun(name, fmt, design.config.describe(), len(images), list(engine.records.values()), host,
                      accuracy(theirs), accuracy(ours), int((theirs == ours).sum()), simulate,
                      counts["host_differing"], engine.seconds, len(starts), design=design)  # fmt: skip


def network_design(name: str, model: nn.Module, fmt: str | None, images: np.ndarray, hardware: Hardware,
                   chunk: int, maxima: tuple[int, int, int] | None = None) -> tuple[Any, int]:  # fmt: skip
    """(the one design a network runs on, inputs per simulation), from a probe of the first input;
    every refusal (formats, scales, shapes) happens here, before anything runs. A chunk holds at
    most `chunk` inputs and `M_ROWS` rows of the largest layer (the player's stream depth)."""
    models.hardware_program(model)
    probe, _ = models.brevitas_taps(model, fmt, images[:1])
    if not probe:
        raise ValueError(f"{name} has no quantized layer (Brevitas QuantLinear / QuantConv2d) to run")
    rows_per_input = max(t.codes.input_codes.shape[0] for t in probe.values())
    per_chunk = max(1, min(chunk, len(images), M_ROWS // rows_per_input))
    rows = per_chunk * rows_per_input
    k_max, n_max, m_max = maxima or (None, None, rows)
    if m_max < rows:
        raise ValueError(f"{per_chunk} inputs per chunk need M up to {rows}; the design holds {m_max}")
    return requant_design(probe, hardware, m_max, k_max, n_max), per_chunk


def layer_energy_pj(config: hw.RequantConfig, m: int, k: int, n: int) -> float:
    """The GEMM's energy on the array (synth.energy) plus the output stage's per result."""
    return gemm_energy(config.array, m, k, n).total_pj + m * n * output_stage_pj(config)
