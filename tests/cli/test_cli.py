"""Tests for the ``fastbp`` command line: train, predict, their output and their
one-line errors. Most cases run in-process through click's CliRunner; a few run
the installed command in a subprocess, as a user would."""

import csv
import io
import json
import math
from pathlib import Path

import numba
import numpy as np
import pytest
from cli_helpers import (
    EXAMPLES,
    IRIS,
    JSON_KEYS,
    OLD_MODEL,
    REGRESSION,
    SPECIES,
    V1_IRIS,
    assert_input_error,
    invoke,
    run_fastbp,
    train_json,
)

from fastbp.data import Standardizer, load_csv
from fastbp.io import load_model


def write(folder, name, text):
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def old_model(folder):
    """A pre-existing --save target with known bytes."""
    path = folder / "model.npz"
    path.write_bytes(OLD_MODEL)
    return path


def truth_table(text):
    """(x1, x2, target, prediction) rows of the XOR truth table in text."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "prediction" in line)
    rows = []
    for line in lines[start + 1 : start + 5]:
        x1, x2, target, prediction = line.split()[:4]
        rows.append((float(x1), float(x2), int(target), float(prediction)))
    return rows


def summary_ok(line):
    for word in ("samples/s", "steps/s", "us/step", "compile", "loss"):
        assert word in line, (word, line)


def expected_predictions(model_path, data_path):
    """What predict should print for data_path: computed here from the model
    file with the library."""
    model, meta = load_model(model_path)
    data = load_csv(data_path, target=meta["target_name"], task=meta["task"])
    X = data.X
    if meta["standardizer"] is not None:
        X = Standardizer(**meta["standardizer"]).transform(X)
    Y = model.predict(np.ascontiguousarray(X, dtype=model.dtype))
    if meta["task"] == "regression":
        scale = meta.get("target_scale") or {"mean": 0.0, "std": 1.0}
        return Y[:, 0].astype(np.float64) * scale["std"] + scale["mean"]
    index = (Y[:, 0] > 0.5).astype(int) if Y.shape[1] == 1 else Y.argmax(axis=1)
    return [meta["classes"][i] for i in index]


def read_predictions(text):
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["prediction"]
    return [row[0] for row in rows[1:]]


# --- subprocess runs ---------------------------------------------------------


def test_cli_subprocess_xor_default(tmp_path):
    proc = run_fastbp("train", "--data", "xor", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    lines = proc.stdout.strip().splitlines()
    # Plain progress lines (stdout is a pipe, not a terminal).
    progress = [line for line in lines if line.startswith("epoch")]
    assert 5 <= len(progress) <= 20
    assert progress[-1].startswith("epoch 1000/1000")
    rows = truth_table(proc.stdout)
    assert [(r[0], r[1], r[2]) for r in rows] == [
        (0, 0, 0),
        (0, 1, 1),
        (1, 0, 1),
        (1, 1, 0),
    ]
    assert all((p > 0.5) == (t == 1) for _, _, t, p in rows)
    summary_ok(lines[-1])
    assert "Traceback" not in proc.stdout


def test_cli_subprocess_iris_json(tmp_path):
    proc = run_fastbp("train", "--data", IRIS, "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    assert JSON_KEYS | {"train_accuracy", "val_accuracy"} <= set(record)
    assert record["val_accuracy"] >= 0.93
    assert record["epochs"] == 200 and record["fused"] is True
    # Progress and summary go to stderr, so stdout is the JSON alone.
    assert len(proc.stdout.strip().splitlines()) == 1
    summary_ok(proc.stderr.strip().splitlines()[-1])


def test_cli_subprocess_missing_file(tmp_path):
    missing = tmp_path / "nope.csv"
    target = old_model(tmp_path)
    proc = run_fastbp("train", "--data", missing, "--save", target, cwd=tmp_path)
    assert proc.stdout == ""
    assert_input_error(proc.stderr, proc.returncode, missing)
    assert target.read_bytes() == OLD_MODEL


def test_cli_subprocess_predict_round_trip(tmp_path):
    model = tmp_path / "iris.npz"
    proc = run_fastbp("train", "--data", IRIS, "--save", model, "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "pred.csv"
    proc = run_fastbp(
        "predict", "--model", model, "--data", IRIS, "--out", out, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == ""
    predictions = read_predictions(out.read_text())
    assert predictions == expected_predictions(model, IRIS)
    assert set(predictions) == set(SPECIES)


def test_cli_subprocess_divergence_in_last_step(tmp_path):
    # One full-batch SGD step at lr 1e30: the step's own loss is finite, the
    # weights after it are not. The run must still end in a one-line error
    # (it once ended in a ValueError traceback from the validation loss).
    target = old_model(tmp_path)
    proc = run_fastbp(
        "train",
        "--data",
        REGRESSION,
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--epochs",
        "1",
        "--batch-size",
        "200",
        "--save",
        target,
        cwd=tmp_path,
    )
    last = assert_input_error(proc.stdout + proc.stderr, proc.returncode)
    assert "learning rate" in last
    assert target.read_bytes() == OLD_MODEL


# --- train: XOR ----------------------------------------------------------------


def test_cli_train_xor_solves_seeds_0_to_99():
    failed = []
    for seed in range(100):
        record = train_json("--data", "xor", "--seed", seed)
        assert record["seed"] == seed and record["data"] == "xor"
        if record["train_accuracy"] != 1.0:
            failed.append(seed)
    assert len(failed) <= 1, f"XOR not solved for seeds {failed}"


def test_cli_train_xor_json_keys():
    record = train_json("--data", "xor")
    assert JSON_KEYS | {"train_accuracy"} <= set(record)
    assert record["val_loss"] is None and record["val_accuracy"] is None
    assert record["epochs"] == 1000 and record["steps"] == 1000
    assert record["architecture"] == [2, 8, 1]
    assert record["train_loss"] < 0.01


def test_cli_l2_defaults_and_reaches_the_weights(tmp_path):
    """--l2 is 0 for XOR and scikit-learn's 1e-4 for tables, and it reaches
    training: a large penalty leaves the saved weights smaller."""
    assert train_json("--data", "xor", "--epochs", "5")["l2"] == 0.0
    norms = {}
    for l2 in (None, "0", "1"):
        path = tmp_path / f"model{l2}.npz"
        extra = [] if l2 is None else ["--l2", l2]
        args = ("--data", REGRESSION, "--epochs", "20", "--save", path, *extra)
        record = train_json(*args)
        assert record["l2"] == (1e-4 if l2 is None else float(l2))
        model = load_model(path)[0]
        norms[l2] = sum(
            float(np.sum(p.data**2)) for p in model.parameters() if p.data.ndim == 2
        )
    assert norms["1"] < 0.5 * norms["0"]
    assert norms[None] != norms["0"]


def test_cli_train_xor_truth_table_matches_json_run():
    result = invoke("train", "--data", "xor", "--seed", 7)
    assert result.exit_code == 0, result.output
    rows = truth_table(result.stdout)
    assert all((p > 0.5) == (t == 1) for _, _, t, p in rows)
    assert all(line.endswith("ok") for line in result.stdout.splitlines()[-5:-1])


def test_cli_train_xor_json_sends_table_to_stderr():
    result = invoke("train", "--data", "xor", "--json")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines() == [result.stdout.strip()]
    json.loads(result.stdout)
    assert "prediction" in result.stderr


# --- train: CSV files ----------------------------------------------------------


def test_cli_train_iris_default_seed_accuracy():
    record = train_json("--data", IRIS)
    assert record["val_accuracy"] >= 0.93
    assert record["train_accuracy"] >= 0.93
    assert record["architecture"] == [4, 32, 3]
    assert record["task"] == "classification" and record["loss"] == "ce"


def test_cli_train_iris_seeds_0_to_4_mean_accuracy():
    # Seed 3 alone reaches 27/30 = 0.9; the mean over seeds 0-4 is 0.94.
    accuracies = [
        train_json("--data", IRIS, "--seed", s)["val_accuracy"] for s in range(5)
    ]
    assert np.mean(accuracies) >= 0.93, accuracies


def test_cli_train_json_timing_consistent():
    record = train_json("--data", IRIS, "--epochs", 30)
    assert record["epochs"] == 30
    assert record["steps"] == 30 * math.ceil(120 / 16)
    for key in ("samples_per_s", "steps_per_s", "us_per_step", "train_seconds"):
        assert record[key] > 0
    assert record["compile_seconds"] >= 0
    assert record["us_per_step"] == pytest.approx(
        1e6 * record["train_seconds"] / record["steps"], rel=1e-9
    )
    assert record["samples_per_s"] == pytest.approx(
        30 * 120 / record["train_seconds"], rel=1e-9
    )


def test_cli_train_regression_reports_r2():
    record = train_json("--data", REGRESSION)
    assert JSON_KEYS | {"train_r2", "val_r2"} <= set(record)
    assert "train_accuracy" not in record and "val_accuracy" not in record
    assert record["task"] == "regression" and record["loss"] == "mse"
    assert record["val_r2"] > 0.9


def test_cli_train_progress_lines_when_not_a_terminal():
    result = invoke("train", "--data", IRIS)
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    progress = [line for line in lines if line.startswith("epoch")]
    assert 5 <= len(progress) <= 20
    assert progress[-1].startswith("epoch 200/200")
    assert all("val_loss" in line for line in progress)
    assert "\r" not in result.stdout
    summary_ok(lines[-1])


@pytest.mark.parametrize("data", [IRIS, "xor"], ids=lambda d: Path(d).stem)
def test_cli_train_quiet_prints_one_line(data):
    result = invoke("train", "--data", data, "--quiet")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert result.stderr == ""
    summary_ok(result.stdout)


def test_cli_train_quiet_json_prints_only_json_on_stdout():
    result = invoke("train", "--data", IRIS, "--quiet", "--json")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert JSON_KEYS <= set(json.loads(result.stdout))


def test_cli_train_quiet_with_save_prints_one_line(tmp_path):
    result = invoke("train", "--data", IRIS, "-q", "--save", tmp_path / "m.npz")
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 1
    assert (tmp_path / "m.npz").exists()


@pytest.mark.parametrize("data", [IRIS, REGRESSION, "xor"], ids=lambda d: Path(d).stem)
def test_cli_train_no_fuse_matches_fused(data):
    args = ("--data", data, "--dtype", "float64", "--epochs", 20)
    fused = train_json(*args)
    layer = train_json(*args, "--no-fuse")
    assert fused["fused"] is True and layer["fused"] is False
    assert layer["train_loss"] == pytest.approx(fused["train_loss"], rel=1e-9)
    if fused["val_loss"] is not None:
        assert layer["val_loss"] == pytest.approx(fused["val_loss"], rel=1e-9)


def test_cli_train_no_fuse_same_saved_weights(tmp_path):
    paths = []
    for extra in ((), ("--no-fuse",)):
        path = tmp_path / f"m{len(paths)}.npz"
        result = invoke(
            "train",
            "--data",
            IRIS,
            "--dtype",
            "float64",
            "--epochs",
            10,
            "-q",
            "--save",
            path,
            *extra,
        )
        assert result.exit_code == 0, result.output
        paths.append(path)
    a, b = (load_model(p)[0] for p in paths)
    np.testing.assert_allclose(a.flat_data, b.flat_data, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(
    ("args", "init"),
    [
        (("--data", IRIS), "pytorch"),
        (("--data", REGRESSION, "--stream"), "pytorch"),
        (("--data", REGRESSION, "--optimizer", "lbfgs"), "pytorch"),
        (("--data", "xor"), None),
    ],
)
def test_cli_train_init(monkeypatch, args, init):
    """A table's MLP starts as torch.nn.Linear does (He-normal's larger first
    layer learns slower per epoch under Adam); xor's tanh net keeps Xavier."""
    import fastbp.nn.layers

    seen = []
    mlp = fastbp.nn.layers.mlp

    def recording_mlp(*a, **kw):
        seen.append(kw.get("init"))
        return mlp(*a, **kw)

    monkeypatch.setattr(fastbp.nn.layers, "mlp", recording_mlp)
    train_json(*args, "--epochs", 1)
    assert seen == [init]


