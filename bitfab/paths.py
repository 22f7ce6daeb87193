"""Where the CLI reads and writes: user paths made absolute once, output directories checked
before any work, the shared build cache, and results written atomically (whole or absent)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

CACHE_VARIABLE = "BITFAB_CACHE"


def absolute(path: str | Path) -> Path:
    """`path` against the directory the user started in (with ~ expanded), once, at the door."""
    return Path(path).expanduser().absolute()


def output_directory(path: str | Path, flag: str = "-o") -> Path:
    """An absolute, existing, writable directory at `path` (created with its parents), or a
    ValueError naming the flag, the path and what is wrong."""
    directory = absolute(path)
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"{flag} {path} is a file; give a directory (it is created if missing)")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{flag} {path}: cannot create the directory ({error.strerror or error})") from None
    try:  # a real write: permissions alone say yes to root, and to pseudo file systems like /proc
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".bitfab-probe-"):
            pass
    except OSError as error:
        raise ValueError(f"{flag} {path}: the directory is not writable ({error.strerror or error})") from None
    return directory


def output_file(path: str | Path, flag: str) -> Path:
    """An absolute file path whose directory exists and is writable (created if missing)."""
    file = absolute(path)
    if file.is_dir():
        raise ValueError(f"{flag} {path} is a directory; give a file name")
    output_directory(file.parent, f"{flag} {path}: its directory")
    return file


def cache_directory(flag_value: str | Path | None = None) -> Path:
    """The build cache shared between runs (Verilator builds, synthesis runs, trained float
    weights): --cache-dir, else $BITFAB_CACHE, else the user's cache directory."""
    if flag_value is not None:
        return output_directory(flag_value, "--cache-dir")
    if configured := os.environ.get(CACHE_VARIABLE):
        return output_directory(configured, f"${CACHE_VARIABLE}")
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return output_directory(Path(base) / "bitfab", "the cache directory")


@contextmanager
def atomic(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers that go by it still work); it
    replaces `path` only when the block finishes, so a result is never left half-written."""
    temporary = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        yield temporary
        temporary.replace(path)
    finally:
        temporary.unlink(missing_ok=True)


def write_text(path: Path, text: str) -> Path:
    """Write `text` to `path` atomically."""
    with atomic(path) as temporary:
        temporary.write_text(text)
    return path
