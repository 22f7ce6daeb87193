"""`bitfab train`: a model on the digits, float then PTQ (or QAT) to a format, with accuracies."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.progress import Progress

import models


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    fmt = None if args.format == "float" else args.format
    if fmt is not None:
        models.quantizers(fmt)  # an unknown format fails before any training
    out = Path(args.output)
    with Progress(console=console, transient=True, disable=args.json) as progress:
        task = progress.add_task(f"training {args.model}", total=None)

        def advance(epoch: int, epochs: int) -> None:
            progress.update(task, completed=epoch, total=epochs)

        trained = models.train(args.model, fmt, qat_epochs=args.qat_epochs if args.qat else 0, cache=out,
                               seed=args.seed, progress=advance)  # fmt: skip
    summary = {"model": args.model, "format": args.format, "qat": args.qat, "float_accuracy": trained.float_accuracy,
               "accuracy": trained.accuracy, "weights": str(out)}  # fmt: skip
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        mode = "QAT" if args.qat else "PTQ"
        console.print(f"{args.model}: float accuracy {trained.float_accuracy:.2%}"
                      + ("" if fmt is None else f", {args.format} ({mode}) {trained.accuracy:.2%}"))  # fmt: skip
        console.print(f"float weights cached in {out}")
    return 0


def add_train_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("train", help="train a small model on the digits and quantize it (Brevitas)")
    p.add_argument("--model", required=True, choices=list(models.MODELS))
    p.add_argument("--format", default="float", help="float, or one of: " + ", ".join(sorted(models.WEIGHT_QUANTIZERS)))
    p.add_argument("--qat", action="store_true", help="fine-tune through the quantizers (default: PTQ only)")
    p.add_argument("--qat-epochs", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default="train_out", metavar="OUTDIR", help="where float weights are cached")
    p.add_argument("--json", action="store_true")
    p.set_defaults(run=cmd_train)
