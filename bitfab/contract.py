"""The interface contract a generated design's manifest states on its own: ports, clock and
reset, handshakes, beat order and lane packing, result layout, latency and the cycle model, so a
testbench can be written from the manifest alone (README, "Stream contract")."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

import hw
import numerics

CLOCK_AND_RESET = (
    "One clock, clk: every register updates on its rising edge. rst is synchronous and active high: "
    "hold it high for at least one rising edge before use; it returns the design to idle with cleared "
    "registers (registers also power up to those values)."
)
HANDSHAKE = (
    "A beat transfers on a rising edge of clk where valid && ready. A source keeps a valid beat (valid "
    "high, payload unchanged) until it transfers (the AXI-Stream rule); ready may depend on valid."
)
FLAGS = ("nan", "pos_inf", "neg_inf")
SPECIAL = (
    "The sticky flags read as a special value: NaN if nan, or if pos_inf and neg_inf are both set "
    "(+Inf + -Inf); else +Inf if pos_inf; else -Inf if neg_inf; else the value is finite. nan rises "
    "for a NaN product (a NaN operand, 0 x Inf){mx}; pos_inf/neg_inf for an infinite product of that "
    "sign. acc always holds the sum of the finite products (special products{mx_zero} add 0)."
)


FLOAT_SPECIAL = (
    "nan, pos_inf and neg_inf are read off acc, not kept beside it: nan while acc is a NaN code, pos_inf / "
    "neg_inf while it is +Inf / -Inf (never two at once). IEEE arithmetic keeps them until the next clear: a NaN "
    "product (a NaN operand, 0 x Inf{mx}) or +Inf + -Inf makes acc NaN, which stays; an infinite product makes "
    "acc {inf}."
)


def _float_flags(fmt: numerics.Minifloat, mx: bool) -> str:
    if not (fmt.has_inf or fmt.has_nan):
        return (f"nan, pos_inf and neg_inf are read off acc, and {fmt.name} has no NaN or Inf codes: they stay low "
                "(see acc for what a NaN or an infinite product becomes)")  # fmt: skip
    inf = "Inf of its sign, which stays unless the opposite Inf comes" if fmt.has_inf else "NaN (the format has no Inf)"
    return FLOAT_SPECIAL.format(mx=", or an E8M0 scale 0xFF in its block" if mx else "", inf=inf)


_SPECIALS = {
    numerics.Specials.IEEE: "IEEE specials: exponent field all ones is +-Inf (mantissa 0) or NaN (mantissa not 0)",
    numerics.Specials.FN: "no Inf; NaN is exponent and mantissa fields all ones (either sign)",
    numerics.Specials.FNUZ: "no Inf and no -0; the code with only the sign bit set is the one NaN",
    numerics.Specials.FINITE: "no Inf or NaN: every code is finite",
}


def _float_value(accumulator: numerics.FloatAccumulator) -> str:
    """A float accumulator's acc: the code's layout, and what one addition does."""
    fmt, name = accumulator.format, numerics.accumulator_name(accumulator)
    bits, man = fmt.bits, fmt.man_bits
    nan_code = fmt._nan_code & ((1 << bits) - 1)
    layout = (f"acc is the unsigned {bits}-bit code of {fmt.name} (accumulator {name}), not a scaled integer: sign "
              f"bit {bits - 1}, exponent field e in bits [{bits - 2}:{man}] with bias {fmt.bias}, mantissa m in bits "
              f"[{man - 1}:0]; value (-1)**sign * 2**(e - {fmt.bias}) * (1 + m / 2**{man}) for e > 0, subnormals "
              f"(-1)**sign * 2**{1 - fmt.bias} * m / 2**{man} for e = 0; {_SPECIALS[fmt.specials]}; largest finite "
              f"{fmt.max!r}. Every sum starts at +0 (code 0).")  # fmt: skip
    order = {
        "sequential": "every enabled product is added in k order (a fused multiply-add chain)",
        "blocked": f"the exact sum of each {accumulator.block} consecutive products (MX: a block's scaled dot "
        f"product; weight-stationary: a fold's rows) is rounded once to {fmt.name}, then added in k order",
        "pairwise": f"the products are rounded to {fmt.name} and summed as a balanced binary tree",
    }[accumulator.order]
    align = "the exact sum of acc and the addend (full alignment)"
    if accumulator.window is not None:
        cut = "cut toward zero" if accumulator.align == "truncate" else "rounded to nearest, ties to even"
        align = (f"the exact sum of acc and the addend after both are cut to a window of {accumulator.window} bits "
                 f"from the larger one's leading bit (the bits below {cut})")  # fmt: skip
    rounding = "to nearest, ties to even" if accumulator.rounding == "nearest_even" else "toward zero"
    if not (fmt.has_inf or fmt.has_nan):
        overflow = "the largest finite of its sign"
    elif accumulator.rounding == "toward_zero":
        overflow = "the largest finite of its sign (toward zero, as IEEE 754)"
    else:
        overflow = "+-Inf" if fmt.has_inf else "NaN (the format has no Inf)"
    nan = f"NaN results are code {nan_code:#x} (compare every NaN code alike)"
    if not (fmt.has_inf or fmt.has_nan):
        nan = (f"with no NaN or Inf codes, a NaN (a NaN product, +Inf + -Inf) becomes code {nan_code:#x} and an "
               "infinite product the largest finite of its sign, as numerics encodes them")  # fmt: skip
    zero = "a zero result is +0 (code 0, never -0: compare -0 as +0)"
    return (f"{layout} Order: {order}. Each addition takes {align} and rounds it once {rounding}; a sum beyond "
            f"the range becomes {overflow}; {nan}; {zero}.")  # fmt: skip


def _sum_value(width: int, lsb: int, accumulator: Any, terms: str) -> str:
    if isinstance(accumulator, numerics.FloatAccumulator):
        return _float_value(accumulator)
    if isinstance(accumulator, numerics.ExactAccumulator):
        overflow = f"exact: it never overflows for up to {terms} products"
    else:
        overflow = f"a fixed-point register that {'saturates' if accumulator.overflow == 'saturate' else 'wraps'}"
    return f"acc is a signed {width}-bit two's complement integer in units of 2**{lsb} (acc * 2**{lsb}); {overflow}."


def _lanes(name: str, lanes: int, bits: int, lsb: int = 0) -> dict[str, Any]:
    return {"name": name, "lanes": lanes, "bits_per_lane": bits, "lsb": lsb,
            "layout": f"lane i in bits [{lsb} + {bits}*i + {bits - 1} : {lsb} + {bits}*i] (lane 0 lowest)"}  # fmt: skip


def _operand(cfg: hw.ArrayConfig, side: str) -> dict[str, Any]:
    """One operand stream: its payload fields, what a lane carries, and its beat order."""
    lanes = cfg.rows if side == "a" else cfg.cols
    code_format = cfg.a_code_format if side == "a" else cfg.b_code_format
    fields = [_lanes("codes", lanes, code_format.bits)]
    ovp = cfg.a_ovp if side == "a" else cfg.b_ovp
    stream, zero_point = (cfg.a_stream, cfg.a_zero_point) if side == "a" else (cfg.b_stream, cfg.b_zero_point)
    carries = f"one {code_format.name} code per lane (the bit pattern numerics encodes; integers: two's complement)"
    if stream is not None:
        carries = (f"one {stream.name} code per lane; the array subtracts the zero point {zero_point} at its edge "
                   f"(the datapath multiplies code - {zero_point}, a {code_format.name})")  # fmt: skip
    elif ovp is not None:
        axis = "N" if side == "b" else ("K" if cfg.dataflow == "ws" else "M")
        carries = (f"one {ovp.element_bits}-bit {ovp.name} element code per lane in its low bits; lanes 2p and 2p+1 "
                   f"hold one outlier-victim pair (numerics' OVPEncoded codes, paired along {axis}); the fp32 "
                   "scale is applied outside the array")  # fmt: skip
    elif cfg.block is not None:
        carries = f"one {cfg.block.element.name} element code per lane, then E8M0 block scales ({cfg.block.name})"
        if side == "a" and cfg.dataflow == "ws":
            fields.append(_lanes("scale", 1, 8, lanes * code_format.bits))
            carries += "; one scale for the whole beat (a k-fold lies inside one block)"
        else:
            fields.append(_lanes("scales", lanes, 8, lanes * code_format.bits))
            carries += "; scale lane i belongs to code lane i"
    return {"payload_bits": sum(f["lanes"] * f["bits_per_lane"] for f in fields), "fields": fields,
            "lane": carries}  # fmt: skip


def _orders(cfg: hw.ArrayConfig) -> dict[str, str]:
    r, c = cfg.rows, cfg.cols
    if cfg.dataflow == "os":
        return {
            "folds": f"Folds run m-tile outer, n-tile inner: m-tile t is rows t*{r}..t*{r}+{r - 1} of A and C, "
            f"n-tile u is columns u*{c}..u*{c}+{c - 1} of B and C; ceil(M/{r})*ceil(N/{c}) folds.",
            "a": f"Per fold K beats: a-beat k carries A[t*{r}+i][k] in lane i. The m-tile is sent again for every "
            f"n-tile. ceil(M/{r})*ceil(N/{c})*K beats.",
            "b": f"Per fold K beats: b-beat k carries B[k][u*{c}+j] in lane j. ceil(M/{r})*ceil(N/{c})*K beats. a- and "
            "b-beat k of a fold transfer in the same cycle (a.ready needs b.valid and b.ready needs a.valid).",
            "out": f"Per fold {r} beats, after the fold's last operand beat: result beat i carries C[t*{r}+i][u*{c}+j] "
            f"in lane j. ceil(M/{r})*ceil(N/{c})*{r} beats.",
        }
    streams = f"A fold takes its {r} b-beats, then its M a-beats."
    if cfg.double_buffer:
        streams = "The next fold's weights load while the current fold's activations stream (two weight registers)."
    return {
        "folds": f"Folds run n-tile outer, k-tile inner: k-tile s is k = s*{r}..s*{r}+{r - 1}, n-tile u is columns "
        f"u*{c}..u*{c}+{c - 1} of B and C; ceil(K/{r})*ceil(N/{c}) folds. {streams} The two operand streams "
        "are independent: drive each on its own and never hold one back until the other has moved.",
        "a": f"Per fold M beats: a-beat m carries A[m][s*{r}+i] in lane i (A is sent again for every n-tile). "
        f"ceil(K/{r})*ceil(N/{c})*M beats.",
        "b": f"Per fold {r} beats (the weights): b-beat r carries B[s*{r}+r][u*{c}+j] in lane j. "
        f"ceil(K/{r})*ceil(N/{c})*{r} beats.",
        "out": f"After each n-tile's last k-fold, M beats: result beat m carries C[m][u*{c}+j] in lane j. "
        f"ceil(N/{c})*M beats.",
    }


def array_contract(cfg: hw.ArrayConfig, cycle_formula: str) -> dict[str, Any]:
    """The stream contract of a systolic array (the manifest's "contract")."""
    r, c, p, width = cfg.rows, cfg.cols, cfg.pipeline, cfg.acc_width
    mx = cfg.block is not None
    limits = f"K <= k_max = {cfg.k_max}" + (f", M <= m_max = {cfg.m_max}" if cfg.dataflow == "ws" else "")
    padding = ("Ragged tiles are padded with the code of zero (code 0; with a zero point, the zero point's code), "
               "whose products vanish, so padding never changes a result; results in padding lanes (row >= M or "
               "column >= N) are to be ignored.")  # fmt: skip
    if mx:
        padding += (" MX: every beat's scale lanes carry the scale of the block their k lies in (the array applies the "
                    "scale that rides with a block's last element); padding lanes of a real block take its scale, "
                    "other padding lanes any scale but 0xFF.")  # fmt: skip
    start = (
        f"m_size, k_size and n_size (1..65535; {limits}) are sampled on the rising edge where start is high and the "
        "array is idle; they may change afterwards. busy rises in the next cycle and falls in the cycle after the "
        "last result beat transfers. Operand beats may be valid before start (and between GEMMs): ready stays low "
        "until the cycle after start. Pulse start for one cycle while busy is low; a start while busy is ignored"
    )
    if cfg.dataflow == "os":
        start += (f", except that this output-stationary array already takes it once its operand controller is idle "
                  f"({r + c - 1} cycles after the last operand beat) while the last results still drain; the new "
                  "GEMM's results follow the old ones in order")  # fmt: skip
    start += ". A start still high when the array turns idle starts another GEMM."
    if cfg.dataflow == "os":
        held = ("the output-stationary array keeps computing the folds it holds but takes no first beat of a new "
                "fold while a finished fold waits for the shadow registers that out drains")  # fmt: skip
    else:
        held = "the whole array freezes (no operand beat transfers)"
    backpressure = (f"out keeps out.valid and out.payload until out.ready; while out.valid && !out.ready {held}, "
                    "so backpressure changes only the cycle count.")  # fmt: skip
    backpressure += " Either operand stream may pause at any time"
    if cfg.double_buffer:
        backpressure += (" (a pause in b while the fold's activations already stream freezes the array until the "
                         "weight beat comes, and out.valid stays low meanwhile)")  # fmt: skip
    backpressure += "."
    completing = ("the fold's last a/b beat (result beat i: i cycles later still)" if cfg.dataflow == "os"
                  else "a-beat m of the n-tile's last k-fold")  # fmt: skip
    return {
        "clock_and_reset": CLOCK_AND_RESET,
        "handshake": HANDSHAKE,
        "start": start,
        "a": {**_operand(cfg, "a"), "order": _orders(cfg)["a"]},
        "b": {**_operand(cfg, "b"), "order": _orders(cfg)["b"]},
        "folds": _orders(cfg)["folds"],
        "padding": padding,
        "out": {
            "payload_bits": c * (width + 3),
            "lane_bits": width + 3,
            "lane_fields": [{"name": "acc", "lsb": 0, "bits": width, "signed": cfg.float_format is None}]
            + [{"name": f, "lsb": width + i, "bits": 1, "signed": False} for i, f in enumerate(FLAGS)],
            "layout": f"lane j in bits [{width + 3}*j + {width + 2} : {width + 3}*j] (lane 0 lowest); within a lane "
            f"acc in bits [{width - 1}:0], nan {width}, pos_inf {width + 1}, neg_inf {width + 2}",
            "value": _sum_value(width, cfg.lsb_exponent, cfg.accumulator, "k_max"),
            "special": _float_flags(cfg.float_format, mx)
            if cfg.float_format is not None
            else SPECIAL.format(
                mx=", or an E8M0 scale 0xFF in its block" if mx else "",
                mx_zero=", and every product of a 0xFF-scale block," if mx else "",
            ),
            "order": _orders(cfg)["out"],
            "backpressure": backpressure,
        },
        "latency": f"With no stalls a result beat leaves R + C + P + 2 = {r + c + p + 2} cycles after {completing}.",
        "cycles": {
            "formula": cycle_formula,
            "counts": "cycles from the one where the first operand beat transfers to the one where the last result "
            "beat transfers, both included, with a and b always valid and out always ready from start",
        },
    }


def pe_contract(pe: hw.MacPE) -> dict[str, Any]:
    """The cycle contract of a MAC PE (the manifest's "contract")."""
    latency, width = pe.latency, pe.acc_width
    return {
        "clock_and_reset": CLOCK_AND_RESET,
        "inputs": f"a ({pe.a_format.name} code), b ({pe.b_format.name} code), en and clear are taken on every rising "
        "edge. en adds a * b; clear starts a new sum with this cycle's product (en high) or with 0 (en low); en and "
        "clear both low hold acc and the flags.",
        "latency": f"{latency}: inputs taken on rising edge t show on acc, the flags and valid after rising edge "
        f"t + {latency - 1} (sample them {latency} cycles after presenting the inputs); a new input every cycle.",
        "valid": f"high in the cycle where acc holds the update of an enabled input (en delayed by {latency} cycles).",
        "acc": _sum_value(width, pe.lsb_exponent, pe.accumulator, f"k_terms = {pe.k_terms}"),
        "flags": _float_flags(pe.accumulator.format, mx=False)
        if isinstance(pe.accumulator, numerics.FloatAccumulator)
        else "nan, pos_inf, neg_inf are sticky since the last clear. " + SPECIAL.format(mx="", mx_zero=""),
    }


def beat_listing(cfg: hw.ArrayConfig, m: int, k: int, n: int) -> list[str]:
    """Every a, b and result beat of an M x K @ K x N GEMM on this array, fold by fold, lane 0
    first: Amk / Bkn / Cmn name the elements, 0 a padding code, - a padding result."""
    plain = replace(cfg, block=None, a_ovp=None, b_ovp=None, a_stream=None, b_stream=None)
    beats = hw.gemm_beats(plain, 1 + np.arange(m * k).reshape(m, k), 1 + np.arange(k * n).reshape(k, n))
    rows = -(-m // cfg.rows) * cfg.rows if cfg.dataflow == "os" else m
    out_ids = np.arange(beats.results * cfg.cols).reshape(-1, cfg.cols)
    ids = hw.result_matrix(plain, out_ids, rows, -(-n // cfg.cols) * cfg.cols)
    names = {int(ids[i, j]): f"C{i}{j}" for i, j in np.ndindex(m, n)}

    def group(rows: np.ndarray, label: Any) -> str:
        return " ".join("(" + " ".join(label(int(v)) for v in row) + ")" for row in rows)

    a_name = lambda v: f"A{(v - 1) // k}{(v - 1) % k}" if v else "0"  # noqa: E731
    b_name = lambda v: f"B{(v - 1) // n}{(v - 1) % n}" if v else "0"  # noqa: E731
    r = cfg.rows
    lines = []
    if cfg.dataflow == "os":
        for fold in range(len(beats.a) // k):
            rows = slice(fold * k, fold * k + k)
            lines.append(f"fold {fold}: a {group(beats.a[rows], a_name)}; b {group(beats.b[rows], b_name)}; "
                         f"out {group(out_ids[fold * r : fold * r + r], lambda v: names.get(v, '-'))}")  # fmt: skip
        return lines
    k_folds = -(-k // r)
    for fold in range(len(beats.b) // r):
        line = (f"fold {fold}: b {group(beats.b[fold * r : fold * r + r], b_name)}; "
                f"a {group(beats.a[fold * m : fold * m + m], a_name)}")  # fmt: skip
        if fold % k_folds == k_folds - 1:
            tile = fold // k_folds
            line += f"; out {group(out_ids[tile * m : tile * m + m], lambda v: names.get(v, '-'))}"
        lines.append(line)
    return lines
