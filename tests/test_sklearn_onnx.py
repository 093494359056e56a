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
