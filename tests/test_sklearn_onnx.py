"""skl2onnx converts fastbp.sklearn's estimators (register_onnx), alone and at
the end of a Pipeline; onnxruntime gives their predict and predict_proba."""

import warnings

import numpy as np
import pytest

pytest.importorskip("sklearn")
skl2onnx = pytest.importorskip("skl2onnx")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from skl2onnx.common.data_types import DoubleTensorType  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from fastbp.sklearn import MLPClassifier, MLPRegressor, register_onnx  # noqa: E402

TOL32 = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module", autouse=True)
def registered():
    register_onnx()
    register_onnx()  # a second call changes nothing


def fit(est, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X, y)


def run(proto, X):
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, {sess.get_inputs()[0].name: X}), strict=True))


def data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, 5)) * [1, 2, 3, 0.5, 10] + [0, 1, -2, 0, 50]).astype(
        np.float32
    )
    score = X[:, 0] + X[:, 1] / 2 - X[:, 2] / 3
    return X, score


@pytest.mark.parametrize(
    "activation", ["identity", "logistic", "tanh", "relu", "leaky_relu", "gelu"]
)
def test_classifier_with_text_labels(activation):
    X, score = data()
    y = np.array(["low", "mid", "high"])[np.digitize(score, [-1, 1])]
    clf = fit(MLPClassifier((16, 8), activation, max_iter=40, random_state=0), X, y)
    proto = skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})
    got = run(proto, X)
    assert list(got) == ["label", "probabilities"]
    assert got["label"].tolist() == clf.predict(X).tolist()
    np.testing.assert_allclose(got["probabilities"], clf.predict_proba(X), **TOL32)


def test_binary_classifier_with_integer_labels_in_float64():
    X, score = data(seed=1)
    y = np.where(score > 0.5, 10, -3)
    clf = fit(MLPClassifier((12,), max_iter=50, random_state=1), X, y)
    X64 = X.astype(np.float64)
    proto = skl2onnx.to_onnx(
        clf, initial_types=[("X", DoubleTensorType([None, 5]))],
        options={"zipmap": False},
    )  # fmt: skip
    got = run(proto, X64)
    assert got["label"].dtype == np.int64
    np.testing.assert_array_equal(got["label"], clf.predict(X64))
    assert got["probabilities"].dtype == np.float64
    np.testing.assert_allclose(got["probabilities"], clf.predict_proba(X64), **TOL32)


@pytest.mark.parametrize("n_outputs", [1, 2])
def test_regressor(n_outputs):
    X, score = data(seed=2)
    y = score if n_outputs == 1 else np.c_[score, score**2]
    reg = fit(
        MLPRegressor(
            hidden_layer_sizes=(16,), activation="tanh", max_iter=40, random_state=0
        ),
        X,
        y,
    )
    got = run(skl2onnx.to_onnx(reg, X[:1]), X)
    assert list(got) == ["variable"] and got["variable"].shape == (len(X), n_outputs)
    expected = reg.predict(X).reshape(len(X), n_outputs)
    np.testing.assert_allclose(got["variable"], expected, **TOL32)


def test_at_the_end_of_a_pipeline():
    X, score = data(seed=3)
    y = np.array(["a", "b", "c", "d"])[np.digitize(score, [-2, 0, 2])]
    mlp = MLPClassifier((32,), max_iter=60, random_state=0)
    pipe = fit(make_pipeline(StandardScaler(), mlp), X, y)
    got = run(skl2onnx.to_onnx(pipe, X[:1], options={"zipmap": False}), X)
    assert got["label"].tolist() == pipe.predict(X).tolist()
    np.testing.assert_allclose(got["probabilities"], pipe.predict_proba(X), **TOL32)
    # skl2onnx's default: the probabilities as a list of {label: p} (ZipMap).
    zipped = run(skl2onnx.to_onnx(pipe, X[:1]), X)
    assert list(zipped) == ["output_label", "output_probability"]
    assert zipped["output_label"].tolist() == pipe.predict(X).tolist()
    first = zipped["output_probability"][0]
    assert list(first) == ["a", "b", "c", "d"]
    np.testing.assert_allclose(
        list(first.values()), pipe.predict_proba(X[:1])[0], **TOL32
    )


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_a_model_loaded_from_fastbp_train_keeps_its_standardization():
    import pyarrow.csv as pacsv
    from cli_helpers import IRIS, V1_IRIS

    clf = MLPClassifier.load(V1_IRIS)
    table = pacsv.read_csv(IRIS)
    X = np.column_stack(
        [table[str(n)].to_numpy() for n in clf.feature_names_in_]
    ).astype(np.float32)
    got = run(skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False}), X)
    assert got["label"].tolist() == clf.predict(X).tolist()
    np.testing.assert_allclose(got["probabilities"], clf.predict_proba(X), **TOL32)


