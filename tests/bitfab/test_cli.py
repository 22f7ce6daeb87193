"""The bitfab command line: tables, JSON, files written, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bitfab.cli import main


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_formats_table_and_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "formats")
    assert code == 0 and "fp8_e4m3" in out and "448" in out
    code, out, _ = run(capsys, "formats", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["fp8_e5m2"] == {"kind": "element", "name": "fp8_e5m2", "bits": 8, "max": 57344.0,
                                "min_normal": 2.0**-14, "min_subnormal": 2.0**-16, "inf": True,
                                "nan": True}  # fmt: skip
    assert rows["mxfp4"] == {"kind": "composite", "name": "mxfp4", "bits": 4.25, "element": "fp4_e2m1",
                             "block_size": 32, "scale": "e8m0", "scale_rule": "floor"}  # fmt: skip


def test_quantize_writes_codes_and_reports_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    x = np.random.default_rng(0).standard_normal((16, 32)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, out, _ = run(capsys, "quantize", "--format", "int8", str(tmp_path / "x.npy"), "-o", str(tmp_path / "q.npz"),
                       "--json")  # fmt: skip
    assert code == 0
    stats = json.loads(out)
    saved = np.load(tmp_path / "q.npz")
    assert saved["codes"].dtype == np.uint8 and saved["codes"].shape == (16, 32) and str(saved["format"]) == "int8"
    err = saved["values"] - x.astype(np.float64)
    assert stats["max_abs_error"] == pytest.approx(np.abs(err).max())
    assert stats["sqnr_db"] == pytest.approx(10 * np.log10(np.sum(x.astype(np.float64) ** 2) / np.sum(err**2)))
    assert stats["max_abs_error"] <= saved["scale"] / 2 * (1 + 1e-9)


def test_compare_prints_formats_side_by_side_and_plots(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.save(tmp_path / "x.npy", np.random.default_rng(1).standard_normal(1000))
    code, out, _ = run(capsys, "compare", str(tmp_path / "x.npy"), "--formats", "int4,fp4_e2m1,fp8_e4m3",
                       "--png", str(tmp_path / "h.png"), "--json")  # fmt: skip
    rows = json.loads(out)
    assert code == 0 and [r["format"] for r in rows] == ["int4", "fp4_e2m1", "fp8_e4m3"]
    assert rows[2]["sqnr_db"] > rows[0]["sqnr_db"]
    assert (tmp_path / "h.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["quantize", "--format", "int9x", "{x}", "-o", "{tmp}/o.npz"], "unknown format 'int9x'"),
        (["quantize", "--format", "int8", "{tmp}/missing.npy", "-o", "{tmp}/o.npz"], "does not exist"),
        (["compare", "{s}", "--formats", "int8"], "holds <U5; expected a real numeric array (float or int)"),
        (["compare", "{n}", "--formats", "fp4_e2m1"], "fp4_e2m1 has no NaN, but the input holds NaN at index (1,)"),
        (["compare", "{x}", "--formats", ","], "--formats needs at least one format name"),
    ],
)
def test_bad_input_gives_one_clear_line(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    np.save(tmp_path / "x.npy", np.ones(4))
    np.save(tmp_path / "s.npy", np.array(["hello"]))
    np.save(tmp_path / "n.npy", np.array([1.0, np.nan]))
    paths = {"x": tmp_path / "x.npy", "s": tmp_path / "s.npy", "n": tmp_path / "n.npy", "tmp": tmp_path}
    code, _, err = run(capsys, *[a.format(**paths) for a in argv])
    assert code == 2
    assert err.startswith("bitfab: error: ") and message in err and err.count("\n") == 1


def test_composite_formats_quantize_and_compare(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bitfab.demo import synthetic_weights

    np.save(tmp_path / "w.npy", synthetic_weights())
    code, out, _ = run(capsys, "quantize", "--format", "mxfp4", str(tmp_path / "w.npy"), "-o", str(tmp_path / "q.npz"))
    saved = np.load(tmp_path / "q.npz")
    assert code == 0 and saved["elements"].shape == (256, 16, 32) and saved["scales"].shape == (256, 16)
    names = "int4,mxfp4,ovp4,bitmod4,nvfp4"
    code, out, _ = run(capsys, "compare", str(tmp_path / "w.npy"), "--formats", names, "--json")
    sqnr = {r["format"]: r["sqnr_db"] for r in json.loads(out)}
    assert code == 0 and list(sqnr) == names.split(",")
    assert min(sqnr["mxfp4"], sqnr["ovp4"], sqnr["bitmod4"], sqnr["nvfp4"]) > sqnr["int4"]


def test_generate_pe_writes_verilog_and_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "generate", "pe", "--a", "fp8_e4m3", "--b", "int4", "--acc", "int24_sat", "--pipeline",
                       "2", "-o", str(tmp_path), "--json")  # fmt: skip
    info = json.loads(out)
    assert code == 0 and (tmp_path / "mac_pe.v").read_text().count("module mac_pe") == 1
    assert info["acc_width"] == 24 and info["latency_cycles"] == 3
    ports = {p["name"]: p for p in info["ports"]}
    assert ports["a"] == {"name": "a", "direction": "in", "width": 8, "signed": False}
    assert ports["acc"] == {"name": "acc", "direction": "out", "width": 24, "signed": True}
    assert json.loads((tmp_path / "mac_pe.json").read_text())["a_format"] == "fp8_e4m3"


def test_cosim_pe_runs_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cosim", "pe", "--a", "int4", "--b", "fp4_e2m1", "--random", "512", "-o", str(tmp_path),
                       "--json")  # fmt: skip
    report = json.loads(out)
    # the 512 pairs, then two k_terms-long segments of the extreme products (k_max 1024 by default)
    assert code == 0 and report["passed"] and report["checked_macs"] == 512 + 2 * 1024 and report["mismatches"] == 0
    assert report["operand_pairs"] == 512 and report["k_terms"] == 1024 and report["accumulator"] == "exact"


def test_cosim_pe_dumps_a_waveform_on_request(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, _ = run(capsys, "cosim", "pe", "--a", "int4", "--b", "int4", "--random", "64", "--waves", "-o",
                     str(tmp_path))  # fmt: skip
    assert code == 0
    assert list(tmp_path.rglob("*.vcd"))


def test_bad_accumulator_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "generate", "pe", "--a", "int8", "--b", "int8", "--acc", "float", "-o", str(tmp_path))
    assert code == 2
    assert err.splitlines()[-1] == (
        "bitfab: error: argument --acc: must be exact, int{W} (wrapping) or int{W}_sat (saturating), W in 2..63 "
        "(e.g. int32), or a float accumulator {F}[_w{N}[r]][_rz]: F a minifloat (fp32, bf16, fp16, fp8_e5m2, ...), "
        "_wN an alignment window of N bits (truncated; _wNr rounded to nearest even), _rz adds rounded toward zero "
        "(e.g. fp32, fp32_w14, bf16_rz), got 'float' (see `bitfab generate pe --help`)"
    )
    code, _, err = run(capsys, "generate", "pe", "--a", "mxfp4", "--b", "int8", "-o", str(tmp_path))
    assert code == 2 and "no decoder for mxfp4" in err


def test_bad_float_accumulators_say_why(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "generate", "pe", "--a", "fp8_e4m3", "--b", "fp8_e4m3", "--acc", "bf16_w9", "-o",
                       str(tmp_path))  # fmt: skip
    assert code == 2
    assert err.splitlines()[-1] == (
        "bitfab: error: argument --acc: 'bf16_w9': window must be between 2 and the accumulator's 8 significand bits "
        "(bf16), got 9 (see `bitfab generate pe --help`)"
    )


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run from a fresh working directory, so -o is relative as a person types it."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_generate_pe_with_a_float_accumulator(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "generate", "pe", "--a", "fp8_e4m3", "--b", "fp8_e4m3", "--acc", "fp32", "-o", "gen")
    assert code == 0, err
    assert out.splitlines()[0] == ("fp8_e4m3 x fp8_e4m3 MAC PE: fp32 float accumulator (32-bit codes, order "
                                   "sequential), latency 2 cycles")  # fmt: skip
    assert sorted(p.name for p in (in_tmp / "gen").iterdir()) == ["mac_pe.json", "mac_pe.v"]
    info = json.loads((in_tmp / "gen" / "mac_pe.json").read_text())
    assert (info["accumulator"], info["acc_width"], info["acc_lsb_exponent"]) == ("fp32", 32, None)
    assert {p["name"]: p for p in info["ports"]}["acc"] == {"name": "acc", "direction": "out", "width": 32,
                                                            "signed": False}  # fmt: skip
    acc, flags = info["contract"]["acc"], info["contract"]["flags"]
    layout = ("acc is the unsigned 32-bit code of fp32 (accumulator fp32), not a scaled integer: sign bit 31, "
              "exponent field e in bits [30:23] with bias 127, mantissa m in bits [22:0];")  # fmt: skip
    assert acc.startswith(layout)
    for part in ("IEEE specials", "Every sum starts at +0 (code 0).", "added in k order", "(full alignment)",
                 "rounds it once to nearest, ties to even", "becomes +-Inf", "NaN results are code 0x7fc00000",
                 "never -0"):  # fmt: skip
        assert part in acc, part
    assert flags.startswith("nan, pos_inf and neg_inf are read off acc")


def test_float_pe_contract_names_window_rounding_and_overflow(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "generate", "pe", "--a", "int8", "--b", "int8", "--acc", "fp16_w8r_rz", "-o", "gen",
                         "--json")  # fmt: skip
    assert code == 0, err
    acc = json.loads(out)["contract"]["acc"]
    assert "code of fp16 (accumulator fp16_w8r_rz)" in acc and "bias 15" in acc and "largest finite 65504.0" in acc
    assert "cut to a window of 8 bits from the larger one's leading bit (the bits below rounded to nearest" in acc
    assert "rounds it once toward zero; a sum beyond the range becomes the largest finite of its sign" in acc


def test_cosim_pe_with_a_float_accumulator(in_tmp: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same design as tests/sim/test_float_mac_cosim.py's fast case (one Verilator build)."""
    code, out, err = run(capsys, "cosim", "pe", "--a", "fp8_e5m2", "--b", "fp8_e5m2", "--acc", "fp16", "--k-max",
                         "16", "--random", "512", "-o", "out", "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["passed"] and report["mismatches"] == 0 and report["accumulator"] == "fp16"
    assert report["acc_width"] == 16 and report["checked_macs"] >= 512
    assert json.loads((in_tmp / "out" / "report.json").read_text())["passed"]


def test_generate_systolic_writes_verilog_and_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "generate", "systolic", "--rows", "4", "--cols", "2", "--a", "int8", "--b", "int4",
                       "--dataflow", "os", "--pipeline", "2", "-o", str(tmp_path), "--json")  # fmt: skip
    info = json.loads(out)
    assert code == 0 and (tmp_path / "systolic_array.v").read_text().count("module systolic_array") == 1
    assert info["cycle_formula"] == ("floor((F-1)/2)*max(S, 2T) + ((F-1) mod 2)*T + S; F = ceil(M/R)*ceil(N/C), "
                                     "T = K + R + C - 2, S = T + R + 2 + 3")  # fmt: skip
    ports = {p["name"]: p for p in info["ports"]}
    assert ports["a__payload"] == {"name": "a__payload", "direction": "in", "width": 32, "signed": False}
    assert ports["a__ready"]["direction"] == "out"
    assert ports["out__payload"]["width"] == 2 * (info["acc_width"] + 3)


