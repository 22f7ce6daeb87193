"""bitfab: the command-line application tying numerics, hardware, simulation and cost together."""

__all__ = ["__version__"]
__version__ = "0.1.0"