def test_cli_train_same_weights_as_library(tmp_path):
    """fastbp train on a table = fastbp.mlp(init="pytorch") trained by
    fastbp.train on the prepared arrays (the target scaled inside), with the
    CLI's defaults (L2 1e-4, scikit-learn's alpha)."""
    import fastbp
    from fastbp.data import Problem

    path = tmp_path / "m.npz"
    args = ("--data", REGRESSION, "--dtype", "float64", "--epochs", 3, "-q")
    result = invoke("train", *args, "--save", path)
    assert result.exit_code == 0, result.output
    problem = Problem.from_file(REGRESSION, dtype="float64")
    prepared = problem.prepare(
        val_fraction=0.2, seed=0, dtype="float64", scale_target=True
    )
    widths = [problem.n_features, 32, prepared.n_outputs]
    model = fastbp.mlp(widths, "relu", init="pytorch", rng=0, dtype="float64")
    opt = fastbp.Adam(model.parameters(), lr=0.01)
    fastbp.train(
        model, fastbp.MSELoss(), opt, prepared.X_train, prepared.T_train,
        epochs=3, batch_size=16, seed=0, l2=1e-4,
    )  # fmt: skip
    saved = load_model(path)[0]
    np.testing.assert_allclose(saved.flat_data, model.flat_data, rtol=1e-9)