def test_cosim_systolic_reports_bit_exactness_and_cycles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "cosim", "systolic", "--rows", "2", "--cols", "2", "--a", "int4", "--b", "int4",
                       "--double-buffer", "--gemm", "5x7x3", "-o", str(tmp_path), "--json")  # fmt: skip
    report = json.loads(out)
    assert code == 0 and report["passed"] and report["mismatches"] == 0
    assert report["cycles_measured"] == report["cycles_model"] > 0 and report["macs"] == 105


def test_systolic_bad_options_give_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["cosim", "systolic", "--rows", "2", "--cols", "2", "--a", "int8", "--b", "int8", "-o", str(tmp_path)]
    code, _, err = run(capsys, *base, "--gemm", "5x7")
    assert code == 2 and "argument --gemm: must be MxKxN with positive integers (e.g. 8x8x8), got '5x7'" in err
    code, _, err = run(capsys, *base, "--gemm", "300x7x2")
    assert code == 2 and "M=300 exceeds this weight-stationary array's m_max=64" in err
    code, _, err = run(capsys, "generate", "systolic", "--rows", "1", "--cols", "2", "--a", "int8", "--b", "int8",
                       "-o", str(tmp_path))  # fmt: skip
    assert code == 2 and "rows must be between 2 and 64, got 1" in err


