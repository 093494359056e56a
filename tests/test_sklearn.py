"""fastbp.sklearn against scikit-learn itself.

The reference is scikit-learn's own MLP: from the same random_state both draw
the same initial weights, so with full-batch L-BFGS, or plain SGD on batches in
stored order (no momentum, no shuffling) in float64, the two must reach the
same weights, losses and early-stopping decisions to rounding. Then
scikit-learn's conformance suite, its tools (Pipeline, GridSearchCV, pickle),
and fastbp's model files.
"""

import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")

from raw_tables import raw_frame, run_fastbp, write_csv  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.datasets import make_classification, make_regression  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import GridSearchCV, cross_val_score  # noqa: E402
from sklearn.neural_network import MLPClassifier as SkClassifier  # noqa: E402
from sklearn.neural_network import MLPRegressor as SkRegressor  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import (  # noqa: E402
    check_sample_weight_equivalence_on_dense_data,
    estimator_checks_generator,
)

from fastbp.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

STOCHASTIC_WEIGHTS = (
    "mini-batch training with shuffling: a row of weight 2 is not the same "
    "as the row repeated, which lands in other batches; full-batch L-BFGS "
    "passes this check (test_lbfgs_sample_weight_equivalence)"
)


#: Checks that do not apply, left out: they skip themselves anyway.
NOT_APPLICABLE = {
    # Array API inputs (CuPy, torch tensors...) are not supported: fastbp
    # trains NumPy arrays; the check also needs SCIPY_ARRAY_API=1 set.
    "check_array_api_input",
    # There is no decision_function, as in scikit-learn's MLPClassifier.
    "check_classifiers_multilabel_output_format_decision_function",
}


def conformance_checks():
    for est in (
        MLPClassifier(max_iter=100, random_state=0),
        MLPRegressor(max_iter=100, random_state=0),
    ):
        checks = estimator_checks_generator(
            est,
            expected_failed_checks={
                "check_sample_weight_equivalence_on_dense_data": STOCHASTIC_WEIGHTS,
                "check_sample_weight_equivalence_on_sparse_data": STOCHASTIC_WEIGHTS,
            },
            mark="xfail",
        )
        for item in checks:
            estimator, check = item.values if hasattr(item, "values") else item
            name = getattr(check, "func", check).__name__
            if name not in NOT_APPLICABLE:
                marks = item.marks if hasattr(item, "marks") else ()
                yield pytest.param(
                    estimator, check, marks=marks, id=f"{type(est).__name__}-{name}"
                )


@pytest.mark.parametrize("estimator, check", list(conformance_checks()))
def test_sklearn_conformance(estimator, check):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.mark.parametrize(
    "est",
    [
        MLPClassifier(solver="lbfgs", dtype="float64", random_state=0),
        MLPRegressor(solver="lbfgs", dtype="float64", random_state=0, tol=1e-2),
    ],
    ids=["classifier", "regressor"],
)
def test_lbfgs_sample_weight_equivalence(est):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check_sample_weight_equivalence_on_dense_data(type(est).__name__, est)


# --- the same numbers as scikit-learn ----------------------------------------


def classification(kind, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    if kind == "binary":
        y = (X[:, 0] + X[:, 1] > 0).astype(int)
    elif kind == "multiclass":
        y = np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5])
    else:  # multilabel
        y = np.stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0, X[:, 3] > 0.5], 1)
        y = y.astype(int)
    return X, y


def regression(n_outputs, n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 5))
    Y = np.tanh(X @ rng.normal(size=(5, n_outputs))) + 0.1 * X[:, :n_outputs]
    return X, Y[:, 0] if n_outputs == 1 else Y


CASES = {
    "binary": (MLPClassifier, SkClassifier, lambda: classification("binary")),
    "multiclass": (MLPClassifier, SkClassifier, lambda: classification("multiclass")),
    "multilabel": (MLPClassifier, SkClassifier, lambda: classification("multilabel")),
    "regression": (MLPRegressor, SkRegressor, lambda: regression(1)),
    "multioutput": (MLPRegressor, SkRegressor, lambda: regression(2)),
}


