"""Names for formats: `get("fp8_e4m3")`, `formats()`, and name patterns for families."""

from __future__ import annotations

import difflib
import re

from ._bitmod import BitMoDFormat
from ._block import BlockFormat
from ._composite import CompositeFormat
from ._format import ElementFormat
from ._int import IntFormat
from ._minifloat import Minifloat, Specials
from ._ovp import OVPFormat
from ._posit import Posit

_FIXED: dict[str, ElementFormat] = {}


def _add(fmt: ElementFormat) -> None:
    _FIXED[fmt.name] = fmt


for _width in range(2, 17):
    _add(IntFormat(_width))
    _add(IntFormat(_width, signed=False))
_add(IntFormat(32))
_add(IntFormat(2, narrow=True, name="ternary"))
_add(IntFormat(8, narrow=True))
_add(IntFormat(4, narrow=True))

_add(Minifloat(4, 3, specials=Specials.FN, name="fp8_e4m3"))
_add(Minifloat(5, 2, name="fp8_e5m2"))
_add(Minifloat(4, 3, specials=Specials.FNUZ, name="fp8_e4m3fnuz"))
_add(Minifloat(5, 2, specials=Specials.FNUZ, name="fp8_e5m2fnuz"))
_add(Minifloat(4, 3, name="fp8_e4m3_ieee"))
_add(Minifloat(4, 3, specials=Specials.FINITE, name="fp8_e4m3_finite"))
_add(Minifloat(3, 2, specials=Specials.FINITE, name="fp6_e3m2"))
_add(Minifloat(2, 3, specials=Specials.FINITE, name="fp6_e2m3"))
_add(Minifloat(2, 1, specials=Specials.FINITE, name="fp4_e2m1"))
_add(Minifloat(8, 7, name="bf16"))
_add(Minifloat(5, 10, name="fp16"))
_add(Minifloat(8, 23, name="fp32"))
_add(Minifloat(11, 52, name="fp64"))
_add(Minifloat(8, 0, bias=127, subnormals=False, specials=Specials.FN, signed=False, name="e8m0"))
for _n, _es in ((8, 0), (8, 1), (8, 2), (16, 1), (16, 2), (32, 2)):
    _add(Posit(_n, _es))

_E8M0 = _FIXED["e8m0"]
_COMPOSITE: dict[str, CompositeFormat] = {}


def _add_composite(fmt: CompositeFormat) -> None:
    _COMPOSITE[fmt.name] = fmt


for _elem, _name in (("fp8_e4m3", "mxfp8_e4m3"), ("fp8_e5m2", "mxfp8_e5m2"), ("fp6_e3m2", "mxfp6_e3m2"),
                     ("fp6_e2m3", "mxfp6_e2m3"), ("fp4_e2m1", "mxfp4")):  # fmt: skip
    _add_composite(BlockFormat(_FIXED[_elem], 32, _E8M0, name=_name))
_add_composite(BlockFormat(IntFormat(8, narrow=True), 32, _E8M0, element_exponent=-6, name="mxint8"))
_add_composite(BlockFormat(IntFormat(8), 32, _E8M0, element_exponent=-6, name="mxint8_full"))
_add_composite(BlockFormat(_FIXED["fp4_e2m1"], 16, _FIXED["fp8_e4m3"], tensor_scale=True, name="nvfp4"))
_add_composite(BlockFormat(_FIXED["fp4_e2m1"], 16, _FIXED["fp8_e4m3"], name="nvfp4_1level"))
_add_composite(BlockFormat(IntFormat(8), 16, _E8M0, element_exponent=-6, name="bfp8_16"))


_add_composite(BitMoDFormat(4))
_add_composite(BitMoDFormat(3))
_add_composite(BitMoDFormat(4, arithmetic="exact"))
_add_composite(BitMoDFormat(3, arithmetic="exact"))
_add_composite(OVPFormat(4))
_add_composite(OVPFormat(8))
_add_composite(OVPFormat(4, channel_axis=0, name="ovp4_channel"))
_add_composite(OVPFormat(8, channel_axis=0, name="ovp8_channel"))