def test_generate_bitserial_writes_verilog_and_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "generate", "bitserial", "--lanes", "4", "--cols", "2", "--group", "16", "-o",
                       str(tmp_path), "--json")  # fmt: skip
    info = json.loads(out)
    assert code == 0 and (tmp_path / "bitserial_unit.v").read_text().count("module bitserial_unit") == 1
    assert info["lanes"] == 4 and info["cols"] == 2 and info["group"] == 16
    assert {p["name"] for p in info["ports"]} >= {"beat__payload", "beat__valid", "out__payload", "busy"}
    code, _, err = run(capsys, "generate", "bitserial", "--group", "12", "-o", str(tmp_path))
    assert code == 2 and "group must be a positive multiple of lanes=8, got 12" in err


@pytest.mark.slow
def test_cosim_systolic_takes_mx_and_ovp_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for fmt, extra in (("mxfp4", []), ("ovp4", ["--dataflow", "os"])):
        code, out, _ = run(capsys, "cosim", "systolic", "--rows", "2", "--cols", "2", "--a", fmt, "--b", fmt, *extra,
                           "--gemm", "6x40x4", "-o", str(tmp_path / fmt), "--json")  # fmt: skip
        report = json.loads(out)
        assert code == 0 and report["passed"], report


def test_train_reports_accuracies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "train", "--model", "mlp", "--format", "int8", "-o", str(tmp_path), "--json")
    report = json.loads(out)
    assert code == 0 and report["float_accuracy"] >= 0.93 and report["accuracy"] >= report["float_accuracy"] - 0.02
    assert [p.name for p in tmp_path.iterdir()] == ["mlp_float_seed0.pt"]
    code, _, err = run(capsys, "train", "--model", "mlp", "--format", "posit16_1", "-o", str(tmp_path))
    assert code == 2 and "no Brevitas quantizer for 'posit16_1'" in err


