"""A small I/O wrapper so that a wide design places on a real package for post-route Fmax."""

from __future__ import annotations

from amaranth import Module, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out


class IOShell(wiring.Component):
    """Few pins around a wide design: inputs shift in from `din`, outputs fold by XOR into `dout`
    (registered), so placement fits a small package and no logic is optimized away."""

    def __init__(self, inner: wiring.Component) -> None:
        self.inner = inner
        super().__init__({"din": In(8), "load": In(1), "dout": Out(8)})

    def elaborate(self, platform: object) -> Module:
        m = Module()
        m.submodules.inner = inner = self.inner
        ports = [(path, member) for path, member in inner.signature.members.flatten() if member.is_port]
        inputs = [(path, member) for path, member in ports if member.flow.name == "In"]
        outputs = [(path, member) for path, member in ports if member.flow.name == "Out"]
        width = sum(_width(member) for _, member in inputs)
        chain = Signal(max(width, 8))
        with m.If(self.load):
            m.d.sync += chain.eq((chain << 8) | self.din)
        offset = 0
        for path, _ in inputs:
            port = Value.cast(_port(inner, path))
            m.d.comb += port.eq(chain[offset : offset + len(port)])
            offset += len(port)
        folded = 0
        for path, _ in outputs:
            port = Value.cast(_port(inner, path))
            for start in range(0, len(port), 8):
                folded = folded ^ port[start : start + 8]
        m.d.sync += self.dout.eq(folded)
        return m


def _width(member: wiring.Member) -> int:
    from amaranth import Shape

    return Shape.cast(member.shape).width


def _port(component: wiring.Component, path: tuple) -> Signal:
    obj: object = component
    for part in path:
        obj = getattr(obj, part) if isinstance(part, str) else obj[part]  # type: ignore[index]
    return obj  # type: ignore[return-value]
