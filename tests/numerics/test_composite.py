"""What every composite format shares (blocks along an axis, encoded bundles), over every registered one."""

from __future__ import annotations

import numpy as np
import pytest

import numerics

COMPOSITES = [name for name in numerics.formats() if isinstance(numerics.get(name), numerics.CompositeFormat)]
EMPTY = [((0, 32), -1), ((0, 32), 0), ((5, 0), -1), ((0,), 0), ((2, 0, 3), 1)]


def _fits(name: str, shape: tuple[int, ...], axis: int) -> bool:
    """Per-channel formats need a channel axis other than the block axis."""
    channel = getattr(numerics.get(name), "channel_axis", None)
    return channel is None or (len(shape) > 1 and channel % len(shape) != axis % len(shape))


@pytest.mark.parametrize(("name", "shape", "axis"), [(n, s, a) for n in COMPOSITES for s, a in EMPTY if _fits(n, s, a)])
def test_empty_in_empty_out(name: str, shape: tuple[int, ...], axis: int) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, numerics.CompositeFormat)
    encoded = fmt.encode(np.zeros(shape), axis=axis)
    decoded = encoded.decode()
    assert decoded.shape == shape and decoded.dtype == np.float64
    assert fmt.quantize(np.zeros(shape, np.float32), axis=axis).shape == shape
    for lowered in encoded.lower_full():
        assert lowered.shape == shape


@pytest.mark.parametrize("name", [n for n in COMPOSITES if isinstance(numerics.get(n), numerics.BlockFormat)])
def test_empty_block_encodings_pack_and_multiply(name: str) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, numerics.BlockFormat)
    encoded = fmt.encode(np.zeros((0, 40)))
    assert encoded.elements.shape == (0, -(-40 // fmt.block_size), fmt.block_size)
    again = fmt.unpack(*encoded.pack(), (0, 40), tensor_scale=encoded.tensor_scale)
    assert again.decode().shape == (0, 40)
    weights = fmt.encode(np.ones((40, 3)), axis=0)
    assert numerics.matmul(encoded, weights, fmt, fmt).shape == (0, 3)


@pytest.mark.parametrize("name", [n for n in numerics.formats() if isinstance(numerics.get(n), numerics.ElementFormat)])
def test_element_formats_take_empty_inputs(name: str) -> None:
    fmt = numerics.get(name)
    assert isinstance(fmt, numerics.ElementFormat)
    assert fmt.decode(fmt.encode(np.zeros((0, 3)))).shape == (0, 3)