@pytest.mark.slow
def test_cosim_model_runs_a_layer_in_the_loop(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # a relative -o, as a person types it (tests/bitfab/test_relative_paths.py)
    code, out, _ = run(capsys, "cosim", "model", "--model", "mlp", "--format", "mxfp4", "--layer", "0", "--array",
                       "4x4", "--images", "120", "-o", "model_out", "--json")  # fmt: skip
    saved = json.loads((tmp_path / "model_out" / "report.json").read_text())
    assert saved["provenance"]["command"].startswith("bitfab cosim model")
    report = json.loads(out)
    assert (
        code == 0
        and report["bit_exact"]
        and report["cycles_layer_all_images_measured"] == report["cycles_layer_all_images_model"]
    )
    assert report["hil_accuracy"] == report["brevitas_accuracy"] and report["images"] == 120
    assert report["within_bound"] and report["predictions_equal"] and report["gemm"] == [120, 64, 64]
    code, out, _ = run(capsys, "cosim", "model", "--model", "cnn", "--format", "int4_a8", "--layer", "fc",
                       "--bitserial", "--array", "8x4", "--images", "16", "-o", str(tmp_path))  # fmt: skip
    assert code == 0 and "PASS cnn.fc (int4_a8) on bit-serial 4 PEs x 8 lanes" in out
    code, _, err = run(capsys, "cosim", "model", "--model", "cnn", "--format", "fp8_e4m3", "--bitserial", "-o",
                       str(tmp_path))  # fmt: skip
    assert code == 2 and "the bit-serial unit takes signed INT activations" in err
    code, _, err = run(capsys, "cosim", "model", "--model", "mlp", "--format", "int8", "--layer", "5", "-o",
                       str(tmp_path))  # fmt: skip
    assert code == 2 and "--layer must be between 0 and 1 or one of fc1, fc2, got 5" in err
