"""What every composite format (block, pair, mixed) shares: an encoded bundle and an exact view.

A composite format encodes a tensor into element codes plus side information (scales,
selectors). `lower_full` folds all of it into one exact (significand, exponent) per element, so
the exact dot products of `numerics.dot` work on composite operands unchanged.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np


class Encoded(abc.ABC):
    """The result of a composite encode; `format.decode(encoded)` inverts it."""

    @abc.abstractmethod
    def lower_full(self) -> tuple[np.ndarray, np.ndarray]:
        """Exact (significand, exponent) per element, in the input's shape, all scales folded in."""

    def lower_with_specials(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`lower_full` plus, per element, its value where it is NaN or +-Inf (else 0.0); such
        elements lower to significand 0, as element formats' NaN/Inf codes do in `dot`."""
        sig, exp = self.lower_full()
        return sig, exp, np.zeros(sig.shape)

    @abc.abstractmethod
    def decode(self) -> np.ndarray:
        """Values in the input's shape (float64)."""


class CompositeFormat(abc.ABC):
    """A format whose codes come with side information."""

    name: str

    @property
    @abc.abstractmethod
    def bits(self) -> float:
        """Storage bits per element, side information included (amortized)."""

    @abc.abstractmethod
    def encode(self, x: Any, axis: int = -1) -> Encoded: ...

    def decode(self, encoded: Encoded) -> np.ndarray:
        return encoded.decode()

    def quantize(self, x: Any, axis: int = -1) -> np.ndarray:
        """decode(encode(x)) in x's shape."""
        return self.encode(x, axis=axis).decode()

    def __str__(self) -> str:
        return self.name

    def spec(self) -> dict[str, Any]:
        return {"name": self.name, "bits": self.bits}


def pack_bits(codes: np.ndarray, bits: int) -> np.ndarray:
    """Pack codes of `bits` bits into bytes, LSB first: element 0 takes the lowest bits of byte 0
    (for 4-bit codes: element 2i in the low nibble, 2i+1 in the high nibble). Pads with zeros."""
    flat = np.ascontiguousarray(codes, dtype=np.uint64).reshape(-1)
    if bits == 8:
        return flat.astype(np.uint8)
    planes = ((flat[:, None] >> np.arange(bits, dtype=np.uint64)) & 1).astype(np.uint8)
    return np.packbits(planes.reshape(-1), bitorder="little")


def unpack_bits(data: np.ndarray, bits: int, count: int) -> np.ndarray:
    """Inverse of pack_bits: the first `count` codes (uint8 for <= 8 bits)."""
    raw = np.asarray(data, dtype=np.uint8).reshape(-1)
    if bits == 8:
        return raw[:count].copy()
    if raw.size * 8 < count * bits:
        raise ValueError(f"{raw.size} bytes hold fewer than {count} codes of {bits} bits")
    planes = np.unpackbits(raw, bitorder="little")[: count * bits].reshape(count, bits).astype(np.uint16)
    return (planes << np.arange(bits, dtype=np.uint16)).sum(axis=1).astype(np.uint8 if bits <= 8 else np.uint16)


def blocks_view(x: np.ndarray, axis: int, block_size: int, partial: str, who: str) -> tuple[np.ndarray, int]:
    """Move `axis` last and split it into (n_blocks, block_size), zero-padding a partial block."""
    if x.ndim == 0:
        raise ValueError(f"{who}: needs an array with at least one axis, got a scalar")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"{who}: axis must be in [{-x.ndim}, {x.ndim - 1}], got {axis}")
    moved = np.moveaxis(x, axis, -1)
    length = moved.shape[-1]
    pad = (-length) % block_size
    if pad and partial == "reject":
        raise ValueError(f"{who}: axis length {length} is not a multiple of the block size {block_size}")
    if pad:
        moved = np.concatenate([moved, np.zeros((*moved.shape[:-1], pad), moved.dtype)], axis=-1)
    # the block count is spelled out: reshape cannot infer -1 when another axis is 0
    return np.ascontiguousarray(moved).reshape(*moved.shape[:-1], (length + pad) // block_size, block_size), length


def unblock(values: np.ndarray, shape: tuple[int, ...], axis: int, length: int) -> np.ndarray:
    """Inverse of blocks_view for decoded values."""
    flat = values.reshape(*values.shape[:-2], values.shape[-2] * values.shape[-1])[..., :length]
    return np.moveaxis(flat, -1, axis % len(shape)).reshape(shape)
