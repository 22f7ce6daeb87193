"""Line budget per source file (house style: one concept per file, aim for <= 400 lines).

python scripts/loc.py        # prints the largest files, exits 1 if any exceeds MAX_LINES
"""

from __future__ import annotations

import sys
from pathlib import Path

MAX_LINES = 450
PACKAGES = ("numerics", "hw", "sim", "models", "synth", "bitfab", "benchmarks", "scripts")


def line_counts(root: Path) -> dict[str, int]:
    counts = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            counts[str(path.relative_to(root))] = len(path.read_text().splitlines())
    return counts


def main() -> int:
    root = Path(__file__).resolve().parents[1]
    counts = line_counts(root)
    for name, lines in sorted(counts.items(), key=lambda kv: -kv[1])[:10]:
        print(f"{lines:6d}  {name}")
    print(f"{sum(counts.values()):6d}  total in {len(counts)} files")
    over = {name: lines for name, lines in counts.items() if lines > MAX_LINES}
    for name, lines in over.items():
        print(f"{name} has {lines} lines; the budget is {MAX_LINES}: split it by concern", file=sys.stderr)
    return 1 if over else 0


if __name__ == "__main__":
    raise SystemExit(main())
