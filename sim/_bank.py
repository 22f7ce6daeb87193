"""A bank of decoders sharing one code input, so one Verilator build checks many decoders."""

from __future__ import annotations

import re

from amaranth import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

import numerics
from hw import decoder_for


def port_name(fmt_name: str) -> str:
    return re.sub(r"[^a-z0-9]", "_", fmt_name.lower())


class DecoderBank(wiring.Component):
    """code : In(widest format); per format f: f_sig, f_exp, f_nan, f_inf, f_neg : Out (f gets the
    low bits of code)."""

    def __init__(self, formats: list[str]) -> None:
        self.formats = [numerics.get(f) for f in formats]
        self.layouts = {}
        members: dict[str, object] = {"code": In(max(f.bits for f in self.formats))}
        for fmt in self.formats:
            from hw._decode import decoded_layout

            layout = decoded_layout(fmt)  # type: ignore[arg-type]
            self.layouts[fmt.name] = layout
            p = port_name(fmt.name)
            members |= {f"{p}_sig": Out(signed(layout.sig_width + 1)), f"{p}_exp": Out(unsigned(layout.exp_width)),
                        f"{p}_nan": Out(1), f"{p}_inf": Out(1), f"{p}_neg": Out(1)}  # fmt: skip
        super().__init__(members)  # type: ignore[arg-type]

    def elaborate(self, platform: object) -> Module:
        m = Module()
        for fmt in self.formats:
            p = port_name(fmt.name)
            decoder = decoder_for(fmt)  # type: ignore[arg-type]
            m.submodules[p] = decoder
            m.d.comb += decoder.code.eq(self.code[: fmt.bits])
            for field in ("sig", "exp", "nan", "inf", "neg"):
                m.d.comb += getattr(self, f"{p}_{field}").eq(getattr(decoder, field))
        return m
