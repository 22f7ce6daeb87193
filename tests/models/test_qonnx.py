"""QONNX files: stock Brevitas models exported with export_qonnx, read back with models._qonnx,
checked against the PyTorch model and against models._discover's capture of the same layers;
hand-built QONNX graphs for the refusals."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from models._discover import capture as brevitas_capture
from models._discover import forward as brevitas_forward
from models._operand import Unmappable
from models._qonnx import QonnxModel

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import brevitas.nn as qnn
    from brevitas.export import export_qonnx
    from brevitas.graph.calibrate import calibration_mode
    from brevitas.quant import (
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int8WeightPerTensorFloat,
        Int32Bias,
        Uint8ActPerTensorFloat,
    )


class Mlp(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(8, 6, bias=True, weight_quant=Int8WeightPerTensorFloat, bias_quant=Int32Bias,
                                   return_quant_tensor=False)  # fmt: skip
        self.relu = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(6, 4, bias=True, weight_quant=Int8WeightPerTensorFloat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(self.inp(x))))


class ConvNet(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=Int8ActPerTensorFloat, return_quant_tensor=True)
        self.conv = qnn.QuantConv2d(3, 5, 3, stride=2, padding=1, bias=True, weight_quant=Int8WeightPerChannelFloat)
        self.relu = qnn.QuantReLU(act_quant=Uint8ActPerTensorFloat, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(5 * 4 * 4, 3, bias=True, weight_quant=Int8WeightPerTensorFloat)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.relu(self.conv(self.inp(x))), 1))


def _exported(net: torch.nn.Module, shape: tuple[int, ...], path: Path) -> tuple[torch.nn.Module, Path]:
    """The network calibrated on a few batches and exported to QONNX at `path`."""
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net.eval()
        with torch.no_grad(), calibration_mode(net):
            for _ in range(4):
                net(torch.randn(*shape))
        net.eval()
        export_qonnx(net, torch.randn(*shape), export_path=str(path))
    return net, path


@pytest.fixture(scope="module")
def mlp(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, QonnxModel]:
    net, path = _exported(Mlp(), (2, 8), tmp_path_factory.mktemp("mlp") / "m.onnx")
    return net, QonnxModel(path)


@pytest.fixture(scope="module")
def conv(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, QonnxModel]:
    net, path = _exported(ConvNet(), (2, 3, 8, 8), tmp_path_factory.mktemp("conv") / "c.onnx")
    return net, QonnxModel(path)


def _inputs(*shape: int) -> np.ndarray:
    return np.random.default_rng(1).standard_normal(shape).astype(np.float32)


def _check_product(model: QonnxModel, name: str, x: np.ndarray) -> None:
    p = model.capture(name, x)
    for operand in (p.a, p.b):
        assert np.array_equal((operand.decoded() * operand.scale).astype(np.float32), operand.values)
        assert np.array_equal(operand.decoded(), operand.grid)
    exact = (p.a.grid @ p.b.grid) * (p.a.scale * p.b.scale)  # integer sums: exact in float64 at these sizes
    if p.bias is not None:
        exact = exact + p.bias
    np.testing.assert_allclose(exact, p.reference, rtol=1e-6, atol=1e-6)
    assert p.reference.shape == (p.gemm[0], p.gemm[2])
    assert np.array_equal(p.fold(p.reference), p.fold(p.reference.copy()))


def test_mlp_layers_and_formats(mlp: tuple[torch.nn.Module, QonnxModel]) -> None:
    _, model = mlp
    assert model.layers() == ["node_linear", "node_linear_1"]
    first, second = model.describe(_inputs(3, 8))
    assert first.mappable and second.mappable
    assert (first.kind, first.gemm, second.gemm) == ("linear", (1, 8, 6), (1, 6, 4))
    assert first.input.startswith("int8, scale per tensor") and second.input.startswith("uint8, scale per tensor")
    assert first.weight.startswith("int8 (narrow range), scale per tensor")
    assert first.bias == "int32 in units of scale_in*scale_w (exact in the accumulator)"
    assert second.bias == "float (added after the product)"


def test_mlp_products_exact(mlp: tuple[torch.nn.Module, QonnxModel]) -> None:
    _, model = mlp
    x = _inputs(3, 8)  # exported at batch 2: the graph is resized
    for name in model.layers():
        _check_product(model, name, x)
    p = model.capture("node_linear", x)
    assert p.bias_codes is not None and p.bias is not None
    unit = np.float32(p.a.scale) * np.float32(p.b.scale)
    assert np.array_equal((p.bias_codes * np.float64(unit)).astype(np.float32), p.bias)


def test_mlp_matches_brevitas(mlp: tuple[torch.nn.Module, QonnxModel]) -> None:
    net, model = mlp
    x = _inputs(3, 8)
    np.testing.assert_allclose(model.forward(x), brevitas_forward(net, x).numpy(), rtol=1e-5, atol=1e-6)
    for qonnx_name, module_name in zip(model.layers(), ["fc1", "fc2"], strict=True):
        ours, theirs = model.capture(qonnx_name, x), brevitas_capture(net, module_name, x)
        assert np.array_equal(ours.a.codes, theirs.a.codes) and np.array_equal(ours.b.codes, theirs.b.codes)
        assert ours.a.format == theirs.a.format and ours.b.format == theirs.b.format
        assert np.array_equal(ours.a.scale, theirs.a.scale) and np.array_equal(ours.b.scale, theirs.b.scale)


def test_mlp_replace(mlp: tuple[torch.nn.Module, QonnxModel]) -> None:
    _, model = mlp
    x = _inputs(3, 8)
    plain = model.forward(x)
    for name in model.layers():
        p = model.capture(name, x)
        assert np.array_equal(model.forward(x, replace={name: p.fold(p.reference)}), plain)
    p = model.capture("node_linear", x)
    changed = model.forward(x, replace={"node_linear": p.fold(p.reference) + 1.0})
    assert not np.array_equal(changed, plain)
    with pytest.raises(ValueError, match="shape"):
        model.forward(x, replace={"node_linear": p.reference[:1]})
    with pytest.raises(ValueError, match="available: node_linear, node_linear_1"):
        model.capture("fc9", x)


def test_conv_products_and_forward(conv: tuple[torch.nn.Module, QonnxModel]) -> None:
    net, model = conv
    x = _inputs(3, 3, 8, 8)
    assert model.layers() == ["node_conv2d", "node_linear"]
    info = model.describe(x)[0]
    assert (info.kind, info.gemm, info.reason) == ("conv2d", (16, 27, 5), None)
    assert info.input.startswith("int8, scale per tensor")
    assert info.weight.startswith("int8 (narrow range), scale per output channel")
    for name in model.layers():
        _check_product(model, name, x)
    plain = model.forward(x)
    np.testing.assert_allclose(plain, brevitas_forward(net, x).numpy(), rtol=1e-5, atol=1e-6)
    p = model.capture("node_conv2d", x)
    assert p.output_shape == (3, 5, 4, 4)
    assert np.array_equal(model.forward(x, replace={"node_conv2d": p.fold(p.reference)}), plain)
    # B is laid out as models._discover lays a Brevitas weight: (N, C, *kernel) -> (kernel..., C) per column
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        weight = net.conv.quant_weight()
    assert np.array_equal(p.b.grid, weight.int().double().movedim(1, -1).reshape(5, -1).T.numpy())
    assert np.array_equal(p.b.scale, weight.scale.double().reshape(-1).numpy())


# --- hand-built QONNX graphs ---------------------------------------------------------------------

QONNX_DOMAIN = "qonnx.custom_op.general"


def _quant(name: str, source: str, scale: np.ndarray, zero_point: float, bits: float, signed: int,
           narrow: int = 0) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:  # fmt: skip
    params = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), f"{name}_{what}")
              for what, v in (("scale", scale), ("zeropt", zero_point), ("bits", bits))]  # fmt: skip
    node = helper.make_node("Quant", [source, *(p.name for p in params)], [f"{name}_out"], name=name,
                            domain=QONNX_DOMAIN, signed=signed, narrow=narrow, rounding_mode="ROUND")  # fmt: skip
    return node, params


def _float_quant(source: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    """An e4m3 FloatQuant (scale 1, bias 7, max 448)."""
    params = [numpy_helper.from_array(np.asarray(v, dtype=np.float32), f"fq_{what}")
              for what, v in (("scale", 1.0), ("e", 4.0), ("m", 3.0), ("bias", 7.0), ("max", 448.0))]  # fmt: skip
    node = helper.make_node("FloatQuant", [source, *(p.name for p in params)], ["fq_out"], name="fq",
                            domain=QONNX_DOMAIN, has_inf=0, has_nan=1, has_subnormal=1, saturation=1)  # fmt: skip
    return node, params


def _bipolar(source: str) -> tuple[onnx.NodeProto, list[onnx.TensorProto]]:
    scale = numpy_helper.from_array(np.asarray(0.25, dtype=np.float32), "bq_scale")
    return helper.make_node("BipolarQuant", [source, "bq_scale"], ["bq_out"], name="bq", domain=QONNX_DOMAIN), [scale]


def _matmul_file(path: Path, *, in_quant: dict | str | None, w_scale: np.ndarray | float = 0.05, bias: bool = False,
                 bipolar: bool = False) -> Path:  # fmt: skip
    """X (2, 4) [-> Quant or FloatQuant] -> MatMul with W (4, 3) [<- Quant or BipolarQuant] [-> Add bias] -> Y."""
    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.integers(-100, 100, (4, 3)).astype(np.float32) * 0.05, "W")
    nodes, inits, a = [], [weight], "X"
    if in_quant is not None:
        node, params = _float_quant("X") if in_quant == "float" else _quant("qx", "X", **in_quant)
        nodes.append(node)
        inits += params
        a = node.output[0]
    node, params = _bipolar("W") if bipolar else _quant("qw", "W", np.asarray(w_scale), 0.0, 8.0, 1, 1)
    nodes.append(node)
    inits += params
    nodes.append(helper.make_node("MatMul", [a, node.output[0]], ["mm" if bias else "Y"], name="mm"))
    if bias:
        inits.append(numpy_helper.from_array(np.array([0.5, -0.25, 1.0], dtype=np.float32), "bias"))
        nodes.append(helper.make_node("Add", ["mm", "bias"], ["Y"], name="add"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [2, 4])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [2, 3])], inits)  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QONNX_DOMAIN, 1)])
    onnx.save(model, path)
    return path


UINT8_ZP3 = {"scale": np.asarray(0.02), "zero_point": 3.0, "bits": 8.0, "signed": 0}


def test_zero_point_and_bias_add(tmp_path: Path) -> None:
    model = QonnxModel(_matmul_file(tmp_path / "zp.onnx", in_quant=UINT8_ZP3, bias=True))
    x = _inputs(2, 4)
    (info,) = model.describe(x)
    assert info.mappable and info.kind == "linear"
    assert info.input == "uint8, zero point 3 (code - zero point as int9), scale per tensor"
    assert info.bias == "float (added after the product)"
    _check_product(model, "mm", x)
    p = model.capture("mm", x)
    assert p.a.format.bits == 9 and p.a.grid.min() >= -3  # int - zero point
    assert np.array_equal(p.bias, np.array([0.5, -0.25, 1.0], dtype=np.float32))
    assert np.array_equal(model.forward(x, replace={"mm": p.fold(p.reference)}), model.forward(x))


@pytest.mark.parametrize(
    ("in_quant", "w_scale", "reason"),
    [
        (None, 0.05, "is the graph input 'X' with no Quant node"),
        ({**UINT8_ZP3, "bits": 24.0}, 0.05, "bit width 24"),
        ({**UINT8_ZP3, "zero_point": 0.5}, 0.05, "fractional zero point"),
        (UINT8_ZP3, np.array([[0.05], [0.1], [0.05], [0.05]]), "varies along the reduction axis"),
        ("float", 0.05, "FloatQuant node 'fq' quantizes it to a minifloat (e4m3)"),
    ],
)
def test_refusals(tmp_path: Path, in_quant: dict | str | None, w_scale: np.ndarray | float, reason: str) -> None:
    model = QonnxModel(_matmul_file(tmp_path / "r.onnx", in_quant=in_quant, w_scale=w_scale))
    x = _inputs(2, 4)
    (info,) = model.describe(x)
    assert not info.mappable and reason in (info.reason or "")
    with pytest.raises(Unmappable, match="layer 'mm'"):
        model.capture("mm", x)
    assert model.forward(x).shape == (2, 3)  # the graph still runs


def test_bipolar_weight(tmp_path: Path) -> None:
    model = QonnxModel(_matmul_file(tmp_path / "bq.onnx", in_quant=UINT8_ZP3, bipolar=True))
    x = _inputs(2, 4)
    (info,) = model.describe(x)
    assert info.weight == "bipolar (±1) as int2, scale per tensor (power of two)"
    _check_product(model, "mm", x)
    assert set(np.unique(model.capture("mm", x).b.grid)) == {-1.0, 1.0}


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no such file"):
        QonnxModel(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a protobuf \xff\xfe")
    with pytest.raises(ValueError, match=r"junk\.onnx"):
        QonnxModel(junk)