def test_multi_label_classifier_is_refused():
    X, score = data(seed=4)
    Y = np.c_[score > 0, score > 1].astype(int)
    clf = fit(MLPClassifier((8,), max_iter=5, random_state=0), X, Y)
    with pytest.raises(ValueError, match="multi-label"):
        skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False})


def test_option_nocl_is_refused():
    X, score = data(seed=5)
    clf = fit(MLPClassifier((4,), max_iter=5, random_state=0), X, score > 0)
    with pytest.raises(NotImplementedError, match="'nocl'"):
        skl2onnx.to_onnx(clf, X[:1], options={"zipmap": False, "nocl": True})


# --- raw tables: TableEncoder, its Pipelines, models loaded with a plan ----------


def csv_feeds(df, types, path):
    """onnxruntime's inputs for the rows of df as a user has them in a CSV
    file: each numeric column as float64 (N, 1), NaN missing; each other
    column as the text of its cells (N, 1), a missing cell empty."""
    import pandas as pd

    df.to_csv(path, index=False)
    text = pd.read_csv(path, dtype=str, keep_default_na=False)
    feeds = {}
    for name, kind in types:
        cells = text[name].to_numpy(dtype=object).reshape(-1, 1)
        if isinstance(kind, DoubleTensorType):
            cells = pd.to_numeric(text[name], errors="coerce").to_numpy(float)
            cells = cells.reshape(-1, 1)
        feeds[name] = cells
    return feeds


def run_feeds(proto, feeds):
    onnx.checker.check_model(proto, full_check=True)
    sess = ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def raw_rows():
    from raw_tables import raw_frame

    df = raw_frame()
    df.loc[df.index[190:194], "city"] = "Atlantis"
    return df.drop(columns=["label", "spend"]), df


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_table_encoder_graph_gives_transform_exactly(tmp_path, dtype):
    from fastbp.sklearn import TableEncoder, onnx_inputs

    X, _ = raw_rows()
    enc = TableEncoder(dtype=dtype, max_categories=4).fit(X.iloc[:150])
    types = onnx_inputs(enc)
    assert [name for name, _ in types] == ["age", "city", "member", "joined"]
    got = run_feeds(
        skl2onnx.to_onnx(enc, initial_types=types),
        csv_feeds(X, types, tmp_path / "x.csv"),
    )
    (out,) = got.values()
    assert out.dtype == np.dtype(dtype)
    # Fills, one-hot, date parts from ISO text, standardization in float64
    # rounded once: the same numbers.
    np.testing.assert_array_equal(out, enc.transform(X))


def test_pipeline_of_table_encoder_and_classifier_converts_whole(tmp_path):
    from fastbp.sklearn import TableEncoder, onnx_inputs

    X, df = raw_rows()
    pipe = make_pipeline(
        TableEncoder(), MLPClassifier((16,), max_iter=60, random_state=0)
    )
    fit(pipe, X.iloc[:150], df["label"].iloc[:150])
    types = onnx_inputs(pipe)
    proto = skl2onnx.to_onnx(pipe, initial_types=types, options={"zipmap": False})
    got = run_feeds(proto, csv_feeds(X, types, tmp_path / "x.csv"))
    assert got["label"].tolist() == pipe.predict(X).tolist()
    assert len(set(got["label"].tolist())) == 3
    np.testing.assert_allclose(got["probabilities"], pipe.predict_proba(X), **TOL32)


