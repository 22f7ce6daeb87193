"""Encode/decode throughput of numerics formats next to the peers, timed in the same run.

    python benchmarks/bench_numerics.py [--log2n 24] [--repeat 3] [--threads 2] [--only fp8_e5m2,bf16]

Prints M elements/s for bitfab and each peer, and the ratio bitfab / fastest peer. Minifloat
casts time bitfab and the array peers (ml_dtypes, torch) in turns, best of --repeat each, so
that a busy machine slows all of them alike. Decoding produces float64 on every side (bitfab's
decode, ml_dtypes `.astype(np.float64)`, torch `.to(torch.float64)`). Peers that are scalar loops
or slow reference code run on a subsample and are extrapolated (labelled so). Not a test:
nothing asserts a time. numba and torch get the same number of threads (--threads; ml_dtypes
has one): on a machine busy with other work, --threads 1 compares the libraries core for core
without the waits of a thread pool whose workers the scheduler has put aside.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import dataclass

import gfloat
import ml_dtypes
import numba
import numpy as np
import softposit
import torch
from gfloat.formats import (
    format_info_bfloat16,
    format_info_ocp_e2m1,
    format_info_ocp_e2m3,
    format_info_ocp_e4m3,
    format_info_ocp_e5m2,
)

import numerics


@dataclass
class Row:
    format: str
    op: str
    ours: float
    peers: dict[str, float]


def best_time(fn: Callable[[], object], repeat: int = 3) -> float:
    fn()  # warm-up: numba compilation, caches, page faults
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def best_times(fns: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    """Best seconds of each function, timed in turns. Each turn calls its function once untimed
    first, so that it is timed warm, as `best_time` does, after the worker threads of the other
    libraries' thread pools (numba's and torch's OpenMP each have their own) have gone idle."""
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeat):
        for name, fn in fns.items():
            fn()
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def rate(n: int, seconds: float) -> float:
    return n / seconds / 1e6


def sampled_rate(fn: Callable[[np.ndarray], object], x: np.ndarray, n_sample: int) -> float:
    """M elements/s of fn measured on the first n_sample values (for scalar-loop peers)."""
    sample = np.ascontiguousarray(x[:n_sample])
    return rate(n_sample, best_time(lambda: fn(sample), repeat=1))


def softposit_encode(kind: str) -> Callable[[np.ndarray], object]:
    def run(values: np.ndarray) -> object:
        if kind == "posit16_1":
            return [softposit.posit16(float(v)).v.v for v in values]
        n = int(kind[5:].split("_", maxsplit=1)[0])
        if n == 32:
            return [softposit.posit32(float(v)).v.v for v in values]
        return [softposit.posit_2(float(v), x=n).v.v for v in values]

    return run


def brevitas_fake_quant(layout: dict[str, int], weight: torch.Tensor) -> Callable[[], object]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import brevitas.nn as qnn
        from brevitas.quant.experimental.mx_quant_ocp import MXFloat8e4m3Weight

        quantizer = MXFloat8e4m3Weight.let(**layout) if layout else MXFloat8e4m3Weight
        layer = qnn.QuantLinear(weight.shape[1], weight.shape[0], bias=False, weight_quant=quantizer)
    with torch.no_grad():
        layer.weight.copy_(weight)

    def run() -> object:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return layer.quant_weight().value

    return run


COMPOSITES = ("mxfp8_e4m3", "mxfp4", "mxint8", "nvfp4", "ovp4", "bitmod4")