def test_cli_train_threads_one():
    before = numba.get_num_threads()
    one = train_json("--data", IRIS, "--threads", 1, "--epochs", 20)
    assert numba.get_num_threads() == before
    default = train_json("--data", IRIS, "--epochs", 20)
    assert one["train_loss"] == pytest.approx(default["train_loss"], rel=1e-5)


def test_cli_train_dtype_float64(tmp_path):
    path = tmp_path / "m.npz"
    record = train_json("--data", IRIS, "--dtype", "float64", "--save", path)
    assert record["dtype"] == "float64"
    assert load_model(path)[0].dtype == np.float64


def test_cli_train_target_by_name_and_index():
    volatile = {
        "samples_per_s",
        "steps_per_s",
        "us_per_step",
        "train_seconds",
        "compile_seconds",
        "wall_seconds",
        "process_seconds",
    }
    by_name = train_json("--data", IRIS, "--target", "species", "--epochs", 20)
    by_index = train_json("--data", IRIS, "--target", 4, "--epochs", 20)
    by_default = train_json("--data", IRIS, "--epochs", 20)
    for key in set(by_name) - volatile:
        assert by_name[key] == by_index[key] == by_default[key], key


def test_cli_train_target_index_first_column(tmp_path):
    path = tmp_path / "m.npz"
    record = train_json("--data", REGRESSION, "--target", 0, "--save", path)
    assert record["task"] == "regression" and "val_r2" in record
    meta = load_model(path)[1]
    assert meta["target_name"] == "x1"
    assert meta["feature_names"] == ["x2", "x3", "y"]


def test_cli_train_options_reach_the_model():
    record = train_json(
        "--data",
        IRIS,
        "--hidden",
        "16,8",
        "--activation",
        "tanh",
        "--loss",
        "ce",
        "--optimizer",
        "sgd",
        "--lr",
        0.05,
        "--momentum",
        0.5,
        "--epochs",
        7,
        "--batch-size",
        10,
        "--seed",
        3,
        "--val-split",
        0.4,
    )
    assert record["architecture"] == [4, 16, 8, 3]
    assert record["activation"] == "tanh" and record["loss"] == "ce"
    assert record["optimizer"] == "sgd" and record["lr"] == 0.05
    assert record["epochs"] == 7 and record["batch_size"] == 10
    assert record["steps"] == 7 * math.ceil(90 / 10)
    assert record["seed"] == 3
    assert "val_accuracy" in record


@pytest.mark.parametrize("val_split", ["0.2", "0"])
def test_cli_train_mse_loss_multiclass(val_split, tmp_path):
    # --loss mse on three classes trains on one-hot targets; accuracy must
    # still compare the arg-max with the class (it once raised a broadcasting
    # ValueError between (n,) and (n, 3)).
    path = tmp_path / "m.npz"
    record = train_json(
        "--data",
        IRIS,
        "--loss",
        "mse",
        "--val-split",
        val_split,
        "--epochs",
        50,
        "--save",
        path,
    )
    assert record["loss"] == "mse" and record["architecture"] == [4, 32, 3]
    assert 0.8 <= record["train_accuracy"] <= 1.0
    result = invoke("predict", "--model", path, "--data", IRIS)
    assert set(read_predictions(result.stdout)) <= set(SPECIES)


@pytest.mark.parametrize("activation", ["relu", "sigmoid"])
def test_cli_train_activation(activation):
    record = train_json("--data", IRIS, "--activation", activation, "--epochs", 20)
    assert record["activation"] == activation and record["fused"] is True


