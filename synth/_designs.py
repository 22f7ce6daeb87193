"""Design points the cost model knows: a MAC PE or a systolic array (optionally with its output
stage, `hw.RequantArray`), described by format names and options, buildable as hardware (for
synthesis) and measurable as format parameters (for the model).

Multipliers are LUT logic (bitfab's radix-4 Booth) so the LUT count is the cost of the format;
with DSPs each multiplier of <= 18 x 18 bits takes one DSP block instead (`dsp_blocks`). The
output stage's multiplier is yosys' own `*` (an array multiplier without DSPs).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import hw
import numerics
from hw import ArrayConfig

STAGE_FIELDS = ("output_stage", "out_bits", "bias_bits", "multiplier_bits", "n_max")
STAGE_FEATURES = ("stage_multiplier", "stage_lane", "stage_memory", "stage_unit")


@dataclass(frozen=True)
class DesignSpec:
    kind: str  # "pe", "array" or "bitserial" (rows = lanes, cols = PEs, k = group; b names the weight kinds)
    a: str
    b: str
    rows: int = 1
    cols: int = 1
    dataflow: str = "os"
    double_buffer: bool = False
    accumulator: str = "exact"  # numerics.parse_accumulator's spelling: exact, int{W} (wrap), int{W}_sat, fp32, ...
    k: int = 1024  # PE: terms per dot product; array: k_max
    m_max: int = 64
    pipeline: int = 1  # registers inside each PE (the cost model was calibrated at 1)
    # array only: an output stage on every result lane (hw.RequantArray), with its widths (the
    # defaults are bitfab network's: int32 codes, 32-bit bias, 16-bit multiplier) and the channels
    # it serves at most (its parameter memory holds ceil(n_max / cols) rows)
    output_stage: bool = False
    out_bits: int = 32
    bias_bits: int = 32
    multiplier_bits: int = 16
    n_max: int = 64
    # array only, with DSPs: two PEs of a row on one DSP multiplier (hw.ArrayConfig's dsp_pack)
    dsp_pack: bool = False
    # output-stationary array on ECP5 DSPs: each product on an instantiated MULT18X18D with its input and
    # output registers in use (hw.ArrayConfig's dsp_primitive="ecp5"; yosys' inference leaves them off)
    dsp_registers: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("pe", "array", "bitserial"):
            raise ValueError(f"kind must be 'pe', 'array' or 'bitserial', got {self.kind!r}")
        if self.kind == "array":
            for name, value in (("rows", self.rows), ("cols", self.cols)):
                if not 2 <= value <= 64:
                    raise ValueError(f"{name} must be between 2 and 64 (rows = cols = 1 is a single PE), got {value}")
        elif self.kind == "pe" and (self.rows, self.cols) != (1, 1):
            raise ValueError(f"a PE has rows = cols = 1, got {self.rows}x{self.cols}")
        elif self.kind == "bitserial" and not (1 <= self.rows <= 64 and 1 <= self.cols <= 64):
            raise ValueError(f"lanes and PEs must be between 1 and 64, got {self.rows} lanes x {self.cols} PEs")
        if self.k < 1 or self.m_max < 1:
            raise ValueError(f"k_max and m_max must be positive, got k_max={self.k}, m_max={self.m_max}")
        numerics.parse_accumulator(self.accumulator)
        if self.output_stage:
            self._check_stage()
        if self.dsp_pack:
            if self.kind != "array":
                raise ValueError(f"DSP packing pairs an array's columns: it needs kind 'array', got {self.kind!r}")
            self.config()  # hw.ArrayConfig checks the formats, the dataflow and the fit in one DSP
        if self.dsp_registers:
            if self.kind != "array":
                raise ValueError(f"DSP registers are built into an array's PEs: it needs kind 'array', "
                                 f"got {self.kind!r}")  # fmt: skip
            self.config()  # hw.ArrayConfig checks the dataflow and the operands' fit

    def _check_stage(self) -> None:
        if self.kind != "array":
            raise ValueError(f"an output stage needs kind 'array', got {self.kind!r}")
        if isinstance(self._accumulator(), numerics.FloatAccumulator):
            raise ValueError(f"the output stage takes an exact or int{{W}} accumulator, got {self.accumulator!r}")
        hw.check_stage_widths(self.out_bits, self.bias_bits, self.multiplier_bits, self.n_max)

    def label(self) -> str:
        if self.kind == "bitserial":
            return f"bit-serial {self.cols} PEs x {self.rows} lanes {self.a} act"
        if self.kind == "pe":
            return f"PE {self.a}x{self.b} {self.accumulator}"
        db = "-db" if self.double_buffer else ""
        stage = (f", stage int{self.out_bits} b{self.bias_bits} m{self.multiplier_bits} n{self.n_max}"
                 if self.output_stage else "")  # fmt: skip
        packed = ", dsp-packed" if self.dsp_pack else ""
        packed += ", MULT18X18D registers" if self.dsp_registers else ""
        return f"{self.rows}x{self.cols} {self.dataflow}{db} {self.a}x{self.b} {self.accumulator}{stage}{packed}"

    def to_json(self) -> dict[str, Any]:
        """The fields; without the output stage's when there is none, nor dsp_pack / dsp_registers when
        off (so older records read the same)."""
        fields = asdict(self)
        if not self.output_stage:
            for name in STAGE_FIELDS:
                del fields[name]
        for flag in ("dsp_pack", "dsp_registers"):
            if not fields[flag]:
                del fields[flag]
        return fields

    def _accumulator(self) -> numerics.ExactAccumulator | numerics.FixedAccumulator | numerics.FloatAccumulator:
        return numerics.parse_accumulator(self.accumulator)

    def build(self, dsp: bool = False) -> Any:
        """The hardware: LUT (Booth) multipliers, or `*` for synthesis to infer DSPs (with
        `dsp_registers`, instantiated ECP5 MULT18X18Ds instead)."""
        if self.dsp_pack and not dsp:
            raise ValueError(f"{self.label()} puts two products on each DSP multiplier: build it with DSPs")
        if self.dsp_registers and not dsp:
            raise ValueError(f"{self.label()} puts its products on ECP5 DSP blocks: build it with DSPs")
        if self.kind == "bitserial":
            return hw.BitSerialArray(self.a, lanes=self.rows, cols=self.cols, group=self.k)
        if self.kind == "pe":
            return hw.MacPE(self.a, self.b, self._accumulator(), k_terms=self.k, pipeline=self.pipeline, use_dsp=dsp)
        options = {"rows": self.rows, "cols": self.cols, "dataflow": self.dataflow, "double_buffer": self.double_buffer,
                   "pipeline": self.pipeline, "dsp_budget": None if dsp else 0, "k_max": self.k,
                   "m_max": self.m_max, **({"dsp_pack": True} if self.dsp_pack else {}),
                   **({"dsp_primitive": "ecp5"} if self.dsp_registers else {})}  # fmt: skip
        if self.output_stage:
            return hw.RequantArray(self.a, self.b, self._accumulator(), out_bits=self.out_bits,
                                   bias_bits=self.bias_bits, multiplier_bits=self.multiplier_bits, n_max=self.n_max,
                                   **options)  # fmt: skip
        return hw.SystolicArray(self.a, self.b, self._accumulator(), **options)

    def config(self) -> ArrayConfig:
        """The array configuration (a PE is modelled as the 1 x 1 core of one)."""
        return ArrayConfig.build(self.a, self.b, self._accumulator(), rows=max(self.rows, 2), cols=max(self.cols, 2),
                                 dataflow=self.dataflow, double_buffer=self.double_buffer, pipeline=self.pipeline,
                                 k_max=self.k, m_max=self.m_max, dsp_pack=self.dsp_pack,
                                 dsp_primitive="ecp5" if self.dsp_registers else None)  # fmt: skip

    def stage_config(self) -> hw.RequantConfig:
        """The output stage's configuration (its array's, and its widths)."""
        if not self.output_stage:
            raise ValueError(f"{self.label()} has no output stage")
        return hw.RequantConfig(self.config(), self.out_bits, self.bias_bits, self.multiplier_bits, self.n_max)

    @property
    def pes(self) -> int:
        return self.rows * self.cols

    def dsp_blocks(self) -> int:
        """DSP blocks with DSP inference on: one per PE multiplier that fits 18 x 18, one per PE pair
        when DSP-packed (the bit-serial unit has no multipliers); the output stage's (acc + bias) x
        multiplier product, split into 18 x 18 pieces, on every lane (the unsigned multiplier is one
        bit wider signed)."""
        pes = self.pes if "multiplier" in self.dsp_features() else 0
        pes //= 2 if self.dsp_pack else 1  # two PEs to a DSP multiplier
        if not self.output_stage:
            return pes
        pieces = math.ceil(self.stage_config().sum_width / 18) * math.ceil((self.multiplier_bits + 1) / 18)
        return pes + self.cols * pieces

    def dsp_features(self) -> tuple[str, ...]:
        """The features whose multipliers become DSP blocks when DSPs are used."""
        if self.kind == "bitserial":
            return ()
        cfg = self.config()
        fits = cfg.a_layout.sig_width + 1 <= 18 and cfg.b_layout.sig_width + 1 <= 18
        return ("multiplier",) * fits + ("stage_multiplier",) * self.output_stage


def _decoder_cost(fmt: Any) -> float:
    """A decoder's logic, in rough 'bit-operations': none for integers, the exponent compare and
    hidden bit of a minifloat, a posit's regime count and shift (n log n), OliVe's pair logic."""
    if isinstance(fmt, numerics.OVPFormat):
        return 4.0 * fmt.element_bits
    if isinstance(fmt, numerics.IntFormat):
        return 0.0
    if isinstance(fmt, numerics.Posit):
        return fmt.n * math.ceil(math.log2(fmt.n))
    return float(fmt.exp_bits + fmt.man_bits)


def features(spec: DesignSpec) -> dict[str, float]:
    """What the LUT count scales with. Per PE: the multiplier's partial-product bits, the aligner
    (aligned width x shift stages), the accumulator or partial-sum adder, a float PE's fixed logic
    (sign, zero and subnormal handling) and its special values (NaN/Inf flags); per edge lane: a
    decoder; per array: the fold controller (one), the output side (OS shadow registers, WS column
    accumulators), the stationary weights (WS, two per PE when double-buffered) and the MX block
    scale shifts (once per column in WS, per PE in OS). The bit-serial unit has its own three: per
    lane and PE the term adder (activation width + 4), per PE the group and scaled accumulators,
    one controller. The output stage has four (`_stage_features`)."""
    core = _bitserial_features(spec) if spec.kind == "bitserial" else _core_features(spec)
    return {**core, **_stage_features(spec), **_dsp_mode_features(spec)}


def _dsp_mode_features(spec: DesignSpec) -> dict[str, float]:
    """Terms only the DSP fit uses (synth.cost.DSP_FEATURES): once the multipliers are DSP blocks,
    an array's fixed logic (operand feeders, the weight loader, the result path, beyond the
    log2(k_max) controller term) and, per row of a weight-stationary array, its activation lane
    (feeder and skew line) stand out; beside a LUT multiplier they vanish in the fit. DSP packing
    adds the logic that splits each shared product in two."""
    array = spec.kind == "array"
    packing = 0.0
    if spec.dsp_pack:  # per pair: splitting the packed product (the high half's correction adder), the
        cfg = spec.config()  # packed weight's short subtraction and the partner's product register
        packing = spec.pes / 2 * (cfg.pack_shift + cfg.packed_width)
    return {"array": float(array), "ws_rows": float(spec.rows) if array and spec.dataflow == "ws" else 0.0,
            "dsp_pack": packing}  # fmt: skip


def _stage_features(spec: DesignSpec) -> dict[str, float]:
    """The output stage (hw.RequantArray), on each of the C result lanes: the (acc + bias) x
    multiplier product's partial-product bits (yosys' array multiplier, not bitfab's Booth: its own
    coefficient); the rest of the lane at the product's width w: the rounding shifter (log2 w
    stages) and four rows of adders and compares (bias add, half-lsb add, tie mask, zero point) plus
    the clamp and register at out_bits. Per stage: the parameter memory's read multiplexer (LUT RAM
    holds 16 words per cell on ECP5: one more mux input per bit for every further 16 rows; the RAM
    cells themselves count as LUT RAM, not LUTs) and one controller (fold counter, settings, and the
    shift's mask and half-lsb decoders, which yosys shares between the lanes). On single lanes alone
    (48 width combinations, ECP5) the two lane terms fit within 2% MAPE; in the arrays the ECP5 fit
    gives the lane's logic beyond the multiplier to the multiplier term. Every RequantArray run so
    far was mapped by plain `abc` (ABC9 fails on them, see synth._yosys), which the stage is
    calibrated to."""
    if not spec.output_stage:
        return dict.fromkeys(STAGE_FEATURES, 0.0)
    cfg = spec.stage_config()
    width = cfg.product_width
    depth = max(2, cfg.folds_max)
    return {
        "stage_multiplier": float(spec.cols * cfg.sum_width * cfg.multiplier_bits),
        "stage_lane": float(spec.cols * ((width + 1) * (math.ceil(math.log2(width + 1)) + 4) + cfg.out_bits)),
        "stage_memory": float(spec.cols * (cfg.bias_bits + cfg.multiplier_bits) * (math.ceil(depth / 16) - 1)),
        "stage_unit": 1.0,
    }


def _core_features(spec: DesignSpec) -> dict[str, float]:
    cfg = spec.config()
    sa, sb = cfg.a_layout.sig_width + 1, cfg.b_layout.sig_width + 1
    floating = _is_float(cfg)
    span = (1 << cfg.a_layout.exp_width) + (1 << cfg.b_layout.exp_width) - 2 if floating else 0
    ws = spec.kind == "array" and spec.dataflow == "ws"
    mx = cfg.block is not None
    float_acc = cfg.accumulator if isinstance(cfg.accumulator, numerics.FloatAccumulator) else None
    if float_acc is not None:
        return _float_features(spec, cfg, float_acc, sa, sb, span)
    aligned = min(cfg.acc_width, sa + sb + span)
    element_acc = cfg.acc_width - (508 if mx else 0)
    if mx:  # WS: a column sums a block at element width; OS: each PE holds the wide accumulator
        pe_acc = element_acc if ws else cfg.acc_width
    else:
        pe_acc = _ws_psum(cfg) if ws else cfg.acc_width
    edges = 2 if spec.kind == "pe" else spec.rows + spec.cols
    dec = (_decoder_cost(cfg.a_kind) + _decoder_cost(cfg.b_kind)) / 2
    array = 0.0 if spec.kind == "pe" else 1.0
    return {
        "pe": float(spec.pes),
        "multiplier": spec.pes * sa * sb,
        "aligner": spec.pes * aligned * math.ceil(math.log2(span + 1)) if span else 0.0,
        "accumulator": spec.pes * pe_acc,
        "float_pe": spec.pes * float(floating),
        "specials": spec.pes * max(_specials(cfg.a_format), _specials(cfg.b_format)),
        "decoders": edges * dec,
        "control": array * (1 + math.log2(spec.k)),
        "output": array * spec.cols * cfg.acc_width * (1 if ws else spec.rows),
        "weights": spec.pes * sb * (2 if spec.double_buffer else 1) if ws else 0.0,
        "mx_shift": (spec.cols if ws else spec.pes) * cfg.acc_width * 9 if mx else 0.0,
        "float_add": 0.0,
        "bs_lane": 0.0,
        "bs_pe": 0.0,
        "bs_unit": 0.0,
    }


def _float_features(spec: DesignSpec, cfg: ArrayConfig, acc: numerics.FloatAccumulator, sa: int, sb: int,
                    span: int) -> dict[str, float]:  # fmt: skip
    """A float accumulator: one float adder per PE (output-stationary, and the MAC PE) or per
    column (weight-stationary, at the output buffer), datapath = significand + addend + 3 guard
    bits, with align and normalize shifters of log2(datapath) stages; blocked orders first sum
    products exactly (the MX block register, the weight-stationary column), aligned as today."""
    ws = spec.kind == "array" and spec.dataflow == "ws"
    p = acc.format.man_bits + 1
    if acc.order == "sequential":
        addend, pe_acc, aligner = sa + sb, float(acc.format.bits), 0.0
    else:
        addend = cfg.partial_width(acc.block or 1)
        pe_acc = _ws_psum(cfg) if ws else float(addend + acc.format.bits)
        aligner = spec.pes * min(addend, sa + sb + span) * math.ceil(math.log2(span + 1)) if span else 0.0
    width = p + addend + 3
    # a window of N bits cuts both operands after the alignment shifter: the add and the rounding
    # shrink to N + 3 bits, the shifter stays (half the adder's logic each, to first order)
    cut = width if acc.window is None else min(width, acc.window + 3)
    if acc.order != "sequential" and hw.compact_fits(acc):
        # the lean IEEE datapath: the exact sum rounded over its own width (one window shift), then
        # a p + 3 bit add with two shifters (align, round)
        float_add = (addend * math.ceil(math.log2(addend)) + 2 * (p + 3) * math.ceil(math.log2(p + 3))) / 2
    else:
        float_add = (width * math.ceil(math.log2(width)) + cut * math.ceil(math.log2(cut))) / 2
    shared = spec.kind == "array" and cfg.shares_block_adder
    if shared:  # the row's AND-OR mux of block sums, scales and running sums (a bit: ~1/6 of a shifter bit)
        float_add += (spec.cols - 1) * (addend + 16 + acc.format.bits) / 6
    # one adder per weight-stationary column, per output-stationary PE, or per PE row where the
    # row shares its MX block adder
    adders = spec.cols if ws else spec.rows if shared else spec.pes
    float_add *= adders
    edges = 2 if spec.kind == "pe" else spec.rows + spec.cols
    array = 0.0 if spec.kind == "pe" else 1.0
    return {
        "pe": float(spec.pes),
        "multiplier": spec.pes * sa * sb,
        "aligner": aligner,
        "accumulator": spec.pes * pe_acc,
        "float_pe": spec.pes * float(_is_float(cfg)),
        "specials": spec.pes * max(_specials(cfg.a_format), _specials(cfg.b_format)),
        "decoders": edges * (_decoder_cost(cfg.a_kind) + _decoder_cost(cfg.b_kind)) / 2,
        "control": array * (1 + math.log2(spec.k)),
        "output": array * spec.cols * acc.format.bits * (1 if ws else spec.rows),
        "weights": spec.pes * sb * (2 if spec.double_buffer else 1) if ws else 0.0,
        "mx_shift": 0.0,
        "float_add": float_add,
        "bs_lane": 0.0,
        "bs_pe": 0.0,
        "bs_unit": 0.0,
    }


def _bitserial_features(spec: DesignSpec) -> dict[str, float]:
    a_format = numerics.get(spec.a)
    cfg = hw.BitSerialConfig(a_format, spec.rows, spec.cols, spec.k)  # type: ignore[arg-type]
    zero = dict.fromkeys(("pe", "multiplier", "aligner", "accumulator", "float_pe", "specials", "decoders", "control",
                          "output", "weights", "mx_shift", "float_add"), 0.0)  # fmt: skip
    return {**zero, "bs_lane": spec.rows * spec.cols * (a_format.bits + 4), "bs_pe": spec.cols * cfg.acc_width,
            "bs_unit": 1.0}  # fmt: skip


def _specials(fmt: Any) -> float:
    """0 for finite formats, integers and posits (NaR is one code, no flag logic beyond the
    decoder), 1 for minifloats with NaN only (E4M3), 2 for IEEE NaN and Inf."""
    specials = getattr(fmt, "specials", None)
    if specials is None:
        return 0.0
    return {"FINITE": 0.0, "IEEE": 2.0}.get(specials.name, 1.0)


def _ws_psum(cfg: ArrayConfig) -> float:
    """A weight-stationary PE adds into a partial sum as wide as its row needs (the widths grow
    down the column); the mean over rows."""
    base = cfg.a_layout.sig_width + cfg.b_layout.sig_width + 2
    return base + math.log2(cfg.rows) / 2 + 1


def _is_float(cfg: ArrayConfig) -> bool:
    return not (isinstance(cfg.a_format, numerics.IntFormat) and isinstance(cfg.b_format, numerics.IntFormat))
