"""Mutation check: single-site bugs planted in hw/ must each make a co-simulation fail.

    python scripts/mutate.py [--only NAME ...] [--jobs 2] [--list]

Each mutant is one textual change to one generator source (it must occur exactly once), run
against the narrowest co-simulation test that should catch it, in a copy of the repository with
its own Verilator build cache (nothing here is touched). A mutant is killed when its tests fail;
one that passes them (survived) or that the tests cannot run (error) fails the check: the suite
has a blind spot there, or the mutant no longer applies. Exit status 0 only when all are killed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COSIM = "tests/sim/test_cosim.py"
SYSTOLIC = "tests/sim/test_systolic_cosim.py"
ROUND = "tests/sim/test_round_cosim.py"
FLOAT_MAC = "tests/sim/test_float_mac_cosim.py"
FLOAT_ADD = "tests/hw/test_float_acc.py::test_float_add_matches_the_exact_reference"
FLOAT_ARRAY = "tests/sim/test_float_array_cosim.py::test_float_gemms_are_bit_exact_and_cycle_exact"
PACK = "tests/sim/test_dsp_pack_cosim.py::test_every_activation_meets_every_weight_pair_on_one_multiplier"
ECP5_DSP = "tests/sim/test_dsp_primitive_cosim.py::test_every_operand_pair_through_the_dsp_model"
# K = 1 folds hold each operand at the edge between fires, so only folds with K > 1 see a DSP a cycle off
ECP5_DSP_FOLDS = "tests/sim/test_dsp_primitive_cosim.py::test_dsp_primitive_gemms_fold_and_reach_their_extremes"
FLOAT_FAST = (
    f"{FLOAT_MAC}::test_targeted_specials_and_zeros",
    f"{FLOAT_MAC}::test_fp16_accumulator_over_every_e5m2_pair",
)


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str  # a generator source, relative to the repository root
    old: str  # occurs exactly once in it
    new: str
    tests: tuple[str, ...]  # pytest node ids that must fail
    why: str


MUTANTS = (
    Mutant("mac-nan-not-sticky", "hw/_mac.py", "self.nan.eq(keep_nan | (en2 & nan2))", "self.nan.eq(en2 & nan2)",
           (f"{COSIM}::test_mac_over_every_operand_pair[fp8_e4m3-fp8_e4m3]",),
           "the NaN flag forgets a NaN product once the next product arrives"),
    Mutant("mac-acc-one-bit-narrow", "hw/_mac.py", "self.acc_width = self.accumulator.required_width(a, b, k_terms)",
           "self.acc_width = self.accumulator.required_width(a, b, k_terms) - 1",
           (f"{COSIM}::test_mac_over_every_operand_pair[int8-int8]",),
           "the exact accumulator is one bit short of k_terms extreme products"),
    Mutant("mac-clear-needs-en", "hw/_mac.py", "with m.If(en2 | clear2):\n            m.d.sync += self.acc.eq(total)",
           "with m.If(en2):\n            m.d.sync += self.acc.eq(total)",
           (f"{COSIM}::test_mac_over_every_operand_pair[int8-int8]",),
           "a clear on a disabled cycle is lost"),
    Mutant("decoder-no-subnormals", "hw/_decode.py", "hidden = (field != 0) if fmt.subnormals else Const(1, 1)",
           "hidden = Const(1, 1)", (f"{COSIM}::test_every_decoder_over_every_code",),
           "minifloat subnormals decode with a hidden one"),
    Mutant("booth-negation", "hw/_pe.py", "neg = high & ~(mid & low)", "neg = high & ~mid",
           (f"{COSIM}::test_lut_booth_multiplier_over_every_operand_pair[int8-int8]",),
           "a radix-4 Booth digit of -1 is taken as +1"),
    Mutant("os-fold-gap-short", "hw/_array_os.py", "gap.eq(r + c - 3)", "gap.eq(r + c - 4)",
           (f"{SYSTOLIC}::test_gemms_are_bit_exact_and_cycle_exact[int4xint4-4x4-os-pipeline1]",),
           "the output-stationary fold controller starts the next fold a cycle early"),
    Mutant("os-acc-one-bit-narrow", "hw/_array_os.py",
           "self.accs = [[Signal(sum_layout(config.acc_width), name",
           "self.accs = [[Signal(sum_layout(config.acc_width - 1), name",
           (f"{SYSTOLIC}::test_gemms_are_bit_exact_and_cycle_exact[int8xint8-8x8-os-pipeline1]",),
           "the output-stationary accumulators are one bit short of k_max extreme products"),
    Mutant("ws-deskew-short", "hw/_array_ws.py", 'skew_line(m, f"deskew{j}", psums[r - 1][j], c - 1 - j)',
           'skew_line(m, f"deskew{j}", psums[r - 1][j], max(c - 2 - j, 0))',
           (f"{SYSTOLIC}::test_gemms_are_bit_exact_and_cycle_exact[int8xint8-4x4-ws]",),
           "the weight-stationary de-skew of the column sums is one register short"),
    Mutant("ws-partial-one-bit-narrow", "hw/_array_ws.py",
           'Signal(sum_layout(cfg.partial_width(i + 1)), name=f"psum_{i}_{j}")',
           'Signal(sum_layout(cfg.partial_width(i + 1) - 1), name=f"psum_{i}_{j}")',
           (f"{SYSTOLIC}::test_gemms_are_bit_exact_and_cycle_exact[int8xint8-4x4-ws]",),
           "a weight-stationary column partial sum is one bit short of R extreme products"),
    Mutant("ws-weight-pause-ignored", "hw/_array_ws.py",
           "m.d.comb += starved.eq((loader.active | loader.begin) & racing & ~top.b.valid)",
           "m.d.comb += starved.eq(0)",
           (f"{SYSTOLIC}::test_stalls_and_gaps_cost_cycles_but_change_no_result[ws-db]",),
           "a double-buffered weight-stationary array streams on while a weight beat is late"),
    Mutant("os-mx-a-nan-scale-ignored", "hw/_array_os.py", "nan_scale = (a_scale == 0xFF) | (b_scale == 0xFF)",
           "nan_scale = b_scale == 0xFF", (f"{SYSTOLIC}::test_mx_nan_scales_make_their_outputs_nan[os]",),
           "an E8M0 NaN scale (0xFF) on A does not make the output NaN (output-stationary)"),
    Mutant("ws-mx-b-nan-scale-ignored", "hw/_array_ws.py", "nan_scale = (a_scale == 0xFF) | (b_scale == 0xFF)",
           "nan_scale = a_scale == 0xFF",
           (f"{SYSTOLIC}::test_mx_nan_scales_make_their_outputs_nan[ws]",),
           "an E8M0 NaN scale (0xFF) on B does not make the output NaN (weight-stationary)"),
    Mutant("round-ties-away", "hw/_round.py", "((remainder == half) & kept[0])", "(remainder == half)",
           (f"{ROUND}::test_representative_formats",), "the output rounder breaks ties away from zero, not to even"),
    Mutant("round-sticky-dropped", "hw/_round.py",
           "remainder.eq(value & ((Const(1, width + 1) << shift) - 1)),",
           "remainder.eq(value & ((Const(1, width + 1) << shift) - 2)),",
           (f"{ROUND}::test_representative_formats",), "the output rounder's sticky bits miss the lowest one"),
    Mutant("round-overflow-not-nan", "hw/_round.py", "nan_on_overflow = not self.saturate and inf_mag < 0",
           "nan_on_overflow = False", (f"{ROUND}::test_representative_formats",),
           "an E4M3-like output overflows to its largest value instead of NaN"),
    Mutant("os-mx-scale-off-by-one", "hw/_array_os.py", "m.d.comb += shift.eq(a_scale + b_scale)",
           "m.d.comb += shift.eq(a_scale + b_scale + 1)",
           (f"{SYSTOLIC}::test_mx_nan_scales_make_their_outputs_nan[os]",),
           "the output-stationary block scale shift is one too large"),
    Mutant("float-sticky-dropped", "hw/_float_acc.py", "Cat(shifted[far] | (shifted[:far] != 0), shifted[far + 1 :])",
           "Cat(shifted[far], shifted[far + 1 :])", FLOAT_FAST,
           "the float adder drops the bits shifted out below its guard bits instead of ORing them into sticky"),
    Mutant("float-ties-to-odd", "hw/_float_acc.py", "((remainder == half) & kept[0])",
           "((remainder == half) & ~kept[0])", FLOAT_FAST, "the float adder rounds ties to odd, not to even"),
    Mutant("float-inf-minus-inf-is-inf", "hw/_float_acc.py",
           "nan.eq(acc.nan | term.nan | (acc.inf & term.inf & (acc.neg != term.neg)))",
           "nan.eq(acc.nan | term.nan)", FLOAT_FAST, "Inf + -Inf in the float accumulator gives Inf, not NaN"),
    Mutant("float-overflow-saturates", "hw/_float_acc.py",
           "too_large = Mux(negative, sign_bit | fmt._max_mag, fmt._max_mag) if saturate or toward_zero else",
           "too_large = Mux(negative, sign_bit | fmt._max_mag, fmt._max_mag) if True else", FLOAT_FAST,
           "a float sum beyond the range stops at the largest finite instead of becoming Inf"),
    Mutant("float-negative-zero", "hw/_float_acc.py", "inf_neg=inf_neg, signed_zero=False)",
           "inf_neg=inf_neg, signed_zero=True)", FLOAT_FAST,
           "a negative float sum that rounds to zero stays -0, where numerics reads +0"),
    Mutant("compact-sticky-dropped", "hw/_float_compact.py", "y_sig) >> far) | y_sticky)", "y_sig) >> far))",
           (f"{FLOAT_ADD}[fp16]",), "the lean adder drops the bits shifted out below its guard bits"),
    Mutant("compact-ties-to-odd", "hw/_float_compact.py", "up = window[0] & (sticky | kept[0])",
           "up = window[0] & (sticky | ~kept[0])", (f"{FLOAT_ADD}[fp16]",),
           "the lean datapath rounds ties to odd, not to even"),
    Mutant("compact-no-subnormal-floor", "hw/_float_compact.py", "window_top.eq(Mux(floor > top, floor, top))",
           "window_top.eq(top)", (f"{FLOAT_ADD}[fp16]",),
           "the lean rounding keeps p bits below 2**emin too (no subnormal quantum)"),
    Mutant("os-mx-short-block-no-wait", "hw/_array_os.py", "(final_start != 0) & (last_length < c)", "0",
           (f"{FLOAT_ARRAY}[mxfp8_e4m3-fp32-2x2-os-p1]",),
           "a short last MX block's ends meet the previous block's at a row's shared block adder"),
    Mutant("output-stage-no-low-bound", "hw/_output_stage.py",
           "bounded = Mux(total < (self.low << shift), self.low << shift, bounded)", "bounded = bounded",
           ("tests/sim/test_output_stage_cosim.py::test_output_stage_matches_numerics_bit_for_bit",),
           "the output stage's ReLU / clamp lets values below its low bound through"),
    Mutant("requant-array-ties-up", "hw/_requant_array.py", "floor - (tie & floor[0]) + zero_point",
           "floor + zero_point",
           ("tests/sim/test_requant_array_cosim.py::test_the_output_stage_behind_the_array_rounds_every_boundary_"
            "like_numerics[ws]",),
           "the array's output stage rounds ties up instead of to even"),
    Mutant("requant-fold-wraps-late", "hw/_requant_array.py", "last_fold.eq(base + cols >= n_size)",
           "last_fold.eq(base + cols > n_size)",
           ("tests/sim/test_requant_array_cosim.py::test_the_output_stage_behind_the_array_rounds_every_boundary_"
            "like_numerics[os]",),
           "the stage's fold counter misses the last fold of an output-stationary tile row (N a multiple of C)"),
    Mutant("requant-float-negative-zero", "hw/_requant_array.py", "Mux(sign, -1 - magnitude, magnitude)",
           "Mux(sign, -magnitude, magnitude)",
           ("tests/sim/test_requant_float_cosim.py::test_minifloat_outputs_round_every_tie_and_saturate_like_numerics"
            "[fp8_e4m3-ws]",),
           "a minifloat stage's clamp takes -0 for +0, so ReLU lets negative zeros through"),
    Mutant("requant-mx-scale-unshifted", "hw/_requant_array.py",
           "Mux(quantizer.scale == 0, 0, quantizer.scale - shift)", "quantizer.scale",
           ("tests/sim/test_requant_float_cosim.py::test_mx_outputs_collect_their_blocks_across_folds_and_equal_"
            "numerics[mxfp8_e4m3-ws-64]",),
           "the MX stage's block scale ignores the layer's shift"),
    Mutant("requant-mx-stale-row-buffer", "hw/_requant_array.py", "earlier.append([Mux(position > q, read.data[j], 0)",
           "earlier.append([Mux(1, read.data[j], 0)",
           ("tests/sim/test_requant_float_cosim.py::test_mx_outputs_collect_their_blocks_across_folds_and_equal_"
            "numerics[mxint8-ws-40]",),
           "a partial last MX block takes the row buffer's stale values from an earlier block"),
    Mutant("output-stage-bias-dropped", "hw/_output_stage.py", "(self.acc + self.bias) * self.multiplier",
           "self.acc * self.multiplier",
           ("tests/sim/test_output_stage_cosim.py::test_output_stage_matches_numerics_bit_for_bit",),
           "the output stage ignores the bias"),
    Mutant("mx-scale-no-low-clamp", "hw/_mx_quantizer.py", "Mux(raw < self.scale_low, self.scale_low,",
           "Mux(0, self.scale_low,",
           ("tests/sim/test_mx_quantizer_cosim.py::test_mx_quantizer_matches_numerics_bit_for_bit",),
           "the MX quantizer lets a tiny block's shared exponent fall below E8M0's 2**-127"),
    Mutant("float-window-ties-away", "hw/_float_acc.py", "kept = kept + (guard & (rest | kept[0]))",
           "kept = kept + guard",
           (f"{FLOAT_MAC}::test_float_accumulators_over_every_operand_pair[int8-fp16_w8r-p1]",),
           "a rounded alignment window breaks ties away from zero, not to even"),
    Mutant("os-fold-starts-regardless", "hw/_array_os.py", "may_enter = (k != 0) | self.may_start",
           "may_enter = (k != 0) | 1", (f"{SYSTOLIC}::test_stalls_and_gaps_cost_cycles_but_change_no_result[os]",),
           "an output-stationary fold starts while the shadows are full, so a finished fold is overwritten"),
    Mutant("os-fold-starts-over-two", "hw/_array_os.py", "((in_flight_next == 1) & (remaining_next == 0))",
           "(remaining_next == 0)", (f"{SYSTOLIC}::test_output_stationary_folds_shorter_than_a_drain[2]",),
           "an output-stationary fold starts while two finished folds wait for the shadows"),
    Mutant("ecp5-dsp-operands-late", "hw/_array_os.py", "ecp5_next = (a_next.sig, b_next.sig)",
           "ecp5_next = (a_regs[i][j].sig, b_regs[i][j].sig)", (ECP5_DSP_FOLDS,),
           "the MULT18X18D registers the operands its PE's registers already hold: products a cycle late"),
    Mutant("ecp5-dsp-no-output-register", "hw/_pe.py", "output_register=pipeline >= 1",
           "output_register=pipeline >= 2", (f"{ECP5_DSP}[int8xint8-int32-pipeline1]",),
           "the MULT18X18D's output register is left off where the fabric's product register was"),
    Mutant("ecp5-dsp-model-input-unregistered", "sim/primitives/MULT18X18D.v",
           'wire [17:0] a_in = REG_INPUTA_CLK == "NONE" ? a : a_reg;', "wire [17:0] a_in = a;", (ECP5_DSP_FOLDS,),
           "the simulation model ignores REG_INPUTA_CLK: A reaches the multiplier a cycle early"),
    Mutant("pack-no-borrow", "hw/_pe.py", "high.eq(both[shift:].as_signed() + both[shift - 1])",
           "high.eq(both[shift:].as_signed())", (f"{PACK}[int4xint4-pipeline0]",),
           "a DSP-packed pair's high product ignores the borrow of a negative low product"),
    Mutant("pack-odd-lane-late", "hw/_array_parts.py", "lane + 1 - (early_odd_lanes and lane % 2)", "lane + 1",
           ("tests/sim/test_dsp_pack_cosim.py::test_packed_gemms_fold_and_reach_their_extremes",),
           "a packed pair's second weight arrives a cycle after the activation it shares"),
    Mutant("pack-partner-undelayed", "hw/_array_os.py", 'term = _delayed(m, f"pe_{i}_{j}", partner)',
           "term = partner", (f"{PACK}[int4xint4-pipeline0]",),
           "a packed pair's second product reaches its accumulator a cycle early"),
)  # fmt: skip


def apply(mutant: Mutant, tree: Path) -> None:
    """Plant `mutant` in the copy at `tree`; it must match its source exactly once."""
    path = tree / mutant.path
    text = path.read_text()
    count = text.count(mutant.old)
    if count != 1:
        raise ValueError(f"{mutant.name}: {mutant.path} holds its site {count} times, expected once: {mutant.old!r}")
    path.write_text(text.replace(mutant.old, mutant.new))


def copy_repository(destination: Path) -> None:
    """The files git tracks or would track (untracked, not ignored), as they are in the working tree."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            capture_output=True, check=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run(mutant: Mutant, scratch: Path) -> tuple[str, float, str]:
    """(killed | survived | error, seconds, the last line pytest printed)."""
    tree = scratch / mutant.name
    copy_repository(tree)
    apply(mutant, tree)
    env = {**os.environ, "PYTHONPATH": str(tree), "BITFAB_CACHE": str(scratch / "cache")}
    command = [sys.executable, "-m", "pytest", "-x", "-q", "-W", "error", "-p", "no:cacheprovider", "-p", "no:xdist",
               *mutant.tests]  # fmt: skip
    started = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    last = lines[-1] if lines else done.stderr.strip().splitlines()[-1:] or ""
    outcome = {0: "survived", 1: "killed"}.get(done.returncode, "error")
    shutil.rmtree(tree, ignore_errors=True)
    return outcome, seconds, str(last)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="+", metavar="NAME", help="run these mutants only")
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    unknown = set(args.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        parser.error(f"unknown mutants {sorted(unknown)}; known: {', '.join(m.name for m in MUTANTS)}")
    if args.list:
        for m in chosen:
            print(f"{m.name:<28} {m.path:<18} {m.why}")
        return 0
    with tempfile.TemporaryDirectory(prefix="bitfab-mutants-") as scratch, ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda m: run(m, Path(scratch)), chosen))
    print(f"{'mutant':<28} {'outcome':<9} {'seconds':>7}  what it plants / how the tests ended")
    for m, (outcome, seconds, last) in zip(chosen, results, strict=True):
        print(f"{m.name:<28} {outcome:<9} {seconds:7.1f}  {m.why}\n{'':<47}{last}")
    alive = [m.name for m, (outcome, _, _) in zip(chosen, results, strict=True) if outcome != "killed"]
    print(f"{len(chosen) - len(alive)} of {len(chosen)} mutants killed" + (f"; not killed: {', '.join(alive)}"
                                                                        if alive else ""))  # fmt: skip
    return 1 if alive else 0


if __name__ == "__main__":
    sys.exit(main())