def fit_both(case, weights=False, **params):
    ours, theirs, data = CASES[case]
    X, y = data()
    sw = np.random.default_rng(5).uniform(0.2, 2.0, len(X)) if weights else None
    a = ours(dtype="float64", **params)
    b = theirs(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a.fit(X, y, sample_weight=sw)
        b.fit(X, y, sample_weight=sw)
    return a, b, X


def assert_same_weights(a, b, rtol=1e-9, atol=1e-12):
    ours_all, theirs_all = a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_
    for ours, theirs in zip(ours_all, theirs_all, strict=True):
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


SGD_PLAIN = dict(
    solver="sgd",
    momentum=0.0,
    shuffle=False,
    batch_size=32,
    learning_rate_init=0.05,
    hidden_layer_sizes=(7, 4),
    random_state=3,
)


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("weights", [False, True], ids=["unweighted", "weighted"])
def test_sgd_matches_sklearn_step_for_step(case, weights):
    a, b, X = fit_both(case, weights, alpha=0.01, max_iter=15, **SGD_PLAIN)
    assert_same_weights(a, b)
    assert a.n_iter_ == b.n_iter_ == 15 and a.t_ == b.t_
    if case != "multioutput":  # scikit-learn reports the mean over outputs
        np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)
    assert a.out_activation_ == b.out_activation_
    assert a.n_outputs_ == b.n_outputs_ and a.n_layers_ == b.n_layers_
    if case in ("binary", "multiclass", "multilabel"):
        np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9)
        np.testing.assert_array_equal(a.predict(X), b.predict(X))
        np.testing.assert_array_equal(a.classes_, b.classes_)
    else:
        np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9)


@pytest.mark.parametrize("activation", ["identity", "logistic", "tanh", "relu"])
def test_every_sklearn_activation_matches(activation):
    a, b, _ = fit_both(
        "multiclass",
        alpha=0.0,
        max_iter=5,
        activation=activation,
        **{k: v for k, v in SGD_PLAIN.items() if k != "activation"},
    )
    assert_same_weights(a, b)


@pytest.mark.parametrize("schedule", ["invscaling", "adaptive"])
def test_sgd_schedules_and_stopping_match_sklearn(schedule):
    params = dict(SGD_PLAIN, learning_rate=schedule, max_iter=200, tol=1e-3)
    params["n_iter_no_change"] = 3
    a, b, _ = fit_both("binary", **params)
    assert a.n_iter_ == b.n_iter_ < 200  # stopped by the same rule, same epoch
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-8)
    assert_same_weights(a, b, rtol=1e-7, atol=1e-10)


def test_early_stopping_matches_sklearn_and_restores_the_best_weights():
    params = dict(SGD_PLAIN, early_stopping=True, max_iter=300, n_iter_no_change=4)
    params["validation_fraction"] = 0.25
    a, b, _ = fit_both("multiclass", **params)
    assert a.n_iter_ == b.n_iter_ < 300
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_)
    assert a.best_validation_score_ == b.best_validation_score_
    assert a.best_loss_ is None and b.best_loss_ is None
    assert_same_weights(a, b, rtol=1e-8, atol=1e-11)  # the best epoch's


@pytest.mark.parametrize("case", ["binary", "multiclass", "regression"])
def test_lbfgs_matches_sklearn(case):
    a, b, _ = fit_both(
        case, weights=True, solver="lbfgs", max_iter=8, alpha=0.1, random_state=1
    )
    assert a.n_iter_ == b.n_iter_ == 8
    np.testing.assert_allclose(a.loss_, b.loss_, rtol=1e-7)
    assert_same_weights(a, b, rtol=1e-5, atol=1e-8)