def composite_rows(x: np.ndarray, n: int, names: list[str]) -> list[Row]:
    """MX, NVFP4, OliVe and BitMoD: encode (blocks along the last axis) and decode."""
    from gfloat.formats import format_info_mxfp4_e2m1, format_info_mxfp8_e4m3, format_info_mxint8

    w = x.reshape(-1, 4096)
    wt = torch.from_numpy(w)
    gfloat_block = {"mxfp8_e4m3": format_info_mxfp8_e4m3, "mxfp4": format_info_mxfp4_e2m1,
                    "mxint8": format_info_mxint8}  # fmt: skip
    brevitas_layout = {"mxfp8_e4m3": {}, "mxfp4": {"bit_width": 4, "exponent_bit_width": 2, "mantissa_bit_width": 1}}
    rows = []
    for name in names:
        fmt = numerics.get(name)
        peers: dict[str, float] = {}
        if name in gfloat_block:
            info = gfloat_block[name]

            def gfloat_quantize(v: np.ndarray, info: object = info) -> object:
                return [gfloat.quantize_block(info, block, gfloat.compute_scale_amax) for block in v.reshape(-1, 32)]

            peers["gfloat quantize_block (2^14 sample)"] = sampled_rate(gfloat_quantize, x, 1 << 14)
        if name in brevitas_layout:
            peers["brevitas MXFloat fake-quant"] = rate(n, best_time(brevitas_fake_quant(brevitas_layout[name], wt)))
        ours = rate(n, best_time(lambda fmt=fmt: fmt.quantize(w)))
        rows.append(Row(name, "enc+dec", ours, peers))
        encoded = fmt.encode(w)
        rows.append(Row(name, "encode", rate(n, best_time(lambda fmt=fmt: fmt.encode(w))), {}))
        rows.append(Row(name, "decode", rate(n, best_time(encoded.decode)), {}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--log2n", type=int, default=24, help="number of float32 values, as a power of two")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds of each minifloat cast (best kept)")
    parser.add_argument("--threads", type=int, default=2, help="threads for numba (bitfab) and for torch alike")
    parser.add_argument("--only", default="", help="comma-separated formats to time (int8/int4 name the integer rows)")
    args = parser.parse_args()
    only = {name.strip() for name in args.only.split(",") if name.strip()}

    def wanted(name: str) -> bool:
        return not only or name in only

    n = 1 << args.log2n
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(n) * np.exp2(rng.integers(-4, 4, n))).astype(np.float32)
    xt = torch.from_numpy(x)
    rows: list[Row] = []
    torch.set_num_threads(args.threads)
    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))

    minifloats = {
        "fp8_e4m3": (ml_dtypes.float8_e4m3fn, torch.float8_e4m3fn, format_info_ocp_e4m3),
        "fp8_e5m2": (ml_dtypes.float8_e5m2, torch.float8_e5m2, format_info_ocp_e5m2),
        "fp6_e2m3": (ml_dtypes.float6_e2m3fn, None, format_info_ocp_e2m3),
        "fp4_e2m1": (ml_dtypes.float4_e2m1fn, None, format_info_ocp_e2m1),
        "bf16": (ml_dtypes.bfloat16, torch.bfloat16, format_info_bfloat16),
    }
    for name, (ml_type, torch_type, gf_info) in minifloats.items():
        if not wanted(name):
            continue
        fmt = numerics.get(name)
        saturate = not (fmt.has_inf or fmt.has_nan)
        casts: dict[str, Callable[[], object]] = {
            "bitfab": lambda fmt=fmt, saturate=saturate: fmt.encode(x, saturate=saturate),
            "ml_dtypes": lambda t=ml_type: x.astype(t),
        }
        if torch_type is not None:
            casts["torch"] = lambda t=torch_type: xt.to(t)
        rates = {key: rate(n, seconds) for key, seconds in best_times(casts, args.repeat).items()}
        peers = {key: value for key, value in rates.items() if key != "bitfab"}
        peers["gfloat (2^16 sample)"] = sampled_rate(
            lambda v, info=gf_info, sat=saturate: gfloat.encode_ndarray(info, gfloat.round_ndarray(info, v, sat=sat)),
            x,
            1 << 16,
        )
        rows.append(Row(name, "encode", rates["bitfab"], peers))
        codes = fmt.encode(x, saturate=saturate)
        ml_codes = x.astype(ml_type)
        casts = {"bitfab": lambda fmt=fmt, codes=codes: fmt.decode(codes),
                 "ml_dtypes": lambda c=ml_codes: c.astype(np.float64)}  # fmt: skip
        if torch_type is not None:
            torch_codes = xt.to(torch_type)
            casts["torch"] = lambda tc=torch_codes: tc.to(torch.float64)
        rates = {key: rate(n, seconds) for key, seconds in best_times(casts, args.repeat).items()}
        rows.append(Row(name, "decode", rates.pop("bitfab"), rates))

    if wanted("int8") or wanted("int4"):
        rows += integer_rows(x, args.log2n)
    rows += posit_rows(x, n, [name for name in ("posit8_2", "posit16_2", "posit32_2") if wanted(name)])
    rows += composite_rows(x, n, [name for name in COMPOSITES if wanted(name)])
    report(rows, args)


