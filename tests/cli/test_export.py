"""``fastbp export``: the ONNX file gives what ``fastbp predict`` prints."""

import csv
import io

import numpy as np
import pytest
from cli_helpers import IRIS, assert_input_error, invoke, run_fastbp

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def predict_lines(model, data):
    """The labels or values ``fastbp predict`` writes, as text."""
    result = invoke("predict", "--model", model, "--data", data, "--quiet")
    assert result.exit_code == 0, result.output
    rows = list(csv.reader(io.StringIO(result.stdout)))
    assert rows[0] == ["prediction"]
    return [row[0] for row in rows[1:]]


def read_csv(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {name: [row[name] for row in rows] for name in rows[0]}


def onnx_outputs(path, table):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = {
        i.name: np.array(table[i.name], np.float64).reshape(-1, 1)
        for i in sess.get_inputs()
    }
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def test_xor_export_gives_fastbps_predictions(tmp_path):
    model, out = tmp_path / "xor.npz", tmp_path / "xor.onnx"
    result = invoke("train", "--data", "xor", "--save", model, "--quiet")
    assert result.exit_code == 0, result.output
    result = invoke("export", model, out)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"wrote {out} (ONNX opset 20): inputs x1, x2; outputs label, probabilities"
    )
    onnx.checker.check_model(onnx.load(out), full_check=True)
    rng = np.random.default_rng(0)
    points = np.r_[[[0, 0], [0, 1], [1, 0], [1, 1]], rng.uniform(0, 1, (60, 2))]
    data = tmp_path / "points.csv"
    np.savetxt(data, points, delimiter=",", header="x1,x2", comments="", fmt="%.17g")
    got = onnx_outputs(out, read_csv(data))
    assert got["label"].dtype == np.int64  # the labels 0 and 1
    assert [str(v) for v in got["label"]] == predict_lines(model, data)
    assert got["label"][:4].tolist() == [0, 1, 1, 0]


def test_iris_export_gives_fastbps_predictions(tmp_path):
    model, out = tmp_path / "iris.npz", tmp_path / "iris.onnx"
    result = invoke(
        "train", "--data", IRIS, "--epochs", "20", "--save", model, "--quiet"
    )
    assert result.exit_code == 0, result.output
    result = invoke("export", model, out, "--opset", "17", "--inputs", "matrix")
    assert result.exit_code == 0, result.output
    proto = onnx.load(out)
    assert proto.opset_import[0].version == 17
    table = read_csv(IRIS)
    names = [n for n in table if n != "species"]
    X = np.array([table[n] for n in names], np.float64).T
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    label, proba = sess.run(None, {"X": X})
    assert label.tolist() == predict_lines(model, IRIS)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)


def test_bad_input_is_one_error_line(tmp_path, monkeypatch):
    from fastbp.io import save_model
    from fastbp.nn.layers import Linear, Sequential

    out = tmp_path / "m.onnx"
    result = invoke("export", tmp_path / "missing.npz", out)
    assert_input_error(result.output, result.exit_code, "missing.npz")
    result = invoke("export", tmp_path / "missing.npz", tmp_path / "no" / "m.onnx")
    assert_input_error(result.output, result.exit_code, "OUT", "does not exist")
    # A date column cannot be read below opset 20: the error names it.
    plan = {
        "version": 1,
        "columns": [
            {
                "name": "when",
                "role": "datetime",
                "parts": ["year"],
                "fill": [2000.0],
                "inputs": ["when:year"],
            }
        ],
    }
    model = tmp_path / "dated.npz"
    save_model(
        model,
        Sequential(Linear(1, 1)),
        meta={"plan": plan, "feature_names": ["when:year"]},
    )
    result = invoke("export", model, out, "--opset", "19")
    assert_input_error(result.output, result.exit_code, "'when'", "opset 20")
    # Without the onnx package: the extra to install.
    monkeypatch.setitem(__import__("sys").modules, "onnx", None)
    result = invoke("export", model, out)
    assert_input_error(result.output, result.exit_code, "pip install 'fastbp[onnx]'")
    assert not out.exists()


def test_a_model_with_a_layer_onnx_cannot_express_is_one_error_line(tmp_path):
    """A model file with an activation the user registered (loadable while it
    is registered) that ONNX export does not know: exit 2, the layer named."""
    from fastbp import Activation, Linear, Sequential
    from fastbp.io import save_model
    from fastbp.nn.parts import ACTIVATIONS, register

    try:

        @register("activation", "test_cli_swish")
        class Swish(Activation):
            pass

        model = tmp_path / "swish.npz"
        save_model(model, Sequential(Linear(2, 3, rng=0), Swish(), Linear(3, 1)))
        result = invoke("export", model, tmp_path / "swish.onnx")
        assert_input_error(result.output, result.exit_code, "layer 1, Swish")
        assert not (tmp_path / "swish.onnx").exists()
    finally:
        ACTIVATIONS.pop("test_cli_swish", None)


def test_the_installed_command_exports_and_fails_in_one_line(tmp_path):
    assert "export" in invoke("--help").output
    proc = run_fastbp("export", "missing.npz", "m.onnx", cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert assert_input_error(output, proc.returncode, "missing.npz") == output.strip()
    from fastbp import mlp
    from fastbp.io import save_model

    save_model(tmp_path / "m.npz", mlp([3, 4, 1], rng=0))
    proc = run_fastbp("export", "m.npz", "m.onnx", "--inputs", "matrix", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    sess = ort.InferenceSession(str(tmp_path / "m.onnx"))
    assert [i.name for i in sess.get_inputs()] == ["X"]