def bfp(mantissa_bits: int, block_size: int) -> BlockFormat:
    """Block floating point: two's complement mantissas of `mantissa_bits` sharing an E8M0 exponent."""
    if not 2 <= mantissa_bits <= 16:
        raise ValueError(f"bfp mantissa bits must be in [2, 16], got {mantissa_bits}")
    return BlockFormat(IntFormat(mantissa_bits), block_size, _E8M0, element_exponent=-(mantissa_bits - 2),
                       name=f"bfp{mantissa_bits}_{block_size}")  # fmt: skip


_ALIASES = {
    "fp8_e4m3fn": "fp8_e4m3",
    "float8_e4m3fn": "fp8_e4m3",
    "float8_e5m2": "fp8_e5m2",
    "fp6_e3m2fn": "fp6_e3m2",
    "fp6_e2m3fn": "fp6_e2m3",
    "fp4_e2m1fn": "fp4_e2m1",
    "bfloat16": "bf16",
    "float16": "fp16",
    "float32": "fp32",
    "float64": "fp64",
    "e8m0fnu": "e8m0",
}

_BFP = re.compile(r"bfp(\d+)_(\d+)")
_INT = re.compile(r"(u?)int(\d+)(_narrow)?")
_POSIT = re.compile(r"posit(\d+)_(\d+)")
_MINIFLOAT = re.compile(r"fp(\d+)_e(\d+)m(\d+)(fn|fnuz|_ieee|_finite)?")
_SPECIALS = {
    None: Specials.IEEE,
    "_ieee": Specials.IEEE,
    "fn": Specials.FN,
    "fnuz": Specials.FNUZ,
    "_finite": Specials.FINITE,
}


def _natural_key(name: str) -> list[str | int]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def formats() -> list[str]:
    """The registered names in natural order (int2 before int10); patterns also resolve."""
    return sorted([*_FIXED, *_COMPOSITE], key=_natural_key)


Format = ElementFormat | CompositeFormat


def get(name: str | Format) -> Format:
    """Resolve a format name (or pass a format through).

    Fixed names are listed by `formats()`. Patterns: `int{b}`, `uint{b}`, `int{b}_narrow`
    (b in 1..32), `posit{n}_{es}` (n in 2..32, es in 0..4), and `fp{n}_e{x}m{y}` with an optional
    suffix `fn`, `fnuz`, `_finite` or `_ieee` (unregistered minifloats default to IEEE Inf/NaN).
    """
    if isinstance(name, ElementFormat | CompositeFormat):
        return name
    if not isinstance(name, str):
        raise TypeError(f"format must be a name or a format object, got {type(name).__name__}")
    key = _ALIASES.get(name.lower(), name.lower())
    if key in _FIXED:
        return _FIXED[key]
    if key in _COMPOSITE:
        return _COMPOSITE[key]
    if m := _BFP.fullmatch(key):
        return bfp(int(m[1]), int(m[2]))
    if m := _INT.fullmatch(key):
        return IntFormat(int(m[2]), signed=not m[1], narrow=bool(m[3]))
    if m := _POSIT.fullmatch(key):
        return Posit(int(m[1]), int(m[2]))
    if m := _MINIFLOAT.fullmatch(key):
        total, exp_bits, man_bits = int(m[1]), int(m[2]), int(m[3])
        if total != 1 + exp_bits + man_bits:
            raise ValueError(
                f"format {name!r}: fp{total} needs 1 + exponent + mantissa bits = {total}, "
                f"got 1 + {exp_bits} + {man_bits} = {1 + exp_bits + man_bits}"
            )
        specials = _SPECIALS[m[4]]
        return Minifloat(exp_bits, man_bits, specials=specials, name=key)
    close = difflib.get_close_matches(key, [*_FIXED, *_COMPOSITE, *_ALIASES], n=4, cutoff=0.6)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise ValueError(
        f"unknown format {name!r}{hint} (see bitfab formats; patterns: int{{b}}, uint{{b}}, "
        f"posit{{n}}_{{es}}, fp{{n}}_e{{x}}m{{y}}[fn|fnuz|_finite], bfp{{m}}_{{block}})"
    )