def integer_rows(x: np.ndarray, log2n: int) -> list[Row]:
    """int8 per output channel (rows of a 4096 x 4096 weight), int4 per group of 128, against torch."""
    n = x.size
    rows = []
    w = x.reshape(1 << (log2n // 2), -1)
    wt = torch.from_numpy(w)
    scales = torch.from_numpy(np.abs(w).max(axis=1).astype(np.float64) / 127)
    zeros = torch.zeros(w.shape[0], dtype=torch.int64)
    ours = rate(n, best_time(lambda: numerics.quantize_int(w, "int8", channel_axis=0)))
    peers = {
        "torch quantize_per_channel": rate(
            n, best_time(lambda: torch.quantize_per_channel(wt, scales, zeros, 0, torch.qint8))
        )
    }
    rows.append(Row("int8 per-channel", "encode", ours, peers))
    q = numerics.quantize_int(w, "int8", channel_axis=0)
    tq = torch.quantize_per_channel(wt, scales, zeros, 0, torch.qint8)
    ours = rate(n, best_time(q.dequantize))
    rows.append(Row("int8 per-channel", "decode", ours, {"torch dequantize": rate(n, best_time(tq.dequantize))}))

    def torch_group_int4() -> torch.Tensor:
        g = wt.reshape(wt.shape[0], -1, 128)
        s = g.abs().amax(dim=-1, keepdim=True) / 7
        return torch.clamp(torch.round(g / s), -8, 7).to(torch.int8)

    ours = rate(n, best_time(lambda: numerics.quantize_int(w, "int4", group_size=128)))
    rows.append(Row("int4 per-group 128", "encode", ours, {"torch eager ops": rate(n, best_time(torch_group_int4))}))
    q4 = numerics.quantize_int(w, "int4", group_size=128)
    ours = rate(n, best_time(q4.dequantize))
    rows.append(Row("int4 per-group 128", "decode", ours, {}))
    return rows


def posit_rows(x: np.ndarray, n: int, names: list[str]) -> list[Row]:
    rows = []
    for name in names:
        fmt = numerics.get(name)
        ours = rate(n, best_time(lambda fmt=fmt: fmt.encode(x)))
        peers = {"softposit loop (2^12 sample)": sampled_rate(softposit_encode(name), x, 1 << 12)}
        rows.append(Row(name, "encode", ours, peers))
        codes = fmt.encode(x)
        rows.append(Row(name, "decode", rate(n, best_time(lambda fmt=fmt, codes=codes: fmt.decode(codes))), {}))
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> None:
    print(f"numerics throughput on 2^{args.log2n} float32 values (M elements/s; minifloat casts best of {args.repeat} "
          f"in turns, the rest best of 3; {numba.get_num_threads()} numba and {torch.get_num_threads()} torch "
          "threads)")  # fmt: skip
    header = f"{'format':<20} {'op':<7} {'bitfab':>9}  {'fastest peer':<32} {'peer':>9} {'ratio':>7}"
    print(header)
    print("-" * len(header))
    for r in rows:
        if r.peers:
            peer, value = max(r.peers.items(), key=lambda kv: kv[1])
            print(f"{r.format:<20} {r.op:<7} {r.ours:9.1f}  {peer:<32} {value:9.1f} {r.ours / value:7.2f}")
        else:
            print(f"{r.format:<20} {r.op:<7} {r.ours:9.1f}  {'(no peer)':<32} {'':>9} {'':>7}")
    print("\nall peers (ratio: bitfab / peer):")
    for r in rows:
        for peer, value in r.peers.items():
            print(f"  {r.format:<20} {r.op:<7} {peer:<32} {value:9.1f} {r.ours / value:7.2f}")


if __name__ == "__main__":
    main()
