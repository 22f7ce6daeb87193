"""Energy: per-operation energies times operation counts from the cycle model (the form of
Accelergy: energy = sum of action counts x energy per action; Y. N. Wu, J. S. Emer and V. Sze,
"Accelergy: An Architecture-Level Energy Estimation Methodology for Accelerator Designs",
ICCAD 2019).

Assumptions (sources cited where they come from one; the rest are marked as assumptions):
- 45 nm, 0.9 V per-operation energies from M. Horowitz, "Computing's energy problem (and what we
  can do about it)", IEEE ISSCC 2014, Digest of Technical Papers, pp. 10-14,
  doi:10.1109/ISSCC.2014.6757323: int8 mult 0.2 pJ, int32 mult 3.1 pJ, int32 add 0.1 pJ,
  SRAM 64-bit read 10 / 20 / 100 pJ for 8 KB / 32 KB / 1 MB.
- A multiplier costs in proportion to the product of its significand widths (0.2 pJ x wa wb / 64:
  3.2 pJ at 32 x 32, Horowitz 3.1); an adder, a shifter stage and a register in proportion to
  their width (0.1 pJ x w / 32; a register bit write is taken as one adder bit, an assumption).
- A MAC = multiply the decoded significands + add the exponents (minifloats, posits) + align
  (one shifter stage per bit of the shift distance) + accumulate at the accumulator width + write
  the accumulator register. A float accumulator adds at the width of its datapath (significand
  + addend + 3 guard bits) with two shifters (align, normalize) of log2(width) stages each, and
  writes its format's bits; in blocked orders (MX blocks, weight-stationary folds) the products
  add exactly at the block's width and one float add per block is shared by its products.
- Operands move between 32 KB SRAM buffers and the array at 20 pJ per 64 bits (Horowitz), by
  dataflow: output-stationary reads A once per column fold and B once per row fold and writes
  each output once; weight-stationary reads each weight once, A once per column fold, and reads +
  writes the partial sums once per row fold (at the accumulator's width: 500+ bits for an exact
  MX accumulator, 32 for FP32). MX block scales add 8 bits per 32 elements.
- Technology scaling after A. Stillmaker and B. Baas, "Scaling equations for the accurate
  prediction of CMOS device performance from 180 nm to 7 nm", Integration, the VLSI Journal 58
  (2017) 74-81, doi:10.1016/j.vlsi.2017.02.002, as Accelergy applies them: x1 at 45 nm, 0.66 at
  32, 0.22 at 20, 0.17 at 16, 0.14 at 14, 0.094 at 7; 28 nm is interpolated log-linearly between
  32 and 20 nm (0.46, an assumption).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numerics
from hw import ArrayConfig, RequantConfig

SCALING = {45: 1.0, 32: 0.66, 28: 0.66 * (0.22 / 0.66) ** (4 / 12), 20: 0.22, 16: 0.17, 14: 0.14, 7: 0.094}
SRAM_PJ_PER_64_BITS = 20.0  # 32 KB buffer, 45 nm


def mult_pj(width_a: int, width_b: int) -> float:
    return 0.2 * width_a * width_b / 64


def add_pj(width: int) -> float:
    return 0.1 * width / 32


@dataclass(frozen=True)
class Energy:
    """Energy of one GEMM (or a sum of them) in pJ at the chosen node, by what spends it: the
    PEs' multipliers, their accumulation (align, add, register), operands moved from SRAM, and
    partial sums / results moved to and from SRAM."""

    macs: int
    multiply_pj: float
    accumulate_pj: float
    operands_pj: float
    partial_sums_pj: float
    node_nm: int

    @property
    def compute_pj(self) -> float:
        return self.multiply_pj + self.accumulate_pj

    @property
    def memory_pj(self) -> float:
        return self.operands_pj + self.partial_sums_pj

    @property
    def total_pj(self) -> float:
        return self.compute_pj + self.memory_pj

    @property
    def pj_per_mac(self) -> float:
        return self.total_pj / max(self.macs, 1)

    def breakdown(self) -> dict[str, float]:
        """Each part's share of the total."""
        parts = {"multiply": self.multiply_pj, "accumulate": self.accumulate_pj, "operands": self.operands_pj,
                 "partial_sums": self.partial_sums_pj}  # fmt: skip
        return {name: value / max(self.total_pj, 1e-30) for name, value in parts.items()}

    def __add__(self, other: Energy) -> Energy:
        return Energy(self.macs + other.macs, self.multiply_pj + other.multiply_pj,
                      self.accumulate_pj + other.accumulate_pj, self.operands_pj + other.operands_pj,
                      self.partial_sums_pj + other.partial_sums_pj, self.node_nm)  # fmt: skip


