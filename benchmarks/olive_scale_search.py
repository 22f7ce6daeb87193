"""Squared error of OliVe's two scale searches: numerics' own (`scale_mode="mse"`) and the reference's
(`scale_mode="olive"`, x_max * i / 100 with i in range(75, 150, 2), and the (75, 250) of its scripts).

    python benchmarks/olive_scale_search.py [--cache DIR]

Tensors: Gaussian and Student-t (2 and 3 degrees of freedom) 256 x 1024, and the largest weight
matrix (output channels x the rest) of each bundled model, trained on the digits or loaded from
`--cache` (default: $BITFAB_CACHE/models, else .bitfab_cache/models). Prints MSE / mean(x^2) per
tensor, per tensor and per output channel, for ovp4 and ovp8. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

import numerics

SEARCHES = {"mse": {"scale_mode": "mse"}, "olive": {"scale_mode": "olive"},
            "olive 75-250": {"scale_mode": "olive", "search_percent": (75, 250)}}  # fmt: skip


def synthetic() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {
        "gaussian 256x1024": rng.standard_normal((256, 1024)),
        "student-t3 256x1024": rng.standard_t(3, (256, 1024)),
        "student-t2 256x1024": rng.standard_t(2, (256, 1024)),
    }


def bundled_weights(cache: Path) -> dict[str, np.ndarray]:
    """The largest weight of each bundled model, as (output channels, fan-in)."""
    import models

    split = models.digits()
    found = {}
    for name in sorted(models.MODELS):
        model = models.float_model(name, split, cache=cache)
        weights = [(key, p.detach().double().numpy()) for key, p in model.state_dict().items() if p.ndim >= 2]
        key, weight = max(weights, key=lambda kv: kv[1].size)
        found[f"{name} {key} {weight.shape[0]}x{weight[0].size}"] = weight.reshape(weight.shape[0], -1)
    return found


def relative_mse(x: np.ndarray, bits: int, per_channel: bool, options: dict[str, object]) -> float:
    fmt = numerics.OVPFormat(bits, channel_axis=0 if per_channel else None, **options)  # type: ignore[arg-type]
    return float(np.mean((fmt.quantize(x) - x) ** 2) / np.mean(x**2))


def main() -> None:
    default = Path(os.environ.get("BITFAB_CACHE", Path(__file__).resolve().parents[1] / ".bitfab_cache")) / "models"
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=default, help="float weights of the bundled models")
    args = parser.parse_args()
    tensors = {**synthetic(), **bundled_weights(args.cache)}
    header = ["tensor", "scale per", *(f"ovp{b} {s}" for b in (4, 8) for s in SEARCHES)]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name, x in tensors.items():
        for per_channel in (False, True):
            cells = [f"{relative_mse(x, b, per_channel, o):.3e}" for b in (4, 8) for o in SEARCHES.values()]
            print(f"| {name} | {'channel' if per_channel else 'tensor'} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
