"""fastbp.problem: preparation for training, the model-file schema and
reading model files written by earlier versions."""

import csv
from pathlib import Path

import numpy as np
import pytest

import fastbp
from fastbp.data import DataError, train_val_split
from fastbp.data.problem import Predictor, Problem, check_metadata, save, training_bytes
from fastbp.io import ModelFileError, load_model, save_model

DATA = Path(__file__).resolve().parents[1] / "fixtures"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def shifted_problem():
    """Regression rows whose feature means differ sharply between the first
    and the last rows, so statistics of all rows differ from any subset's."""
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (50, 2)), rng.normal(100, 10, (50, 2))])
    return Problem.from_arrays(X, rng.normal(size=100))


def test_standardizer_is_fitted_on_training_rows_only():
    problem = shifted_problem()
    prepared = problem.prepare(val_fraction=0.3, seed=1, dtype=np.float64)
    from fastbp.data import train_val_split

    train_idx, val_idx = train_val_split(100, 0.3, 1)
    np.testing.assert_allclose(prepared.scaler.mean, problem.X[train_idx].mean(0))
    np.testing.assert_allclose(prepared.scaler.std, problem.X[train_idx].std(0))
    assert not np.allclose(prepared.scaler.mean, problem.X.mean(0), rtol=1e-3)
    # The training features are exactly z-scores; the validation rows use the
    # training statistics.
    np.testing.assert_allclose(prepared.X_train.mean(0), 0, atol=1e-12)
    expected_val = (problem.X[val_idx] - prepared.scaler.mean) / prepared.scaler.std
    np.testing.assert_allclose(prepared.X_val, expected_val)


@pytest.mark.parametrize(
    ("loss", "n_outputs", "metric", "dtype"),
    [("ce", 3, "accuracy", np.int64), ("mse", 3, "accuracy", np.float32)],
)
def test_prepare_codes_iris_targets_for_the_loss(loss, n_outputs, metric, dtype):
    problem = Problem.from_csv(EXAMPLES / "iris.csv")
    prepared = problem.prepare(loss=loss, val_fraction=0.2, seed=0)
    assert prepared.n_outputs == n_outputs and prepared.metric == metric
    assert prepared.T_train.dtype == dtype
    assert len(prepared.X_val) == 30 and len(prepared.X_train) == 120
    if loss == "mse":  # one-hot rows
        np.testing.assert_array_equal(prepared.T_train.sum(1), 1)
    # Stratified: 10 validation rows per species.
    labels = prepared.T_val if loss == "ce" else prepared.T_val.argmax(1)
    assert np.bincount(labels).tolist() == [10, 10, 10]


def test_prepare_two_classes_with_mse_gives_one_zero_one_column():
    problem = Problem.xor()
    prepared = problem.prepare()
    assert prepared.loss == "mse" and prepared.n_outputs == 1
    assert prepared.metric == "binary_accuracy" and prepared.scaler is None
    np.testing.assert_array_equal(prepared.T_train[:, 0], [0, 1, 1, 0])
    assert prepared.validation is None


def test_prepare_rejects_cross_entropy_for_regression_naming_the_parameter():
    problem = Problem.from_csv(EXAMPLES / "regression.csv")
    with pytest.raises(ValueError, match="loss 'ce' needs a classification") as e:
        problem.prepare(loss="ce")
    assert "--" not in str(e.value)


def test_from_arrays_infers_the_task_and_encodes_labels():
    X = np.arange(12.0).reshape(6, 2)
    problem = Problem.from_arrays(X, np.array(["b", "a", "b", "c", "a", "c"]))
    assert problem.task == "classification" and problem.classes == ("a", "b", "c")
    np.testing.assert_array_equal(problem.y, [1, 0, 1, 2, 0, 2])
    assert Problem.from_arrays(X, np.linspace(0, 1, 6)).task == "regression"
    with pytest.raises(ValueError, match="y must have shape"):
        Problem.from_arrays(X, np.zeros(5))


def test_metadata_round_trips_through_a_model_file(tmp_path):
    problem = Problem.from_csv(EXAMPLES / "iris.csv")
    prepared = problem.prepare(val_fraction=0.2, seed=0)
    model = fastbp.mlp([4, 8, 3], "gelu", rng=0)
    fastbp.train(model, fastbp.CrossEntropyLoss(), fastbp.Adam(model.parameters(),
                 lr=0.01), prepared.X_train, prepared.T_train, epochs=20)  # fmt: skip
    prepared.save(tmp_path / "m.npz", model)
    predictor = Predictor.load(tmp_path / "m.npz")
    assert predictor.classes == problem.classes
    assert predictor.feature_names == problem.feature_names
    labels = predictor.predict_file(EXAMPLES / "iris.csv")
    expected = model.predict(prepared.scaler.transform(problem.X, np.float32))
    assert labels == [problem.classes[i] for i in expected.argmax(1)]