def scale_factor(node_nm: int) -> float:
    if node_nm not in SCALING:
        raise ValueError(f"technology node {node_nm} nm is not in the table; available: {sorted(SCALING)}")
    return SCALING[node_nm]


def multiply_pj(cfg: ArrayConfig) -> float:
    """The multiplier and, for floating formats, the exponent adder of one MAC, at 45 nm."""
    sa, sb = cfg.a_layout.sig_width + 1, cfg.b_layout.sig_width + 1
    energy = mult_pj(sa, sb)
    if _floating(cfg):
        energy += add_pj(max(cfg.a_layout.exp_width, cfg.b_layout.exp_width) + 1)
    return energy


def accumulate_pj(cfg: ArrayConfig) -> float:
    """Aligning and adding one product, and writing the register, at 45 nm (per MAC)."""
    sa, sb = cfg.a_layout.sig_width + 1, cfg.b_layout.sig_width + 1
    align = 0.0
    if _floating(cfg):
        span = (1 << cfg.a_layout.exp_width) + (1 << cfg.b_layout.exp_width)
        align = math.ceil(math.log2(span)) * add_pj(sa + sb)
    accumulator = cfg.accumulator
    if isinstance(accumulator, numerics.FloatAccumulator):
        if accumulator.order == "sequential":
            return float_add_pj(accumulator.format, sa + sb)
        block = accumulator.block or 1
        partial = cfg.partial_width(block)
        return align + 2 * add_pj(partial) + float_add_pj(accumulator.format, partial) / block
    width = cfg.acc_width if cfg.block is None else cfg.acc_width - 508  # MX: the block sum, scaled once per block
    return align + 2 * add_pj(width)  # the adder and the register write


def float_add_pj(fmt: numerics.Minifloat, addend_bits: int) -> float:
    """One addition into a float register: align and normalize shifters, the adder, the register."""
    width = fmt.man_bits + 1 + addend_bits + 3
    return (2 * math.ceil(math.log2(width)) + 1) * add_pj(width) + add_pj(fmt.bits)


def mac_pj(cfg: ArrayConfig) -> float:
    """One multiply-accumulate in the array's PEs, at 45 nm."""
    return multiply_pj(cfg) + accumulate_pj(cfg)


def _floating(cfg: ArrayConfig) -> bool:
    return cfg.a_layout.exp_width > 1 or cfg.b_layout.exp_width > 1


def gemm_energy(cfg: ArrayConfig, m: int, k: int, n: int, node_nm: int = 45) -> Energy:
    """Energy of an M x K @ K x N product on the array."""
    scale = scale_factor(node_nm)
    rows, cols = cfg.rows, cfg.cols
    a_bits, b_bits = cfg.a_kind.bits, cfg.b_kind.bits
    if cfg.block is not None:
        a_bits = b_bits = cfg.block.bits  # element bits plus the scale's share
    row_folds, col_folds, k_folds = -(-m // rows), -(-n // cols), -(-k // rows)
    out_bits = cfg.acc_width
    if cfg.dataflow == "os":
        operands = m * k * col_folds * a_bits + k * n * row_folds * b_bits
        partial_sums = m * n * out_bits
    else:
        operands = k * n * b_bits + m * k * col_folds * a_bits
        partial_sums = 2 * m * n * k_folds * out_bits
    macs = m * k * n
    per_bit = SRAM_PJ_PER_64_BITS / 64 * scale
    return Energy(macs, macs * multiply_pj(cfg) * scale, macs * accumulate_pj(cfg) * scale, operands * per_bit,
                  partial_sums * per_bit, node_nm)  # fmt: skip


def output_stage_pj(config: RequantConfig, node_nm: int = 45) -> float:
    """One result through the output stage (hw.RequantArray): the bias add at the accumulator's
    width, the multiply by the per-channel multiplier, the rounding add at the product's width and
    the code's register (its SRAM write stays counted at the accumulator's width, by gemm_energy)."""
    wide = config.sum_width
    return (add_pj(wide) + mult_pj(wide, config.multiplier_bits) + add_pj(config.product_width)
            + add_pj(config.out_bits)) * scale_factor(node_nm)  # fmt: skip
