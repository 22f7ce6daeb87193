"""`bitfab train`: a model on the digits, float then PTQ (or QAT) to a format, with accuracies;
`bitfab accuracy`: the PTQ and QAT accuracy of every model x format pair, as a table."""

from __future__ import annotations

import argparse
import json

from rich.console import Console

import models

from . import output, paths
from .options import positive_int


def cmd_train(args: argparse.Namespace, console: Console) -> int:
    fmt = None if args.format == "float" else args.format
    if fmt is not None:
        models.quantizers(fmt)  # an unknown format fails before any training
    out = paths.output_directory(args.output)
    what = f"training {args.model}" + ("" if fmt is None else f" and quantizing to {args.format}")
    with args.reporter.stage(what):

        def advance(epoch: int, epochs: int) -> None:
            args.reporter.count(f"{what}: epochs", epoch, epochs)

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


def _names(text: str, known: list[str] | tuple[str, ...], what: str) -> list[str]:
    names = list(known) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(f"unknown {what} {', '.join(unknown) or repr(text)}; available: {', '.join(known)} or all")
    return names


def cmd_accuracy(args: argparse.Namespace, console: Console) -> int:
    if args.model is not None:
        from .byom_cli import cmd_accuracy_user_model

        return cmd_accuracy_user_model(args, console)
    if args.inputs is not None or args.labels is not None or args.calibration is not None:
        raise ValueError("--inputs, --labels and --calibration go with --model (a user's float model)")
    names = _names(args.models, models.MODELS, "model")
    formats = _names(args.formats, sorted(models.SCHEMES), "format")
    out = paths.output_directory(args.output)
    split = models.digits()
    rows = []
    with args.reporter.stage(f"PTQ and QAT of {len(names)} models x {len(formats)} formats"):
        for name in names:
            base = models.float_model(name, split, cache=out, seed=args.seed)
            float_accuracy = models.accuracy(base, split.test_images, split.test_labels)
            for fmt in formats:
                ptq = models.quantized_model(name, fmt, base, split, seed=args.seed)
                qat = models.quantized_model(name, fmt, base, split, qat_epochs=args.qat_epochs, seed=args.seed)
                rows.append({"model": name, "format": fmt, "float": float_accuracy,
                             "ptq": models.accuracy(ptq, split.test_images, split.test_labels),
                             "qat": models.accuracy(qat, split.test_images, split.test_labels)})  # fmt: skip
                args.reporter.count("model x format pairs", len(rows), len(names) * len(formats))
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    table = output.table(f"test accuracy, {len(split.test_labels)} digits (seed {args.seed}, QAT {args.qat_epochs} "
                         "epochs)", ["model", "format", "float", "PTQ", "QAT"], text_columns=2)  # fmt: skip
    for row in rows:
        table.add_row(row["model"], row["format"], *(f"{row[k]:.2%}" for k in ("float", "ptq", "qat")))
    console.print(table)
    return 0


def add_train_command(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("accuracy", help="PTQ and QAT test accuracy of models x formats (a table)")
    p.add_argument("--models", default="all", help="comma-separated, or all: " + ", ".join(models.MODELS))
    p.add_argument("--formats", default="all", help="comma-separated, or all: " + ", ".join(sorted(models.SCHEMES))
                   + " (with --model, all is a default set: int8, int8_channel, int4_channel, fp8_e4m3, fp8_e5m2, "
                   "fp6_e2m3, mxfp8_e4m3, mxfp4, mxint8, ovp8, posit8_1)")  # fmt: skip
    p.add_argument("--model", metavar="SPEC", help="instead of the bundled models: a user's float model, "
                   "path/to/file.py:factory, quantized by bitfab to each format (needs --inputs)")  # fmt: skip
    p.add_argument("--inputs", metavar="X.npy", help="with --model: the inputs to evaluate")
    p.add_argument("--labels", metavar="Y.npy", help="with --model: their integer labels (for accuracy)")
    p.add_argument("--calibration", metavar="C.npy", help="with --model: activation calibration inputs (default: "
                   "--inputs)")  # fmt: skip
    p.add_argument("--qat-epochs", type=positive_int, default=3, help="QAT epochs from the float weights")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("-o", "--output", default="train_out", metavar="OUTDIR", help="where float weights are cached")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_accuracy)

    p = sub.add_parser("train", help="train a small model on the digits and quantize it (Brevitas)")
    p.add_argument("--model", required=True, choices=list(models.MODELS), help="a bundled model")
    p.add_argument("--format", default="float", help="float, or one of: " + ", ".join(sorted(models.SCHEMES)))
    p.add_argument("--qat", action="store_true", help="fine-tune through the quantizers (default: PTQ only)")
    p.add_argument("--qat-epochs", type=positive_int, default=3, help="QAT epochs from the float weights")
    p.add_argument("--seed", type=int, default=0, help="training seed")
    p.add_argument("-o", "--output", default="train_out", metavar="OUTDIR", help="where float weights are cached")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(run=cmd_train)
