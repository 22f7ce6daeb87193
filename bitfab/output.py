"""Output people can read: a console that never truncates when piped, tables that fold rather
than cut, and JSON results with their provenance, written atomically."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from . import paths

PIPED_WIDTH = 10_000  # rich would otherwise lay tables out for 80 columns and cut names with "..."


def console() -> Console:
    """A terminal keeps its width (tables fold long cells); a pipe or file gets whole lines."""
    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPED_WIDTH, soft_wrap=True)


def table(title: str, columns: list[str], text_columns: int = 1, caption: str | None = None) -> Table:
    """The first `text_columns` columns left-aligned, numbers right-aligned; long cells fold."""
    result = Table(title=title, caption=caption)
    for i, column in enumerate(columns):
        result.add_column(column, justify="left" if i < text_columns else "right", overflow="fold")
    return result


def write_json(path: Path, payload: dict[str, Any], provenance: dict[str, Any]) -> Path:
    """`payload` with a `provenance` entry (version, commit, tools, command line, date), atomically."""
    return paths.write_text(path, json.dumps({**payload, "provenance": provenance}, indent=2) + "\n")
