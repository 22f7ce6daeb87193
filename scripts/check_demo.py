"""CI's check of the main job: the demo's report.json says the co-simulated layer passed, was
bit-exact against numerics and took exactly the modelled cycles.

python scripts/check_demo.py demo_out/report.json   # exits 1 with the reason otherwise
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def problems(report: dict) -> list[str]:
    cosim = report.get("cosim", {})
    found = []
    if not cosim.get("bit_exact"):
        found.append(f"the layer was not bit-exact: {cosim.get('first_mismatch')}")
    measured, model = cosim.get("cycles_layer_all_images_measured"), cosim.get("cycles_layer_all_images_model")
    if measured is None or measured != model:
        found.append(f"measured {measured} cycles, the model says {model}")
    if not cosim.get("passed"):
        found.append("the co-simulation did not pass (deviation bound or hardware-in-the-loop predictions)")
    return found


def main(path: str) -> int:
    report = json.loads(Path(path).read_text())
    found = problems(report)
    cosim = report.get("cosim", {})
    for problem in found:
        print(f"demo check: {problem}", file=sys.stderr)
    if not found:
        print(f"demo check: {report['format']} {cosim['layer']} on the {report['array']} array: bit-exact, "
              f"{cosim['cycles_layer_all_images_measured']:,} cycles = model, "
              f"Fmax {report['synthesis'].get('fmax_mhz', '-')} MHz")  # fmt: skip
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1] if len(sys.argv) > 1 else "demo_out/report.json"))