def test_partial_fit_matches_sklearn_call_for_call():
    X, y = classification("multiclass")
    a = MLPClassifier(dtype="float64", **SGD_PLAIN)
    b = SkClassifier(**SGD_PLAIN)
    for s in range(0, 120, 40):
        a.partial_fit(X[s : s + 40], y[s : s + 40], classes=[0, 1, 2])
        b.partial_fit(X[s : s + 40], y[s : s + 40], classes=[0, 1, 2])
    assert_same_weights(a, b)
    assert a.n_iter_ == b.n_iter_ == 1 and a.t_ == b.t_ == 120


def test_partial_fit_keeps_adam_state_between_calls():
    X, y = regression(1)
    one = MLPRegressor(random_state=0, shuffle=False, batch_size=40, dtype="float64")
    one.partial_fit(X, y)
    one.partial_fit(X, y)
    two = MLPRegressor(
        random_state=0,
        shuffle=False,
        batch_size=40,
        dtype="float64",
        max_iter=2,
        n_iter_no_change=5,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        two.fit(X, y)
    assert_same_weights(one, two)


def test_warm_start_continues_from_the_fitted_weights():
    X, y = classification("binary")
    params = dict(SGD_PLAIN, max_iter=5, warm_start=True)
    a = MLPClassifier(dtype="float64", **params)
    b = SkClassifier(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for est in (a, b):
            est.fit(X, y).fit(X, y)
    assert_same_weights(a, b)
    assert a.n_iter_ == b.n_iter_ == 5 and len(a.loss_curve_) == 10


def test_class_weight_is_sample_weight_by_class():
    X, y = classification("multiclass")
    counts = np.bincount(y)
    balanced = len(y) / (3 * counts)
    params = dict(SGD_PLAIN, max_iter=4, dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        a = MLPClassifier(class_weight="balanced", **params).fit(X, y)
        b = MLPClassifier(**params).fit(X, y, sample_weight=balanced[y])
        c = MLPClassifier(class_weight={0: 1.0, 1: 3.0, 2: 0.5}, **params).fit(X, y)
        d = MLPClassifier(**params).fit(X, y, sample_weight=np.array([1, 3, 0.5])[y])
    assert_same_weights(a, b, rtol=1e-12)
    assert_same_weights(c, d, rtol=1e-12)
    with pytest.raises(ValueError, match="class_weight"):
        MLPClassifier(class_weight="heavy").fit(X, y)


def test_float32_learns_as_well_as_sklearn():
    X, y = make_classification(400, 8, n_informative=5, random_state=0)
    X = StandardScaler().fit_transform(X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ours = MLPClassifier((16,), max_iter=60, random_state=0).fit(X[:300], y[:300])
        ref = SkClassifier((16,), max_iter=60, random_state=0).fit(X[:300], y[:300])
    assert ours.coefs_[0].dtype == np.float32
    assert abs(ours.score(X[300:], y[300:]) - ref.score(X[300:], y[300:])) < 0.05


# --- parameters --------------------------------------------------------------


@pytest.mark.parametrize(
    "param, value",
    [
        ("hidden_layer_sizes", (4, 0)),
        ("activation", "softsign"),
        ("solver", "rmsprop"),
        ("alpha", -1.0),
        ("batch_size", 0),
        ("learning_rate", "linear"),
        ("learning_rate_init", 0.0),
        ("max_iter", 0),
        ("momentum", 1.5),
        ("validation_fraction", 1.0),
        ("beta_1", 1.0),
        ("epsilon", 0.0),
        ("n_iter_no_change", 0),
        ("dtype", "float16"),
        ("n_threads", 0),
    ],
)
def test_bad_parameters_are_one_line_errors_naming_them(param, value):
    X, y = classification("binary")
    with pytest.raises(ValueError, match=param) as info:
        MLPClassifier(**{param: value}).fit(X, y)
    assert "\n" not in str(info.value)


def test_regressor_loss_must_be_squared_error():
    with pytest.raises(ValueError, match="squared_error"):
        MLPRegressor(loss="poisson").fit(*regression(1))


def test_non_finite_weights_are_a_value_error():
    X, y = regression(1)
    with pytest.raises(ValueError, match="non-finite"):
        MLPRegressor(solver="sgd", learning_rate_init=1e6, max_iter=5).fit(
            X * 1e3, y * 1e3
        )


# --- scikit-learn's tools ----------------------------------------------------


def test_pipeline_grid_search_cross_val_clone_and_pickle():
    X, y = make_classification(300, 6, random_state=1)
    pipe = make_pipeline(StandardScaler(), MLPClassifier(max_iter=30, random_state=0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid = GridSearchCV(
            pipe, {"mlpclassifier__hidden_layer_sizes": [(4,), (8,)]}, cv=3, n_jobs=2
        ).fit(X, y)
        scores = cross_val_score(pipe, X, y, cv=3)
    assert grid.best_score_ > 0.7 and scores.min() > 0.7
    model = grid.best_estimator_
    copy = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(copy.predict_proba(X), model.predict_proba(X))
    fresh = clone(model[-1])
    assert fresh.get_params() == model[-1].get_params()
    assert not hasattr(fresh, "coefs_")


# --- fastbp model files ------------------------------------------------------


def test_saved_classifier_is_served_by_fastbp_predict(tmp_path):
    X, y = classification("multiclass")
    labels = np.array(["low", "mid", "high"])[y]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPClassifier((8,), max_iter=20, random_state=0).fit(X, labels)
    est.save(tmp_path / "m.npz")
    data = tmp_path / "x.csv"
    names = [f"x{j + 1}" for j in range(5)]
    np.savetxt(data, X, delimiter=",", header=",".join(names), comments="")
    out = tmp_path / "p.csv"
    proc = subprocess.run(
        [sys.executable, "-m", "fastbp", "predict", "--model", str(tmp_path / "m.npz"),
         "--data", str(data), "--out", str(out), "-q"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    served = out.read_text().split()[1:]
    assert served == list(est.predict(X))
    back = MLPClassifier.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(back.predict(X), est.predict(X))
    np.testing.assert_allclose(back.predict_proba(X), est.predict_proba(X))


@pytest.mark.parametrize("classes", [[0, 1], ["no", "yes"]])
def test_binary_classifier_round_trips_its_labels(tmp_path, classes):
    X, y = classification("binary")
    y = np.array(classes)[y]
    est = MLPClassifier((6,), solver="lbfgs", max_iter=30, random_state=0).fit(X, y)
    est.save(tmp_path / "b.npz")
    back = MLPClassifier.load(tmp_path / "b.npz")
    np.testing.assert_array_equal(back.classes_, est.classes_)
    np.testing.assert_array_equal(back.predict(X), est.predict(X))


def test_model_trained_by_the_cli_loads_as_an_estimator(tmp_path):
    from fastbp.data.problem import Predictor

    X, y = regression(1, n=200)
    data = tmp_path / "r.csv"
    table = np.column_stack([X, y])
    header = ",".join([f"f{j}" for j in range(5)] + ["y"])
    np.savetxt(data, table, delimiter=",", header=header, comments="")
    proc = subprocess.run(
        [sys.executable, "-m", "fastbp", "train", "--data", str(data), "--epochs",
         "5", "--save", str(tmp_path / "r.npz"), "-q"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    est = MLPRegressor.load(tmp_path / "r.npz")
    expected = Predictor.load(tmp_path / "r.npz").predict(X)
    with pytest.warns(UserWarning, match="feature names"):  # as scikit-learn
        got = est.predict(X)
    np.testing.assert_array_equal(got, expected)
    assert list(est.feature_names_in_) == [f"f{j}" for j in range(5)]
    with pytest.raises(Exception, match="MLPClassifier|regression"):
        MLPClassifier.load(tmp_path / "r.npz")


def test_standardized_cli_model_predicts_as_fastbp_predict_exactly(tmp_path):
    # --strict: the clean-number reader and a standardizer, no plan. The
    # estimator standardizes in float64 and rounds once, as Predictor.
    from fastbp.data.problem import Predictor

    X, y = regression(1, n=200)
    X = X * [1e3, 1e-3, 7.0, 1.0, 3.0] + [5e3, 2.0, -4.0, 0.0, 1.0]
    data = tmp_path / "r.csv"
    header = ",".join([f"f{j}" for j in range(5)] + ["y"])
    np.savetxt(data, np.column_stack([X, y]), delimiter=",", header=header,
               comments="", fmt="%.17g")  # fmt: skip
    run_fastbp("train", "--data", data, "--strict", "--epochs", "5", "--save",
               tmp_path / "r.npz", "-q")  # fmt: skip
    est = MLPRegressor.load(tmp_path / "r.npz")
    assert est._plan is None and est._standardizer is not None
    frame = pd.DataFrame(X, columns=[f"f{j}" for j in range(5)])
    np.testing.assert_array_equal(
        est.predict(frame), Predictor.load(tmp_path / "r.npz").predict(X)
    )


def train_raw(tmp_path, target, rows=slice(0, 150)):
    """fastbp train on the first rows of the raw table (CSV) for target; the
    model file's path."""
    df = raw_frame()
    other = "spend" if target == "label" else "label"
    data = write_csv(df.drop(columns=other).iloc[rows], tmp_path / "raw.csv")
    model = tmp_path / f"{target}.npz"
    run_fastbp("train", "--data", data, "--target", target, "--epochs", "40",
               "--hidden", "16", "--save", model, "-q")  # fmt: skip
    return model


def new_rows():
    """Rows the model never saw, with a level never seen, and cells missing
    where the training rows had none (they take the fill)."""
    df = raw_frame().iloc[150:].drop(columns=["label", "spend"]).copy()
    df.loc[df.index[:4], "city"] = "Atlantis"
    df.loc[df.index[4:8], ["age", "member", "joined"]] = [np.nan, None, pd.NaT]
    df.loc[df.index[8:10], "city"] = ["NA", ""]
    return df


def table_forms(df):
    """The same rows as a DataFrame, an Arrow table, a dict of columns, and
    a DataFrame with the columns shuffled plus one the model does not read."""
    shuffled = df[df.columns[::-1]].assign(extra=1.0)
    as_dict = {name: df[name].tolist() for name in df.columns}
    return [df, pa.Table.from_pandas(df, preserve_index=False), as_dict, shuffled]


def test_cli_raw_table_classifier_reads_raw_frames_as_predictor(tmp_path):
    from fastbp.data.problem import Predictor

    model = train_raw(tmp_path, "label")
    est = MLPClassifier.load(model)
    served = Predictor.load(model)
    # The raw columns the plan reads: the row id and free text are left out.
    assert list(est.feature_names_in_) == ["age", "city", "member", "joined"]
    assert est.n_features_in_ == 4
    assert est.coefs_[0].shape[0] == len(served.feature_names) == 17
    df = new_rows()
    expected = served.predict(df)
    assert len(set(expected)) > 1  # not a constant model
    for data in table_forms(df):
        assert list(est.predict(data)) == expected
        np.testing.assert_array_equal(est.predict_proba(data), served.predict_proba(df))
    # The rows as fastbp predict reads them from a file: the same labels.
    write_csv(df, tmp_path / "new.csv")
    out = tmp_path / "p.csv"
    run_fastbp("predict", "--model", model, "--data", tmp_path / "new.csv",
               "--out", out, "-q")  # fmt: skip
    assert out.read_text().split()[1:] == expected


def test_cli_raw_table_regressor_reads_raw_frames_in_target_units(tmp_path):
    from fastbp.data.problem import Predictor
    from fastbp.io import load_model

    model = train_raw(tmp_path, "spend")
    meta = load_model(model)[1]
    assert meta["target_scale"]["std"] > 10  # trained on a scaled target
    est = MLPRegressor.load(model)
    df = new_rows()
    expected = Predictor.load(model).predict(df)
    assert abs(np.mean(expected) - 500) < 100  # the target's units
    for data in table_forms(df):
        np.testing.assert_array_equal(est.predict(data), expected)
    # Saved again, the file keeps what predicting needs.
    est.save(tmp_path / "again.npz")
    again = load_model(tmp_path / "again.npz")[1]
    for key in ("plan", "standardizer", "target_scale", "target_name",
                "feature_names", "task"):  # fmt: skip
        assert again[key] == meta[key], key
    np.testing.assert_array_equal(
        Predictor.load(tmp_path / "again.npz").predict(df), expected
    )


def test_loaded_raw_table_model_errors(tmp_path):
    est = MLPRegressor.load(train_raw(tmp_path, "spend"))
    df = new_rows()
    with pytest.raises(ValueError, match="missing 'member'") as info:
        est.predict(df.drop(columns="member"))
    assert "\n" not in str(info.value)
    with pytest.raises(TypeError, match="DataFrame"):
        with pytest.warns(UserWarning, match="feature names"):
            est.predict(np.zeros((3, 4)))  # text and date columns are no numbers
    # Training goes on only from scratch: the file's plan, standardization
    # and target scale belong to the weights it holds.
    X, y = regression(1)
    for how in (
        lambda e: e.set_params(warm_start=True).fit(X, y),
        lambda e: e.partial_fit(X, y),
    ):
        with pytest.raises(ValueError, match="cannot continue training"):
            how(MLPRegressor.load(tmp_path / "spend.npz"))
    params = dict(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=20,
                  random_state=0, dtype="float32")  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        refit = est.set_params(**params).fit(X, y)
        fresh = MLPRegressor(**params).fit(X, y)
    np.testing.assert_array_equal(refit.predict(X), fresh.predict(X))
    assert not hasattr(refit, "feature_names_in_")


# --- a Pipeline(TableEncoder, MLP) as one model file -------------------------


def odd_rows():
    """New rows as a DataFrame with every column type: a datetime64 column
    (written as ISO text by to_csv), None and "NA" in text, None in bools,
    levels never seen."""
    return new_rows()


def served_by_fastbp_predict(tmp_path, model, df):
    """fastbp predict's output (as text, one per row) on df written as a CSV."""
    data = write_csv(df, tmp_path / "served.csv")
    out = tmp_path / "served_out.csv"
    run_fastbp("predict", "--model", model, "--data", data, "--out", out, "-q")
    lines = out.read_text().split("\n")
    assert lines[0] and lines[-1] == ""
    return lines[1:-1]


@pytest.mark.parametrize(
    "encoder_dtype, network_dtype",
    [("float32", "float32"), ("float64", "float64"), ("float64", "float32")],
)
def test_saved_pipeline_classifier_is_served_by_fastbp_predict(
    tmp_path, encoder_dtype, network_dtype
):
    from fastbp.data.problem import Predictor
    from fastbp.sklearn import TableEncoder, save

    df = raw_frame()
    X, y = df.drop(columns=["label", "spend"]), df["label"]
    pipe = make_pipeline(
        TableEncoder(dtype=encoder_dtype),
        MLPClassifier((16,), max_iter=80, random_state=0, dtype=network_dtype),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X.iloc[:150], y.iloc[:150])
    model = tmp_path / "pipe.npz"
    save(pipe, model, target_name="label")
    rows = odd_rows()
    expected = pipe.predict(rows)
    assert len(set(expected)) == 3  # not a constant model
    assert served_by_fastbp_predict(tmp_path, model, rows) == list(expected)
    # In-process, the file serves the pipeline's probabilities exactly.
    served = Predictor.load(model)
    assert served.target_name == "label"
    np.testing.assert_array_equal(served.predict_proba(rows), pipe.predict_proba(rows))
    back = MLPClassifier.load(model)
    np.testing.assert_array_equal(back.predict(rows), expected)
    np.testing.assert_array_equal(back.predict_proba(rows), pipe.predict_proba(rows))


def test_saved_pipeline_regressor_is_served_by_fastbp_predict(tmp_path):
    from fastbp.sklearn import TableEncoder, save

    df = raw_frame()
    X, y = df.drop(columns=["label", "spend"]), df["spend"]
    pipe = make_pipeline(
        TableEncoder(categorical="member"),
        MLPRegressor(
            hidden_layer_sizes=(16,), solver="lbfgs", max_iter=60, random_state=0
        ),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X.iloc[:150], y.iloc[:150])
    save(pipe, tmp_path / "r.npz")
    rows = odd_rows()
    served = served_by_fastbp_predict(tmp_path, tmp_path / "r.npz", rows)
    # repr of each float64 prediction: exact.
    np.testing.assert_array_equal(np.array(served, float), pipe.predict(rows))
    assert np.std(pipe.predict(rows)) > 10


def test_saved_pipeline_of_penguins_is_served_by_fastbp_predict(tmp_path):
    palmerpenguins = pytest.importorskip("palmerpenguins")
    from fastbp.sklearn import TableEncoder, save

    df = palmerpenguins.load_penguins()
    X, y = df.drop(columns="species"), df["species"]
    train = np.random.default_rng(0).random(len(df)) < 0.8
    pipe = make_pipeline(
        TableEncoder(), MLPClassifier((16,), solver="lbfgs", random_state=0)
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        pipe.fit(X[train], y[train])
    assert pipe.score(X[~train], y[~train]) > 0.9
    save(pipe, tmp_path / "penguins.npz", target_name="species")
    served = served_by_fastbp_predict(tmp_path, tmp_path / "penguins.npz", df)
    assert served == list(pipe.predict(X))


def test_save_refuses_what_a_model_file_cannot_hold(tmp_path):
    from sklearn.pipeline import Pipeline

    from fastbp.sklearn import TableEncoder, save

    df = raw_frame().iloc[:60]
    X, y = df.drop(columns=["label", "spend"]), df["label"]
    path = tmp_path / "m.npz"

    def fitted(*steps):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return make_pipeline(*steps).fit(X, y)

    small = dict(hidden_layer_sizes=(4,), max_iter=5, random_state=0)
    with pytest.raises(ValueError, match="step 'standardscaler'"):
        save(fitted(TableEncoder(), StandardScaler(), MLPClassifier(**small)), path)
    with pytest.raises(ValueError, match="dtype 'float32'"):
        save(fitted(TableEncoder(), MLPClassifier(dtype="float64", **small)), path)
    with pytest.raises(TypeError, match="got SkClassifier|got MLPClassifier"):
        save(fitted(TableEncoder(), SkClassifier(**small)), path)
    with pytest.raises(sklearn.exceptions.NotFittedError):
        save(Pipeline([("enc", TableEncoder()), ("mlp", MLPClassifier())]), path)
    assert not path.exists()
    # None and "passthrough" steps are skipped.
    pipe = fitted(TableEncoder(), MLPClassifier(**small))
    pipe.steps.insert(1, ("nothing", "passthrough"))
    save(pipe, path)
    np.testing.assert_array_equal(MLPClassifier.load(path).predict(X), pipe.predict(X))


def test_multi_output_regressor_cannot_be_saved(tmp_path):
    X, Y = regression(2)
    est = MLPRegressor(hidden_layer_sizes=(4,), solver="lbfgs", max_iter=50)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(X, Y)
    with pytest.raises(ValueError, match="one target"):
        est.save(tmp_path / "m.npz")
    assert not (tmp_path / "m.npz").exists()


def test_import_fastbp_does_not_import_sklearn():
    code = "import fastbp, sys; assert 'sklearn' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_regression_data_helper_is_learnable():
    # Guards the step-for-step tests above against a degenerate data set.
    X, y = make_regression(200, 5, noise=0.1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = MLPRegressor(
            hidden_layer_sizes=(16,), solver="lbfgs", max_iter=200, random_state=0
        )
        assert est.fit(X, y).score(X, y) > 0.95