@pytest.mark.parametrize("name", ["model_v1_iris", "model_v1_regression"])
def test_model_files_from_the_first_format_still_predict_the_same(name):
    # Written by fastbp before the registry and problem.py existed (commit
    # 51939c9, `fastbp train ... --save`), with the predictions that version
    # printed (`fastbp predict`).
    data = "iris.csv" if "iris" in name else "regression.csv"
    predictor = Predictor.load(DATA / f"{name}.npz")
    got = predictor.predict_file(EXAMPLES / data)
    with open(DATA / f"{name}.predictions.csv", newline="") as f:
        rows = [row[0] for row in csv.reader(f)][1:]
    if predictor.task == "classification":
        assert got == rows
    else:
        # To float64 rounding, not bit for bit: the products now run in
        # NumPy's OpenBLAS, whose kernels sum in another order than the
        # SciPy copy that computed the stored predictions (differences of
        # 3e-16, a few ulps).
        np.testing.assert_allclose(
            got, np.array(rows, dtype=np.float64), rtol=1e-12, atol=1e-15
        )


def test_training_bytes_counts_parameters_and_batches():
    # 2-8-1: 33 parameters; float32 values, grads, packed copy, one state
    # vector, one temporary (5 x 4 bytes) and the float64 draw (8): 28 bytes
    # each; batch rows hold 3 arrays of the 11 widths.
    assert training_bytes([2, 8, 1], 4, np.float32, 1) == 33 * 28 + 4 * 4 * 3 * 11
    huge = training_bytes([2, 100_000_000, 1], 4, np.float32, 1)
    assert huge > 7e9


@pytest.mark.parametrize(("value", "dtype"), [(1e20, "float32"), (1e200, "float64")])
def test_prepare_rejects_a_target_whose_square_overflows(value, dtype):
    # Row 40 is past the first batch, where train's own check looks; training
    # used to report a divergence and blame the learning rate.
    y = np.linspace(0, 1, 60)
    y[40] = value
    problem = Problem.from_arrays(np.arange(120.0).reshape(60, 2), y)
    with pytest.raises(DataError, match=f"row 40, column 'target'.*{dtype}") as e:
        problem.prepare(dtype=dtype, val_fraction=0.2)
    assert ("use float64" in str(e.value)) == (dtype == "float32")


def test_prepare_names_a_validation_row_far_outside_the_training_rows(tmp_path):
    _, val_idx = train_val_split(60, 0.2, seed=0)
    rows = ["x1,x2,y"] + [f"{i},{i % 3},{i / 10}" for i in range(60)]
    rows[1 + val_idx[0]] = f"1e300,1,{val_idx[0] / 10}"
    path = tmp_path / "far.csv"
    path.write_text("\n".join(rows) + "\n")
    problem = Problem.from_csv(path, dtype=np.float64)
    with pytest.raises(DataError) as e:
        problem.prepare(val_fraction=0.2, seed=0, dtype=np.float64)
    assert f"data row {val_idx[0] + 1}, column 'x1': 1e+300" in str(e.value)
    assert "training rows' mean and std" in str(e.value)
    # In a training row the same value standardizes to a few units: no error,
    # even in float32 once the features are rounded after standardizing.
    X = problem.X.copy()
    X[val_idx[0], 0] = 0.0
    X[0, 0] = 1e300
    prepared = Problem.from_arrays(X, problem.y).prepare(val_fraction=0.2, seed=0)
    assert np.all(np.abs(prepared.X_train) < 10)


def test_predictor_in_memory_equals_the_saved_one_and_takes_arrays(tmp_path):
    problem = Problem.from_csv(EXAMPLES / "iris.csv")
    prepared = problem.prepare(val_fraction=0.2, seed=0)
    model = fastbp.mlp([4, 8, 3], "relu", rng=0)
    fastbp.train(model, fastbp.CrossEntropyLoss(), fastbp.Adam(model.parameters(),
                 lr=0.01), prepared.X_train, prepared.T_train, epochs=20)  # fmt: skip
    prepared.save(tmp_path / "m.npz", model)
    in_memory = prepared.predictor(model)
    labels = in_memory.predict(problem.X.astype(np.float64))
    assert labels == Predictor.load(tmp_path / "m.npz").predict_file(
        EXAMPLES / "iris.csv"
    )
    assert set(labels) <= set(problem.classes)
    with pytest.raises(ValueError, match=r"shape \(n_samples, 4\).*sepal"):
        in_memory.predict(np.ones((2, 3)))
    with pytest.raises(ValueError, match="NaN"):
        in_memory.predict(np.full((1, 4), np.nan))


def test_a_model_saved_without_metadata_predicts_values(tmp_path):
    # A library user's model: no Problem, no meta; it loads as regression on
    # features x1, x2 with no standardization.
    model = fastbp.mlp([2, 4, 1], "tanh", rng=1)
    save_model(tmp_path / "bare.npz", model)
    predictor = Predictor.load(tmp_path / "bare.npz")
    assert predictor.feature_names == ("x1", "x2") and predictor.task == "regression"
    X = np.array([[0.5, -1.0], [2.0, 3.0]])
    # Served in NumPy (no kernel loaded): the kernels' output to float32
    # rounding, which sums in another order.
    np.testing.assert_allclose(
        predictor.predict(X), model.predict(X.astype(np.float32))[:, 0], rtol=1e-6
    )


