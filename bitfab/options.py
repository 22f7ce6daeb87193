"""The CLI's shared vocabulary: one parser class (one-line errors, defaults in --help, values that
start with a dash), checked argument types, and one set of design options with one set of
defaults for `generate`, `cosim`, `synth`, `cost` and `explore`."""

from __future__ import annotations

import argparse
import re
from typing import Any

import hw
import numerics

# One array default everywhere: weight-stationary, double-buffered, one pipeline stage per PE, and
# the K and M bounds of the cost model's calibration set (its LUT figures hold there).
K_MAX = 1024
M_MAX = 64
PIPELINE = 1


class CommandLineError(ValueError):
    """A command line argparse rejects; reported like every other user error."""


class DefaultsFormatter(argparse.HelpFormatter):
    """Every option that takes a value shows its default, unless its help already speaks of it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        takes_value = action.nargs != 0 and action.option_strings
        if takes_value and not action.required and "default" not in text and action.default is not argparse.SUPPRESS:
            shown = "none" if action.default is None else "%(default)s"
            text += f" (default: {shown})"
        return text


class Parser(argparse.ArgumentParser):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", DefaultsFormatter)
        super().__init__(*args, **kwargs)
        # A value such as -4x8x8 or -3 is a (bad) value, not an option: no bitfab option starts with
        # a dash and a digit. Without this, argparse says "expected one argument" for --gemm -4x8x8.
        self._negative_number_matcher = re.compile(r"^-\d")

    def error(self, message: str) -> Any:  # type: ignore[override]
        raise CommandLineError(f"{message} (see `{self.prog} --help`)")


def _integer_at_least(low: int, what: str) -> Any:
    """An argparse type: an integer >= `low`, refused with `what` it must be and the value given."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be {what}, got {value}")
        return value

    return parse


positive_int = _integer_at_least(1, "a positive integer")
nonnegative_int = _integer_at_least(0, "an integer >= 0")


def accumulator(text: str) -> str:
    """An argparse type: a text numerics.parse_accumulator takes; its error (the syntax, or why a
    float accumulator it recognised is invalid, e.g. a window wider than the format) as the reason."""
    try:
        numerics.parse_accumulator(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("accumulator ")) from None
    return text


def shape(text: str, what: str = "MxKxN") -> tuple[int, ...]:
    """'64x128x32' -> (64, 128, 32), every dimension a positive integer."""
    parts = text.lower().split("x")
    if len(parts) != what.count("x") + 1 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"must be {what} with positive integers (e.g. {'x'.join(['8'] * len(what.split('x')))}), "
                         f"got {text!r}")  # fmt: skip
    return tuple(int(p) for p in parts)


def gemm(text: str) -> tuple[int, int, int]:
    try:
        m, k, n = shape(text, "MxKxN")
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return m, k, n


def add_format_options(p: argparse.ArgumentParser, required: bool) -> None:
    defaults = {} if required else {"default": "int8"}
    p.add_argument("--a", required=required, help="format of A, the activations (e.g. int8, fp8_e4m3, mxfp4)",
                   **defaults)  # fmt: skip
    p.add_argument("--b", required=required, help="format of B, the weights", **defaults)


def array_accumulator(acc: str | None, a_format: str) -> str:
    """--acc as given, or what an array takes when none is: fp32 for MX operands (each block's exact
    sum scaled and added in FP32, as the OCP MX spec defines the dot product), exact otherwise."""
    return acc if acc is not None else numerics.accumulator_name(hw.default_accumulator(a_format))


def add_accumulator_options(p: argparse.ArgumentParser, k_help: str) -> None:
    p.add_argument("--acc", type=accumulator, default="exact", metavar="ACC",
                   help="exact (Kulisch), int{W} (W-bit, wraps), int{W}_sat (saturates; PEs only), or a float "
                        "accumulator {F}[_w{N}[r]][_rz]: F a signed minifloat (fp32, bf16, fp16, ...), _wN an "
                        "alignment window of N bits (truncated; _wNr rounded), _rz adds toward zero "
                        "(e.g. fp32, fp32_w14, bf16_rz); arrays default to fp32 for MX operands (OCP's datapath), "
                        "everything else to exact")  # fmt: skip
    p.add_argument("--k-max", type=positive_int, default=K_MAX, metavar="K", help=k_help)
    p.add_argument("--pipeline", type=int, default=PIPELINE, choices=[0, 1, 2], help="registers inside each PE")


def add_array_options(p: argparse.ArgumentParser, rows_required: bool, single_pe: bool = False) -> None:
    sizes: dict[str, Any] = {"required": True} if rows_required else {"default": 4}
    pe = "; --rows 1 --cols 1: a single MAC PE" if single_pe else ""
    p.add_argument("--rows", type=positive_int, help=f"PE rows R (2..64){pe}", **sizes)
    p.add_argument("--cols", type=positive_int, help=f"PE columns C (2..64){pe}", **sizes)
    p.add_argument("--dataflow", default="ws", choices=["ws", "os"], help="weight- or output-stationary")
    p.add_argument("--double-buffer", action=argparse.BooleanOptionalAction, default=None,
                   help="two weight registers per PE (default: on for ws; os has none)")  # fmt: skip
    p.add_argument("--m-max", type=positive_int, default=M_MAX, metavar="M",
                   help="largest M (depth of the ws output accumulator)")  # fmt: skip


def double_buffer(args: argparse.Namespace) -> bool:
    """--double-buffer as given, else on for weight-stationary arrays."""
    return args.dataflow == "ws" if args.double_buffer is None else bool(args.double_buffer)


def add_cache_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cache-dir", metavar="DIR",
                   help="build cache shared between runs (Verilator, yosys, trained weights); "
                        "default: $BITFAB_CACHE, else ~/.cache/bitfab")  # fmt: skip