def test_cli_train_xor_cross_entropy_truth_table():
    # With --loss ce the network has two logits; the truth table must show
    # the predicted class (or its probability), not the raw first logit.
    result = invoke("train", "--data", "xor", "--loss", "ce", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["train_accuracy"] == 1.0
    rows = truth_table(result.stderr)
    assert all((p > 0.5) == (t == 1) for _, _, t, p in rows), result.stderr
    assert "WRONG" not in result.stderr


def test_cli_train_json_is_strict_json(tmp_path):
    # One validation row: R^2 is undefined there. The record must still be
    # standard JSON (null, not the NaN token that json.dumps writes).
    text = "a,b,y\n1,2,0.5\n2,3,0.7\n3,1,0.1\n4,4,0.9\n5,0,0.3\n"
    path = write(tmp_path, "five.csv", text)
    result = invoke("train", "--data", path, "--json", "-q", "--epochs", 3)
    assert result.exit_code == 0, result.output

    def reject(token):
        raise ValueError(f"{token} is not JSON")

    record = json.loads(result.stdout.strip().splitlines()[-1], parse_constant=reject)
    assert "val_r2" in record


def test_cli_train_val_split_zero():
    record = train_json("--data", IRIS, "--val-split", 0, "--epochs", 5)
    assert record["val_loss"] is None and record["val_accuracy"] is None
    assert record["steps"] == 5 * math.ceil(150 / 16)


def test_cli_train_task_override(tmp_path):
    path = write(tmp_path, "small.csv", "a,b,y\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n")
    record = train_json(
        "--data", path, "--task", "regression", "--val-split", 0, "--epochs", 3
    )
    assert record["task"] == "regression" and "train_r2" in record


def test_cli_train_save_replaces_existing_model(tmp_path):
    target = old_model(tmp_path)
    result = invoke("train", "--data", IRIS, "-q", "--save", target)
    assert result.exit_code == 0, result.output
    model, meta = load_model(target)
    assert meta["classes"] == list(SPECIES)
    assert [p.name for p in tmp_path.iterdir()] == ["model.npz"]


# --- predict -------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("iris") / "iris.npz"
    result = invoke("train", "--data", IRIS, "-q", "--save", path)
    assert result.exit_code == 0, result.output
    return path


def test_cli_predict_iris_labels(iris_model):
    result = invoke("predict", "--model", iris_model, "--data", IRIS)
    assert result.exit_code == 0, result.output
    predictions = read_predictions(result.stdout)
    assert len(predictions) == 150
    assert predictions == expected_predictions(iris_model, IRIS)
    assert set(predictions) <= set(SPECIES)
    truth = [row["species"] for row in csv.DictReader(IRIS.open())]
    assert np.mean([p == t for p, t in zip(predictions, truth, strict=True)]) > 0.9


def test_cli_predict_out_writes_file(iris_model, tmp_path):
    out = tmp_path / "pred.csv"
    out.write_text("old contents\n")
    result = invoke("predict", "--model", iris_model, "--data", IRIS, "--out", out)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    expected = invoke("predict", "--model", iris_model, "--data", IRIS).stdout
    assert out.read_text() == expected
    assert [p.name for p in tmp_path.iterdir()] == ["pred.csv"]  # no temp files


def test_cli_predict_columns_by_name(iris_model, tmp_path):
    # Columns reordered, target dropped: features are found by name.
    rows = list(csv.DictReader(IRIS.open()))
    order = ["petal_width", "sepal_length", "petal_length", "sepal_width"]
    lines = [",".join(order)] + [",".join(r[c] for c in order) for r in rows]
    path = write(tmp_path, "shuffled.csv", "\n".join(lines) + "\n")
    result = invoke("predict", "--model", iris_model, "--data", path)
    assert result.exit_code == 0, result.output
    assert read_predictions(result.stdout) == expected_predictions(iris_model, IRIS)


def test_cli_predict_regression_values(tmp_path):
    model = tmp_path / "reg.npz"
    assert invoke("train", "--data", REGRESSION, "-q", "--save", model).exit_code == 0
    result = invoke("predict", "--model", model, "--data", REGRESSION)
    assert result.exit_code == 0, result.output
    values = np.array(read_predictions(result.stdout), dtype=np.float64)
    # predict serves in NumPy: the kernels' output to float32 rounding
    np.testing.assert_allclose(
        values, expected_predictions(model, REGRESSION), rtol=2e-6, atol=1e-6
    )
    targets = load_csv(REGRESSION).y[:, 0]
    assert np.corrcoef(values, targets)[0, 1] > 0.9


def test_cli_predict_numeric_labels_as_written(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    labels = np.where(X[:, 0] + X[:, 1] > 0, "20", "10")
    text = "a,b,label\n" + "".join(
        f"{x[0]:.4f},{x[1]:.4f},{t}\n" for x, t in zip(X, labels, strict=True)
    )
    data = write(tmp_path, "num.csv", text)
    model = tmp_path / "num.npz"
    assert invoke("train", "--data", data, "-q", "--save", model).exit_code == 0
    result = invoke("predict", "--model", model, "--data", data)
    predictions = read_predictions(result.stdout)
    assert set(predictions) <= {"10", "20"}
    assert predictions == expected_predictions(model, data)


def test_cli_predict_binary_mse_labels(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 2))
    labels = np.where(X[:, 0] > 0, "yes", "no")
    text = "a,b,answer\n" + "".join(
        f"{x[0]:.4f},{x[1]:.4f},{t}\n" for x, t in zip(X, labels, strict=True)
    )
    data = write(tmp_path, "bin.csv", text)
    model = tmp_path / "bin.npz"
    result = invoke("train", "--data", data, "--loss", "mse", "-q", "--save", model)
    assert result.exit_code == 0, result.output
    assert load_model(model)[0].out_features == 1
    predictions = read_predictions(
        invoke("predict", "--model", model, "--data", data).stdout
    )
    assert predictions == expected_predictions(model, data)
    assert np.mean(np.array(predictions) == labels) > 0.8


def test_cli_predict_quotes_labels_with_commas(tmp_path):
    data = write(tmp_path, "comma.csv", 'a,b,y\n1,2,"x,y"\n2,3,z\n3,4,"x,y"\n4,5,z\n')
    model = tmp_path / "c.npz"
    result = invoke("train", "--data", data, "-q", "--val-split", 0, "--save", model)
    assert result.exit_code == 0, result.output
    result = invoke("predict", "--model", model, "--data", data)
    assert set(read_predictions(result.stdout)) <= {"x,y", "z"}


# --- bad input ---------------------------------------------------------------

BAD_FILES = {
    "empty": "",
    "header_only": "a,b,y\n",
    "ragged_row": "a,b,y\n1,2,0\n3,4\n5,6,1\n",
    "non_numeric": "a,b,y\n1,2,0\n3,x,1\n5,6,1\n",
    "missing_value": "a,b,y\n1,2,0\n3,,1\n5,6,1\n",
    "nan": "a,b,y\n1,2,0\n3,nan,1\n5,6,1\n",
    "inf": "a,b,y\n1,2,0\n3,-inf,1\n5,6,1\n",
    "single_class": "a,b,y\n1,2,a\n3,4,a\n5,6,a\n",
}

#: What the error line must name besides the file.
BAD_FILE_NAMES = {
    "empty": [],
    "header_only": ["line 1"],
    "ragged_row": ["line 3"],
    "non_numeric": ["line 3", "'b'"],
    "missing_value": ["line 3", "'b'"],
    "nan": ["line 3", "'b'"],
    "inf": ["line 3", "'b'"],
    "single_class": ["'y'"],
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_cli_train_bad_file_strict(case, tmp_path):
    path = write(tmp_path, f"{case}.csv", BAD_FILES[case])
    target = old_model(tmp_path)
    result = invoke("train", "--data", path, "--save", target, "--strict")
    assert_input_error(result.output, result.exit_code, path, *BAD_FILE_NAMES[case])
    assert target.read_bytes() == OLD_MODEL


#: Files that are bad as raw tables too (without --strict).
RAW_BAD = ("empty", "header_only", "ragged_row", "single_class")


@pytest.mark.parametrize("case", RAW_BAD)
def test_cli_train_bad_file_raw(case, tmp_path):
    path = write(tmp_path, f"{case}.csv", BAD_FILES[case])
    target = old_model(tmp_path)
    result = invoke("train", "--data", path, "--save", target)
    assert_input_error(result.output, result.exit_code, path, *BAD_FILE_NAMES[case])
    assert target.read_bytes() == OLD_MODEL


@pytest.mark.parametrize(
    ("case", "role"),
    [
        ("missing_value", "numeric (1 missing)"),
        ("nan", "numeric (1 missing)"),
        ("inf", "numeric (1 missing)"),
        ("non_numeric", "categorical"),
    ],
)
def test_cli_train_raw_cells_take_a_role(case, role, tmp_path):
    # Without --strict a missing, NaN or infinite cell is missing (filled
    # with the training rows' median, plus an indicator input), and a column
    # with text is categorical; the header names each column's role.
    path = write(tmp_path, f"{case}.csv", BAD_FILES[case])
    result = invoke("train", "--data", path, "--epochs", 2, "--val-split", 0)
    assert result.exit_code == 0, result.output
    columns = next(
        line for line in result.output.splitlines() if line.startswith("columns:")
    )
    assert f"'b': {role}" in columns, columns


def test_cli_train_missing_file(tmp_path):
    target = old_model(tmp_path)
    missing = tmp_path / "missing.csv"
    result = invoke("train", "--data", missing, "--save", target)
    assert_input_error(result.output, result.exit_code, missing, "no such file")
    assert target.read_bytes() == OLD_MODEL


@pytest.mark.parametrize("target_column", ["nope", "7"])
def test_cli_train_target_not_found(target_column, tmp_path):
    target = old_model(tmp_path)
    result = invoke(
        "train", "--data", IRIS, "--target", target_column, "--save", target
    )
    assert_input_error(result.output, result.exit_code, IRIS, target_column)
    assert target.read_bytes() == OLD_MODEL


BAD_OPTIONS = [
    ("--batch-size", "0"),
    ("--batch-size", "-5"),
    ("--epochs", "0"),
    ("--epochs", "-1"),
    ("--lr", "0"),
    ("--lr", "-0.1"),
    ("--lr", "nan"),
    ("--lr", "inf"),
    ("--hidden", "8,x"),
    ("--hidden", "0"),
    ("--hidden", ""),
    ("--hidden", "8,,8"),
    ("--hidden", "-8"),
    ("--val-split", "1"),
    ("--val-split", "1.5"),
    ("--val-split", "-0.1"),
    ("--threads", "0"),
]


@pytest.mark.parametrize(("option", "value"), BAD_OPTIONS)
def test_cli_train_bad_option(option, value, tmp_path):
    target = old_model(tmp_path)
    result = invoke("train", "--data", IRIS, option, value, "--save", target)
    assert_input_error(result.output, result.exit_code, option)
    assert target.read_bytes() == OLD_MODEL


def test_cli_train_bad_option_on_xor(tmp_path):
    target = old_model(tmp_path)
    result = invoke("train", "--data", "xor", "--epochs", 0, "--save", target)
    assert_input_error(result.output, result.exit_code, "--epochs")
    assert target.read_bytes() == OLD_MODEL


def test_cli_train_save_folder_missing(tmp_path):
    result = invoke("train", "--data", IRIS, "--save", tmp_path / "no" / "m.npz")
    assert_input_error(result.output, result.exit_code, "--save")


def test_cli_train_ce_on_regression_target(tmp_path):
    target = old_model(tmp_path)
    result = invoke("train", "--data", REGRESSION, "--loss", "ce", "--save", target)
    assert_input_error(result.output, result.exit_code, "--loss")
    assert target.read_bytes() == OLD_MODEL


def test_cli_train_divergence(tmp_path):
    target = old_model(tmp_path)
    result = invoke(
        "train",
        "--data",
        REGRESSION,
        "--optimizer",
        "sgd",
        "--lr",
        "1e6",
        "--save",
        target,
    )
    last = assert_input_error(result.output, result.exit_code)
    assert "smaller learning rate" in last
    assert target.read_bytes() == OLD_MODEL


@pytest.mark.parametrize("val_split", ["0.2", "0"])
def test_cli_train_divergence_in_last_step(val_split, tmp_path):
    # The final step makes the weights infinite while its own loss was finite.
    # Validation (val_split 0.2) or the final evaluation (0) then meets NaN/inf
    # outputs; that must still be a one-line divergence error, exit 2.
    target = old_model(tmp_path)
    result = invoke(
        "train",
        "--data",
        REGRESSION,
        "--optimizer",
        "sgd",
        "--lr",
        "1e30",
        "--epochs",
        1,
        "--batch-size",
        200,
        "--val-split",
        val_split,
        "--save",
        target,
    )
    last = assert_input_error(result.output, result.exit_code)
    assert "learning rate" in last
    assert target.read_bytes() == OLD_MODEL


@pytest.fixture
def predict_out(tmp_path):
    """A pre-existing --out file that a failing predict must leave alone."""
    path = tmp_path / "out.csv"
    path.write_text("prediction\nold\n")
    return path


def test_cli_predict_missing_model(predict_out, tmp_path):
    model = tmp_path / "none.npz"
    result = invoke("predict", "--model", model, "--data", IRIS, "--out", predict_out)
    assert_input_error(result.output, result.exit_code, model)
    assert predict_out.read_text() == "prediction\nold\n"


@pytest.mark.parametrize("kind", ["truncated", "corrupt", "foreign", "foreign_npz"])
def test_cli_predict_bad_model_file(kind, iris_model, predict_out, tmp_path):
    data = iris_model.read_bytes()
    path = tmp_path / f"{kind}.npz"
    if kind == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":
        flipped = bytearray(data)
        for i in range(200, 400):
            flipped[i] ^= 0xFF
        path.write_bytes(bytes(flipped))
    elif kind == "foreign":
        path.write_bytes(b"this is a text file, not a model\n")
    else:
        np.savez(path, weights=np.arange(3.0))
    result = invoke("predict", "--model", path, "--data", IRIS, "--out", predict_out)
    assert_input_error(result.output, result.exit_code, path)
    assert predict_out.read_text() == "prediction\nold\n"


def test_cli_predict_feature_count_mismatch(iris_model, predict_out, tmp_path):
    data = write(
        tmp_path, "three.csv", "sepal_length,sepal_width,petal_length\n5.1,3.5,1.4\n"
    )
    result = invoke(
        "predict", "--model", iris_model, "--data", data, "--out", predict_out
    )
    assert_input_error(result.output, result.exit_code, data, "petal_width")
    assert predict_out.read_text() == "prediction\nold\n"


def test_cli_predict_other_dataset(iris_model, predict_out):
    result = invoke(
        "predict", "--model", iris_model, "--data", REGRESSION, "--out", predict_out
    )
    assert_input_error(result.output, result.exit_code, REGRESSION, "4 features")
    assert predict_out.read_text() == "prediction\nold\n"


IRIS_HEADER = "sepal_length,sepal_width,petal_length,petal_width\n"

PREDICT_BAD_FILES = {
    "empty": ("", []),
    "header_only": (IRIS_HEADER, ["line 1"]),
    "ragged_row": (IRIS_HEADER + "5.1,3.5,1.4,0.2\n5.0,3.6,1.4\n", ["line 3"]),
    "non_numeric": (IRIS_HEADER + "5.1,abc,1.4,0.2\n", ["line 2", "sepal_width"]),
    "missing_value": (IRIS_HEADER + "5.1,3.5,,0.2\n", ["line 2", "petal_length"]),
    "nan": (IRIS_HEADER + "5.1,3.5,1.4,0.2\n5.1,3.5,1.4,nan\n", ["line 3"]),
}


@pytest.fixture(scope="module")
def strict_iris_model(tmp_path_factory):
    path = tmp_path_factory.mktemp("iris") / "iris-strict.npz"
    result = invoke("train", "--data", IRIS, "-q", "--save", path, "--strict")
    assert result.exit_code == 0, result.output
    return path


@pytest.mark.parametrize("case", sorted(PREDICT_BAD_FILES))
def test_cli_predict_bad_data_file_strict_model(
    case, strict_iris_model, predict_out, tmp_path
):
    # A model trained with --strict reads clean numbers only, as before.
    text, names = PREDICT_BAD_FILES[case]
    path = write(tmp_path, f"{case}.csv", text)
    result = invoke(
        "predict", "--model", strict_iris_model, "--data", path, "--out", predict_out
    )
    assert_input_error(result.output, result.exit_code, path, *names)
    assert predict_out.read_text() == "prediction\nold\n"


@pytest.mark.parametrize("case", ["empty", "header_only", "ragged_row"])
def test_cli_predict_bad_data_file(case, iris_model, predict_out, tmp_path):
    text, names = PREDICT_BAD_FILES[case]
    path = write(tmp_path, f"{case}.csv", text)
    result = invoke(
        "predict", "--model", iris_model, "--data", path, "--out", predict_out
    )
    assert_input_error(result.output, result.exit_code, path, *names)
    assert predict_out.read_text() == "prediction\nold\n"


def test_cli_predict_fills_missing_and_unreadable_cells(iris_model, tmp_path):
    # A model with a column plan fills what it cannot read with the training
    # rows' median: the same prediction as the median written out.
    from fastbp.data.predictor import Predictor

    predictor = Predictor.load(iris_model)
    medians = {c.name: c.fill for c in predictor.plan.used}
    row = [5.1, 3.5, 1.4, 0.2]
    cells = ["5.1", "abc", "", "NA"]
    filled = [
        row[0],
        medians["sepal_width"],
        medians["petal_length"],
        medians["petal_width"],
    ]
    path = write(tmp_path, "holes.csv", IRIS_HEADER + ",".join(cells) + "\n")
    result = invoke("predict", "--model", iris_model, "--data", path)
    assert result.exit_code == 0, result.output
    assert read_predictions(result.stdout) == list(
        predictor.predict(np.array([filled]))
    )


def test_cli_predict_missing_data_file(iris_model, tmp_path):
    missing = tmp_path / "none.csv"
    result = invoke("predict", "--model", iris_model, "--data", missing)
    assert_input_error(result.output, result.exit_code, missing)


# --- misc ----------------------------------------------------------------------


def test_cli_main_help_lists_commands():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("train", "predict", "bench"):
        assert command in result.output


def test_cli_train_help_lists_options():
    result = invoke("train", "--help")
    assert result.exit_code == 0
    for option in (
        "--data",
        "--target",
        "--task",
        "--hidden",
        "--activation",
        "--loss",
        "--optimizer",
        "--lr",
        "--momentum",
        "--epochs",
        "--batch-size",
        "--seed",
        "--val-split",
        "--dtype",
        "--threads",
        "--save",
        "--quiet",
        "--json",
        "--no-fuse",
    ):
        assert option in result.output, option


# --- failing early, in one line (issue 9) ------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("/proc/fastbp-model.npz", "cannot write in folder '/proc'"),
        ("", "the path is empty"),
        ("{tmp}/missing/model.npz", "does not exist"),
        ("{tmp}", "is a directory"),
    ],
)
def test_cli_train_unwritable_save_fails_before_training(target, reason, tmp_path):
    result = invoke(
        "train", "--data", IRIS, "--save", target.format(tmp=tmp_path), "--epochs", 5
    )
    last = assert_input_error(result.output, result.exit_code, "--save", reason)
    assert "epoch" not in result.output and len(result.output.splitlines()) == 1, last