# --- the model-file schema ----------------------------------------------------


def two_class_model():
    return fastbp.mlp([3, 5, 2], "tanh", rng=0)


def two_class_meta(**changes):
    meta = {
        "feature_names": ["a", "b", "c"],
        "target_name": "label",
        "task": "classification",
        "classes": ["no", "yes"],
        "standardizer": {"mean": [0.5, 1.0, -2.0], "std": [1.0, 2.0, 0.25]},
    }
    meta.update(changes)
    return meta


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"task": "ranking"}, "'task'"),
        ({"classes": ["only"]}, "'classes'"),
        ({"classes": ["x", "x"]}, "distinct"),
        ({"classes": ["a", "b", "c"]}, "3 labels, the model has 2 outputs"),
        ({"feature_names": ["a"]}, "1 names, the model has 3 inputs"),
        ({"target_name": 3}, "'target_name'"),
        ({"standardizer": {"mean": [0, 0, 0]}}, "'standardizer'"),
        ({"standardizer": {"mean": [0, 0, 0], "std": [1, 0, 1]}}, "positive"),
        ({"standardizer": {"mean": [0, 0], "std": [1, 1]}}, "2 values"),
        ({"standardizer": {"mean": [0, 0, "0"], "std": [1, 1, 1]}}, "finite"),
        ({"task": "regression"}, "'classes' must be null"),
    ],
)
def test_save_rejects_meta_that_does_not_fit_the_model(changes, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        save(tmp_path / "m.npz", two_class_model(), two_class_meta(**changes))
    assert list(tmp_path.iterdir()) == []
    # A file written with it anyway (by fastbp.io alone) is refused on load,
    # in one line naming the file.
    save_model(tmp_path / "m.npz", two_class_model(), meta=two_class_meta(**changes))
    with pytest.raises(ModelFileError, match=match) as e:
        Predictor.load(tmp_path / "m.npz")
    assert str(e.value).startswith(str(tmp_path / "m.npz")) and "\n" not in str(e.value)


def test_save_fills_missing_meta_keys_with_their_defaults(tmp_path):
    # fastbp.problem.save takes what a library user has, not only what the
    # CLI writes; NumPy values become JSON.
    meta = two_class_meta(classes=("no", "yes"), epochs=np.int64(3))
    del meta["standardizer"], meta["target_name"]
    save(tmp_path / "m.npz", two_class_model(), meta)
    stored = load_model(tmp_path / "m.npz")[1]
    assert stored["standardizer"] is None and stored["target_name"] == "target"
    assert stored["classes"] == ["no", "yes"] and stored["epochs"] == 3
    bare = check_metadata(None, two_class_model())
    assert bare["feature_names"] == ["x1", "x2", "x3"] and bare["task"] == "regression"


def test_predictor_reads_a_file_whose_meta_lacks_keys(tmp_path):
    save_model(tmp_path / "m.npz", two_class_model(), meta={"task": "regression"})
    predictor = Predictor.load(tmp_path / "m.npz")
    assert predictor.feature_names == ("x1", "x2", "x3") and predictor.scaler is None


@pytest.mark.parametrize("task", ["regression", "classification"])
@pytest.mark.parametrize("val_fraction", [0.0, 0.3])
def test_prepare_in_place_gives_the_copying_arrays(task, val_fraction):
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(100_003, 3)).astype(np.float32)
    y = (X[:, 0] > 3) if task == "classification" else X[:, 1] * 2.0
    make = lambda: Problem.from_arrays(X.copy(), y, task=task)  # noqa: E731
    kept = make().prepare(val_fraction=val_fraction, seed=4, dtype=np.float64)
    problem = make()
    spent = problem.prepare(
        val_fraction=val_fraction, seed=4, dtype=np.float64, copy=False
    )
    for name in ("X_train", "T_train", "X_val", "T_val"):
        np.testing.assert_array_equal(getattr(spent, name), getattr(kept, name))
    # The training rows live in the problem's own X, moved to its front.
    assert np.shares_memory(spent.X_train, problem.X)
    assert spent.X_train.flags.c_contiguous
    np.testing.assert_array_equal(spent.scaler.mean, kept.scaler.mean)


def test_prepare_in_place_needs_the_dtype_else_copies():
    X = np.arange(12.0).reshape(6, 2)  # float64, prepared as float32
    problem = Problem.from_arrays(X, np.arange(6.0), task="regression")
    prepared = problem.prepare(copy=False, dtype=np.float32)
    assert prepared.X_train.dtype == np.float32
    assert not np.shares_memory(prepared.X_train, problem.X)
