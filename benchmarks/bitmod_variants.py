"""Accuracy of the bundled models with BitMoD weights as its reference computes them (`bitmod4`,
`bitmod3`: fp16 quotient, fp16 error selection) and with the idealised exact rule (`_exact`).

    python benchmarks/bitmod_variants.py [--seeds 5]

Every Linear/Conv2d weight of each bundled float model (trained on the digits into the CLI's
cache: the first run trains 3 nets x seeds, about 15 minutes for 5 seeds) is rounded to fp16 and
quantized per output row (groups along the input features); activations stay float. Prints the
accuracy summed over the seeds' 360 test images each. Not a test: nothing is asserted.
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch

import models
import numerics
from bitfab.paths import cache_directory

NAMES = ("bitmod4", "bitmod4_exact", "bitmod3", "bitmod3_exact")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    split = models.digits()
    for net in models.MODELS:
        correct = dict.fromkeys(NAMES, 0)
        for seed in range(args.seeds):
            base = models.float_model(net, split, cache_directory() / "models", seed)
            for name in NAMES:
                model = models.build(net)
                model.load_state_dict(base.state_dict())
                for layer in (m for m in model.modules() if isinstance(m, torch.nn.Linear | torch.nn.Conv2d)):
                    weight = layer.weight.detach().numpy().reshape(len(layer.weight), -1).astype(np.float16)
                    quantized = numerics.get(name).quantize(weight).reshape(layer.weight.shape)
                    layer.weight.data = torch.from_numpy(quantized).float()
                correct[name] += round(360 * models.accuracy(model, split.test_images, split.test_labels))
        images = 360 * args.seeds
        print(net, "  ".join(f"{name} {correct[name] / images:.2%}" for name in NAMES), f"({images} images)")


if __name__ == "__main__":
    main()
