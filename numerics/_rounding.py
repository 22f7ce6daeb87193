"""Rounding modes shared by every format, and the parsing of user-facing rounding names."""

from __future__ import annotations

import enum


class Rounding(enum.IntEnum):
    """How a value between two representable neighbours is resolved.

    The integer values are what the numba kernels receive, so they are part of the kernel ABI.
    """

    NEAREST_EVEN = 0
    NEAREST_AWAY = 1
    TOWARD_ZERO = 2
    TOWARD_POSITIVE = 3
    TOWARD_NEGATIVE = 4
    STOCHASTIC = 5


_ALIASES: dict[str, Rounding] = {
    "nearest_even": Rounding.NEAREST_EVEN,
    "rne": Rounding.NEAREST_EVEN,
    "nearest_away": Rounding.NEAREST_AWAY,
    "rna": Rounding.NEAREST_AWAY,
    "toward_zero": Rounding.TOWARD_ZERO,
    "rtz": Rounding.TOWARD_ZERO,
    "toward_positive": Rounding.TOWARD_POSITIVE,
    "up": Rounding.TOWARD_POSITIVE,
    "toward_negative": Rounding.TOWARD_NEGATIVE,
    "down": Rounding.TOWARD_NEGATIVE,
    "stochastic": Rounding.STOCHASTIC,
}


def as_rounding(rounding: Rounding | str) -> Rounding:
    """Accept a `Rounding` or one of its names (case-insensitive) and return the enum."""
    if isinstance(rounding, Rounding):
        return rounding
    if isinstance(rounding, str) and rounding.lower() in _ALIASES:
        return _ALIASES[rounding.lower()]
    allowed = ", ".join(sorted(_ALIASES))
    raise ValueError(f"rounding must be a Rounding or one of {allowed}; got {rounding!r}")