def test_cli_predict_out_in_missing_folder_fails_before_reading(iris_model, tmp_path):
    result = invoke(
        "predict", "--model", iris_model, "--data", IRIS, "--out",
        tmp_path / "no" / "p.csv",
    )  # fmt: skip
    assert_input_error(result.output, result.exit_code, "--out", "does not exist")
    assert len(result.output.splitlines()) == 1


def test_cli_bench_out_in_proc_fails_before_running():
    result = invoke("bench", "--quick", "--out", "/proc/fastbp-bench")
    assert_input_error(result.output, result.exit_code, "--out", "/proc")
    assert len(result.output.splitlines()) == 1  # nothing was benchmarked


def test_cli_usage_errors_are_one_line():
    result = invoke("train", "--data", "xor", "--epochs", 0)
    assert_input_error(result.output, result.exit_code, "--epochs")
    assert len(result.output.strip().splitlines()) == 1, result.output


@pytest.mark.parametrize("column", ["x1", "y"])
def test_cli_train_value_too_large_for_float32_names_line_column_and_dtype(
    column, tmp_path
):
    rows = ["x1,x2,y"] + [f"{i},{i % 3},{i / 10}" for i in range(20)]
    rows[7] = "1e300,1,0.5" if column == "x1" else "6,1,1e300"
    path = write(tmp_path, "big.csv", "\n".join(rows) + "\n")
    result = invoke("train", "--data", path, "--epochs", 2)
    assert_input_error(
        result.output,
        result.exit_code,
        "line 8",
        f"column '{column}'",
        "--dtype float64",
    )