def test_numeric_plan_takes_one_matrix():
    from fastbp.sklearn import TableEncoder

    X, score = data(seed=6)
    X = X.astype(np.float64)
    X[::7, 1] = np.nan
    pipe = make_pipeline(
        TableEncoder(),
        MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0),
    )
    fit(pipe, X, score)
    assert len(pipe[0].plan_.inputs) == 6  # x1 has a missing indicator
    got = run(skl2onnx.to_onnx(pipe, X[:1]), X)
    np.testing.assert_allclose(got["variable"].ravel(), pipe.predict(X), **TOL32)


def test_cli_raw_table_models_convert_with_their_plan(tmp_path):
    from raw_tables import raw_frame, run_fastbp, write_csv

    from fastbp.sklearn import onnx_inputs

    df = raw_frame()
    for target, other in (("label", "spend"), ("spend", "label")):
        data = write_csv(df.drop(columns=other).iloc[:150], tmp_path / f"{target}.csv")
        model = tmp_path / f"{target}.npz"
        run_fastbp("train", "--data", data, "--target", target, "--epochs", "30",
                   "--save", model, "-q")  # fmt: skip
    X, _ = raw_rows()
    clf = MLPClassifier.load(tmp_path / "label.npz")
    types = onnx_inputs(clf)
    feeds = csv_feeds(X, types, tmp_path / "x.csv")
    got = run_feeds(
        skl2onnx.to_onnx(clf, initial_types=types, options={"zipmap": False}), feeds
    )
    assert got["label"].tolist() == clf.predict(X).tolist()
    np.testing.assert_allclose(got["probabilities"], clf.predict_proba(X), **TOL32)
    reg = MLPRegressor.load(tmp_path / "spend.npz")
    assert reg._target_scale is not None
    got = run_feeds(skl2onnx.to_onnx(reg, initial_types=types), feeds)
    # In the target's units (hundreds), to float32's precision.
    np.testing.assert_allclose(got["variable"].ravel(), reg.predict(X), rtol=1e-5)


def test_target_scale_without_a_plan(tmp_path):
    from fastbp.data.predictor import save

    X, score = data(seed=7)
    reg = fit(
        MLPRegressor(hidden_layer_sizes=(8,), max_iter=30, random_state=0), X, score
    )
    save(
        tmp_path / "m.npz",
        reg._network(),
        {"target_scale": {"mean": 300.0, "std": 25.0}},
    )
    back = MLPRegressor.load(tmp_path / "m.npz")
    expected = reg.predict(X).astype(np.float64) * 25 + 300
    np.testing.assert_array_equal(back.predict(X), expected)
    got = run(skl2onnx.to_onnx(back, X[:1]), X)
    # The float32 network agrees within TOL32 in its own units; the target's
    # scale (std 25) multiplies that, and the shift (mean 300) cancels
    # digits near 0.
    np.testing.assert_allclose(
        got["variable"].ravel(), back.predict(X), rtol=1e-5, atol=25 * 1e-5
    )


def test_plan_inputs_errors():
    from fastbp.sklearn import TableEncoder, onnx_inputs

    X, _ = raw_rows()
    enc = TableEncoder().fit(X)
    with pytest.raises(ValueError, match=r"TableEncoder: .*missing \['joined'\]"):
        skl2onnx.to_onnx(enc, initial_types=onnx_inputs(enc)[:3])
    with pytest.raises(ValueError, match="TableEncoder: column 'joined'.*opset 20"):
        skl2onnx.to_onnx(enc, initial_types=onnx_inputs(enc), target_opset=17)
    with pytest.raises(ValueError, match="no column plan"):
        onnx_inputs(MLPClassifier())