def test_cli_train_float64_overflow_does_not_blame_the_learning_rate(tmp_path):
    # 1e200 fits float64, but its square (the MSE) does not.
    rows = ["x1,x2,y"] + [f"{i},{i % 3},{i}e200" for i in range(1, 21)]
    path = write(tmp_path, "huge.csv", "\n".join(rows) + "\n")
    result = invoke("train", "--data", path, "--dtype", "float64", "--epochs", 2)
    # The message names the CSV line of the data row (data row 1 is line 2).
    last = assert_input_error(result.output, result.exit_code, "line 2", "'y'")
    assert "learning rate" not in last and "--lr" not in last
    assert "too large for float64" in last


def test_cli_train_float64_feature_beyond_1e154_trains_without_warnings(tmp_path):
    # Its square overflows: the standardizer's std used to be inf, with a NumPy
    # RuntimeWarning on stderr and the column silently zeroed.
    rows = ["x1,x2,y"] + [f"{i},{i % 3},{i / 10}" for i in range(20)]
    rows[7] = "1e300,1,0.5"
    path = write(tmp_path, "big.csv", "\n".join(rows) + "\n")
    model = tmp_path / "m.npz"
    proc = run_fastbp(
        "train", "--data", path, "--dtype", "float64", "--epochs", 2, "--quiet",
        "--val-split", 0, "--save", model, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    std = load_model(model)[1]["standardizer"]["std"]
    assert all(math.isfinite(v) for v in std) and std[0] > 1e298


@pytest.mark.parametrize(
    ("value", "dtype"), [("1e200", "float64"), ("1e20", "float32")]
)
def test_cli_train_target_overflow_past_the_first_batch_names_the_row(
    value, dtype, tmp_path
):
    # Used to train, diverge and blame the learning rate: train's own check
    # sees only the first batch.
    rows = ["x1,x2,y"] + [f"{i},{i % 3},{i / 10}" for i in range(60)]
    rows[51] = f"50,2,{value}"
    path = write(tmp_path, "late.csv", "\n".join(rows) + "\n")
    result = invoke("train", "--data", path, "--dtype", dtype, "--epochs", 2)
    last = assert_input_error(
        result.output, result.exit_code, "line 52", "column 'y'", dtype
    )
    assert "learning rate" not in last and "--val-split" not in last
    assert ("--dtype float64" in last) == (dtype == "float32")


@pytest.mark.parametrize(
    ("dtype", "where"), [("float64", "line 52"), ("float32", "line 52")]
)
def test_cli_subprocess_overflow_is_one_line(dtype, where, tmp_path):
    rows = ["x1,x2,y"] + [f"{i},{i % 3},{i / 10}" for i in range(60)]
    rows[51] = "50,2,1e200"
    path = write(tmp_path, "late.csv", "\n".join(rows) + "\n")
    proc = run_fastbp("train", "--data", path, "--dtype", dtype, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    last = assert_input_error(output, proc.returncode, where, "column 'y'", dtype)
    assert output.strip() == last, output


def test_cli_train_refuses_a_model_larger_than_memory():
    result = invoke("train", "--data", "xor", "--hidden", "100000000,100000000")
    assert_input_error(result.output, result.exit_code, "--hidden", "GiB")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_cli_train_divergence_same_line_on_both_paths(dtype):
    lines = []
    for flags in ([], ["--no-fuse"]):
        result = invoke(
            "train", "--data", REGRESSION, "--optimizer", "sgd", "--lr", "1e10",
            "--dtype", dtype, "--quiet", *flags,
        )  # fmt: skip
        lines.append(assert_input_error(result.output, result.exit_code, "diverged"))
    assert lines[0] == lines[1]


def test_cli_train_warns_about_a_column_of_names(tmp_path):
    rows = ["x,name"] + [f"{i},person{i}" for i in range(30)]
    path = write(tmp_path, "names.csv", "\n".join(rows) + "\n")
    result = invoke("train", "--data", path, "--epochs", 1, "--quiet")
    assert result.exit_code == 0, result.output
    assert "Warning:" in result.stderr and "30 classes for 30 rows" in result.stderr


def test_cli_train_reports_why_the_layer_path_ran():
    record = train_json("--data", "xor", "--no-fuse")
    assert record["fused"] is False and record["layer_path_reason"] == "fuse=False"


@pytest.mark.parametrize("activation", ["leaky_relu", "gelu"])
def test_cli_train_new_activations_fused_and_saved(activation, tmp_path):
    path = tmp_path / "m.npz"
    record = train_json(
        "--data", IRIS, "--activation", activation, "--epochs", 30, "--save", path
    )
    assert record["fused"] is True and record["val_accuracy"] > 0.8
    model, _ = load_model(path)
    assert model.architecture()[1]["type"] == activation


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["train", "--data", "xor", "--save", "/proc/m.npz"], "--save"),
        (["train", "--data", "xor", "--no-fuse", "--lr", "1e30", "-q"], "diverged"),
        (["bench", "--quick", "--out", "/proc/b"], "--out"),
        (["train", "--data", "xor", "--save", ""], "the path is empty"),
        (["train", "--data", "xor", "--hidden", "100000000,100000000"], "GiB"),
        (["predict", "--model", V1_IRIS, "--data", IRIS, "--out", "x/p.csv"], "exist"),
    ],
)
def test_cli_subprocess_early_errors_are_one_line(args, fragment, tmp_path):
    proc = run_fastbp(*args, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    last = assert_input_error(output, proc.returncode, fragment)
    assert output.strip() == last, output


@pytest.mark.parametrize("kind", ["tsv", "parquet", "feather", "csv.gz"])
def test_cli_train_and_predict_other_formats_match_csv(kind, tmp_path):
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    table = pacsv.read_csv(IRIS)
    path = tmp_path / f"iris.{kind}"
    if kind == "tsv":
        pacsv.write_csv(table, path, write_options=pacsv.WriteOptions(delimiter="\t"))
    elif kind == "parquet":
        pq.write_table(table, path)
    elif kind == "feather":
        feather.write_feather(table, path)
    else:
        with pa.CompressedOutputStream(str(path), "gzip") as out:
            out.write(IRIS.read_bytes())
    args = ["--epochs", 15, "--seed", 4, "--quiet"]
    invoke("train", "--data", IRIS, *args, "--save", tmp_path / "a.npz")
    invoke("train", "--data", path, *args, "--save", tmp_path / "b.npz")
    a, b = load_model(tmp_path / "a.npz")[0], load_model(tmp_path / "b.npz")[0]
    np.testing.assert_array_equal(a.flat_data, b.flat_data)
    got = invoke("predict", "--model", tmp_path / "b.npz", "--data", path)
    want = invoke("predict", "--model", tmp_path / "a.npz", "--data", IRIS)
    assert got.exit_code == 0 and got.stdout == want.stdout


def test_cli_train_unknown_extension_is_one_line(tmp_path):
    path = write(tmp_path, "data.xlsx", "a,b\n1,2\n")
    result = invoke("train", "--data", path)
    assert_input_error(result.output, result.exit_code, "unknown file type")
    result = invoke("train", "--data", path, "--format", "csv", "--epochs", 1)
    assert_input_error(result.output, result.exit_code, "only one class")


def test_cli_train_stream_trains_saves_and_predicts(tmp_path):
    model = tmp_path / "m.npz"
    record = train_json(
        "--data", REGRESSION, "--stream", "--shuffle-buffer", 64, "--epochs", 60,
        "--save", model,
    )  # fmt: skip
    assert record["stream"] is True and record["fused"] is True
    assert record["val_r2"] > 0.8, record
    result = invoke("predict", "--model", model, "--data", REGRESSION)
    assert result.exit_code == 0 and len(result.stdout.splitlines()) == 201


@pytest.mark.parametrize("data", ["xor", "-"])
def test_cli_train_stream_needs_a_file(data):
    result = invoke("train", "--data", data, "--stream")
    assert_input_error(result.output, result.exit_code, "--stream")


def test_cli_train_stream_bad_cell_is_one_line(tmp_path):
    rows = ["a,b,y"] + [f"{i},{i % 3},{i / 7}" for i in range(500)]
    rows[300] = "1,zz,2"
    path = write(tmp_path, "bad.csv", "\n".join(rows) + "\n")
    result = invoke("train", "--data", path, "--stream", "--epochs", 1, "--strict")
    # Named by its line (data row 300 is line 301), as in memory.
    assert_input_error(result.output, result.exit_code, "'b'", "line 301")
    # Without --strict the text cell is one of the column's missing cells.
    result = invoke("train", "--data", path, "--stream", "--epochs", 1)
    assert result.exit_code == 0, result.output
    assert "text cells such as 'zz' read as missing" in result.output


def test_cli_progress_bars_only_on_a_terminal(tmp_path):
    # CliRunner's streams are not terminals: no bar, no tqdm output at all.
    result = invoke("train", "--data", IRIS, "--epochs", 20, "--quiet")
    assert "loading" not in result.output and "rows/s" not in result.output
    result = invoke("predict", "--model", tmp_path / "none.npz", "--data", IRIS, "-q")
    assert_input_error(result.output, result.exit_code, "no such file")


HOUSES = EXAMPLES / "houses.csv"


def test_cli_houses_raw_table_roles_and_serving(tmp_path):
    # examples/houses.csv is a raw table (pandas' index, an ID, text
    # categories, slash dates, NA and empty cells, true/false, free text):
    # it trains with nothing but --data and --target, and serves raw rows.
    model = tmp_path / "houses.npz"
    record = train_json(
        "--data", HOUSES, "--target", "price", "--epochs", 60, "--save", model
    )
    roles = {c["name"]: c["role"] for c in record["plan"]["columns"]}
    assert roles == {
        "": "identifier", "id": "identifier", "district": "categorical",
        "built": "datetime", "rooms": "numeric", "area": "numeric",
        "garage": "boolean", "agent": "text",
    }  # fmt: skip
    assert record["val_r2"] > 0.9 and record["task"] == "regression"
    out = tmp_path / "p.csv"
    result = invoke(
        "predict", "--model", model, "--data", HOUSES, "--keep", "id", "--out", out
    )
    assert result.exit_code == 0, result.output
    assert "score: R^2" in result.stderr
    rows = list(csv.reader(out.open()))
    assert rows[0] == ["id", "prediction"] and len(rows) == 601
    assert rows[1][0] == "100000"
    proba = invoke("predict", "--model", model, "--data", HOUSES, "--proba")
    assert_input_error(proba.output, proba.exit_code, "--proba", "classification")
