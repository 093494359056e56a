"""ONNX export (fastbp.io.onnx): onnxruntime's outputs against fastbp's own.

The references are independent of the exporter: fastbp's ``Predictor`` (what
``fastbp predict`` runs) for labels and values, a plain NumPy forward pass
for the network's outputs, and a NumPy/``datetime`` encoder written from the
column-plan spec for raw tables. Every exported graph also passes
``onnx.checker.check_model(full_check=True)``.
"""

import datetime as dt
import math
import re

import numpy as np
import pytest

from fastbp import GELU, Layer, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Tanh, mlp
from fastbp.data.problem import Predictor
from fastbp.io import ModelFileError, save_model
from fastbp.io.onnx import build_onnx, export_onnx, flat_layers, onnx_labels
from fastbp.nn.parts import ACTIVATIONS, register

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

#: float32 agreement asked of onnxruntime against fastbp (issue 22).
TOL32 = dict(rtol=1e-5, atol=1e-5)
ACTIVATION_NAMES = ["relu", "leaky_relu", "gelu", "sigmoid", "tanh"]


# --- references ----------------------------------------------------------------


def session(proto):
    """An onnxruntime session of proto, after the full ONNX check."""
    onnx.checker.check_model(proto, full_check=True)
    return ort.InferenceSession(
        proto.SerializeToString(), providers=["CPUExecutionProvider"]
    )


def run(proto, feeds):
    """{output name: array} of proto run on feeds."""
    sess = session(proto)
    names = [o.name for o in sess.get_outputs()]
    return dict(zip(names, sess.run(None, feeds), strict=True))


def column_feeds(X, names):
    """One (N, 1) float64 feed per column of X."""
    return {name: np.ascontiguousarray(X[:, [j]]) for j, name in enumerate(names)}


def numpy_forward(model, X):
    """The network's output in float64 NumPy, layer by layer."""
    from scipy.special import erf

    x = np.asarray(X, np.float64)
    for layer in flat_layers(model):
        if isinstance(layer, Linear):
            x = x @ layer.weight.data.astype(np.float64) + layer.bias.data
        elif isinstance(layer, ReLU):
            x = np.maximum(x, 0.0)
        elif isinstance(layer, LeakyReLU):
            x = np.where(x > 0, x, layer.negative_slope * x)
        elif isinstance(layer, GELU):
            x = 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))
        elif isinstance(layer, Sigmoid):
            x = 1.0 / (1.0 + np.exp(-x))
        elif isinstance(layer, Tanh):
            x = np.tanh(x)
        else:
            raise AssertionError(layer)
    return x


def softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def predictor(model, meta):
    """fastbp's Predictor on the model inputs (the plan and target_scale left
    to the test: Predictor reads feature_names, the standardizer, classes)."""
    plain = {k: v for k, v in meta.items() if k not in ("plan", "target_scale")}
    return Predictor.from_metadata(model, plain)


def standardized(X, meta):
    s = meta.get("standardizer")
    return X if s is None else (X - np.asarray(s["mean"])) / np.asarray(s["std"])


def classifier_meta(n_in, classes, loss="ce", **more):
    rng = np.random.default_rng(7)
    return {
        "feature_names": [f"f{j}" for j in range(n_in)],
        "target_name": "y",
        "task": "classification",
        "classes": list(classes),
        "standardizer": {
            "mean": rng.normal(size=n_in).tolist(),
            "std": rng.uniform(0.5, 3.0, n_in).tolist(),
        },
        "loss": loss,
        "metric": "accuracy",
        **more,
    }


def ops(proto):
    return {node.op_type for node in proto.graph.node}


# --- networks and outputs --------------------------------------------------------


@pytest.mark.parametrize("opset", [13, 20])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("activation", ACTIVATION_NAMES)
def test_every_activation_matches_predict(activation, dtype, opset, rng, tmp_path):
    model = mlp([5, 16, 12, 3], activation, rng=3, dtype=dtype)
    meta = classifier_meta(5, ["adelie", "chinstrap", "gentoo"])
    path = tmp_path / "m.onnx"
    export_onnx(model, path, meta=meta, opset=opset)
    proto = onnx.load(path)
    X = rng.normal(size=(300, 5)) * 3
    got = run(proto, column_feeds(X, meta["feature_names"]))
    assert got["label"].tolist() == predictor(model, meta).predict(X)
    z = numpy_forward(model, standardized(X, meta))
    np.testing.assert_allclose(got["probabilities"], softmax(z), **TOL32)
    assert got["probabilities"].dtype == np.float64
    if activation == "gelu":
        # Gelu from opset 20 (float32; onnxruntime has no float64 Erf), else erf.
        assert ("Gelu" in ops(proto)) == (opset >= 20 and dtype == "float32")


def test_regression_is_in_the_targets_units(rng):
    model = mlp([4, 10, 1], "tanh", rng=5)
    meta = {
        "feature_names": ["a", "b", "c", "d"],
        "target_name": "price",
        "task": "regression",
        "classes": None,
        "standardizer": {"mean": [1.0, -2.0, 0.0, 30.0], "std": [2.0, 1.0, 0.1, 5.0]},
        "target_scale": {"mean": 180000.0, "std": 75000.0},
        "loss": "mse",
        "metric": "r2",
    }
    X = rng.normal(size=(200, 4)) * [2.0, 1.0, 0.1, 5.0] + [1.0, -2.0, 0.0, 30.0]
    got = run(build_onnx(model, meta), column_feeds(X, meta["feature_names"]))
    assert list(got) == ["variable"] and got["variable"].shape == (200, 1)
    expected = predictor(model, meta).predict(X) * 75000.0 + 180000.0
    np.testing.assert_allclose(got["variable"][:, 0], expected, rtol=1e-5)
    z = numpy_forward(model, standardized(X, meta))[:, 0] * 75000.0 + 180000.0
    np.testing.assert_allclose(got["variable"][:, 0], z, rtol=1e-5)


def test_bare_model_is_a_regression_on_x1_x2(rng):
    model = mlp([3, 6, 2], "relu", rng=2)
    proto = build_onnx(model)
    assert [i.name for i in proto.graph.input] == ["x1", "x2", "x3"]
    X = rng.normal(size=(50, 3))
    got = run(proto, column_feeds(X, ["x1", "x2", "x3"]))
    np.testing.assert_allclose(got["variable"], numpy_forward(model, X), **TOL32)


def test_integer_labels_are_int64(rng):
    model = mlp([3, 8, 3], "relu", rng=4)
    meta = classifier_meta(3, ["-1", "0", "12"])
    X = rng.normal(size=(200, 3)) * 2
    got = run(build_onnx(model, meta), column_feeds(X, meta["feature_names"]))
    assert got["label"].dtype == np.int64
    expected = predictor(model, meta).predict(X)
    assert [str(v) for v in got["label"]] == expected
    assert set(expected) == {"-1", "0", "12"}  # every class occurs


def test_labels_keep_their_original_values():
    assert onnx_labels([3, 7]).dtype == np.int64
    assert onnx_labels([False, True]).tolist() == [0, 1]
    assert onnx_labels([1.0, 2.0]).tolist() == [1, 2]
    assert onnx_labels([0.5, 1]).tolist() == ["0.5", "1"]
    assert onnx_labels(["1", "2"]).tolist() == ["1", "2"]  # text stays text


@pytest.mark.parametrize(
    "classes", [["07", "7"], ["1", "1.0"], ["+1", "2"], ["a", "1"], ["1", " 2"]]
)
def test_classes_that_are_not_all_integers_stay_text(classes, rng):
    model = mlp([2, 4, 2], "relu", rng=1)
    meta = classifier_meta(2, classes)
    X = rng.normal(size=(50, 2)) * 3
    got = run(build_onnx(model, meta), column_feeds(X, meta["feature_names"]))
    assert got["label"].dtype == object
    assert got["label"].tolist() == predictor(model, meta).predict(X)


def test_one_output_mse_on_two_classes(rng):
    """The XOR set-up: one output, thresholded at 0.5; its output (clipped
    to [0, 1]) is P(class 1)."""
    model = mlp([2, 8, 1], "tanh", rng=0)
    model.layers[-1].weight.data *= 4  # outputs beyond [0, 1] on both sides
    model.layers[-1].bias.data[...] = 0.5
    meta = classifier_meta(2, ["no", "yes"], loss="mse", standardizer=None)
    X = rng.normal(size=(400, 2)) * 4
    p = model.predict(X.astype(np.float32))[:, 0].astype(np.float64)
    assert (p < 0).any() and (p > 1).any() and (p > 0.5).any() and (p < 0.5).any()
    got = run(build_onnx(model, meta), column_feeds(X, meta["feature_names"]))
    assert got["label"].tolist() == predictor(model, meta).predict(X)
    q = np.clip(p, 0, 1)
    np.testing.assert_allclose(got["probabilities"], np.c_[1 - q, q], **TOL32)


def test_mse_on_several_classes_scales_clipped_outputs(rng):
    model = mlp([3, 8, 3], "relu", rng=9)
    last = model.layers[-1]
    meta = classifier_meta(3, ["a", "b", "c"], loss="mse")
    X = rng.normal(size=(300, 3)) * 3
    got = run(build_onnx(model, meta), column_feeds(X, meta["feature_names"]))
    assert got["label"].tolist() == predictor(model, meta).predict(X)
    q = np.clip(numpy_forward(model, standardized(X, meta)), 0, 1)
    total = q.sum(1, keepdims=True)
    with np.errstate(invalid="ignore"):
        expected = np.where(total > 0, q / total, 1 / 3)
    np.testing.assert_allclose(got["probabilities"], expected, **TOL32)
    # Every output <= 0: no evidence for any class, a uniform distribution.
    last.weight.data[...] = 0
    last.bias.data[...] = [-1.0, -0.5, -2.0]
    got = run(build_onnx(model, meta), column_feeds(X[:5], meta["feature_names"]))
    np.testing.assert_array_equal(got["probabilities"], np.full((5, 3), 1 / 3))
    assert got["label"].tolist() == ["b"] * 5


def test_saved_sklearn_binary_classifier_with_integer_labels(rng, tmp_path):
    """A file written by fastbp.sklearn: a final Sigmoid, one output, and the
    original label values (integers) in meta "class_values"."""
    pytest.importorskip("sklearn")
    from fastbp.sklearn import MLPClassifier

    X = rng.normal(size=(200, 4))
    y = np.where(X[:, 0] + X[:, 1] ** 2 > 0.5, 7, 3)
    clf = MLPClassifier((12,), max_iter=60, random_state=0).fit(X, y)
    clf.save(tmp_path / "clf.npz")
    export_onnx(tmp_path / "clf.npz", tmp_path / "clf.onnx")
    got = run(
        onnx.load(tmp_path / "clf.onnx"), column_feeds(X, ["x1", "x2", "x3", "x4"])
    )
    assert got["label"].dtype == np.int64
    np.testing.assert_array_equal(got["label"], clf.predict(X))
    assert set(got["label"]) == {3, 7}
    np.testing.assert_allclose(got["probabilities"], clf.predict_proba(X), **TOL32)


def test_old_model_file_exports(tmp_path):
    """A model file of format version 1 as fastbp train wrote it (iris)."""
    import pyarrow.csv as pacsv
    from cli_helpers import IRIS, V1_IRIS

    table = pacsv.read_csv(IRIS)
    pred = Predictor.load(V1_IRIS)
    export_onnx(V1_IRIS, tmp_path / "iris.onnx")
    proto = onnx.load(tmp_path / "iris.onnx")
    names = [i.name for i in proto.graph.input]
    assert names == list(pred.feature_names)
    X = np.column_stack([table[n].to_numpy() for n in names]).astype(np.float64)
    got = run(proto, column_feeds(X, names))
    assert got["label"].tolist() == pred.predict(X)


def test_nested_sequential_is_flattened(rng):
    inner = Sequential(Linear(3, 6, rng=0), GELU())
    model = Sequential(inner, Linear(6, 2, rng=1))
    X = rng.normal(size=(40, 3))
    got = run(build_onnx(model), column_feeds(X, ["x1", "x2", "x3"]))
    np.testing.assert_allclose(got["variable"], model.predict(X), **TOL32)


def test_matrix_input_gives_the_same_outputs(rng):
    model = mlp([4, 8, 3], "relu", rng=1)
    meta = classifier_meta(4, ["a", "b", "c"])
    X = rng.normal(size=(60, 4))
    by_column = run(build_onnx(model, meta), column_feeds(X, meta["feature_names"]))
    proto = build_onnx(model, meta, inputs="matrix")
    assert [i.name for i in proto.graph.input] == ["X"]
    by_matrix = run(proto, {"X": X})
    np.testing.assert_array_equal(by_matrix["label"], by_column["label"])
    np.testing.assert_array_equal(
        by_matrix["probabilities"], by_column["probabilities"]
    )


# --- what the export refuses ---------------------------------------------------------


class Doubler(Layer):
    """A user's own layer: y = 2x."""

    def forward(self, x):
        return 2 * x

    def backward(self, dY):
        return 2 * dY


class MyReLU(ReLU):
    def forward(self, x):
        return super().forward(x)


@pytest.mark.parametrize(
    ("layer", "name"), [(Doubler(), "Doubler"), (MyReLU(), "MyReLU")]
)
def test_a_layer_onnx_cannot_express_is_one_clear_error(layer, name, tmp_path):
    model = Sequential(Linear(2, 3, rng=0), layer, Linear(3, 1, rng=1))
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    with pytest.raises(
        ValueError, match=rf"layer 1, {name} \(.*{name}\), in ONNX"
    ) as info:
        export_onnx(model, target)
    assert "\n" not in str(info.value)
    assert target.read_bytes() == b"old"  # untouched
    nested = Sequential(
        Sequential(Linear(2, 3, rng=0), layer.__class__()), Linear(3, 1)
    )
    with pytest.raises(ValueError, match=rf"layer 0\.1, {name} "):
        build_onnx(nested)


def test_a_users_registered_activation_is_refused():
    from fastbp import Activation

    try:

        @register("activation", "test_onnx_swish")
        class Swish(Activation):
            pass

        model = Sequential(Linear(2, 3, rng=0), Swish(), Linear(3, 1, rng=1))
        with pytest.raises(ValueError, match=r"layer 1, Swish \(.*Swish\), in ONNX"):
            build_onnx(model)
    finally:
        ACTIVATIONS.pop("test_onnx_swish", None)


def test_meta_that_does_not_fit_is_refused():
    model = mlp([3, 4, 2], "relu", rng=0)
    with pytest.raises(
        ValueError, match="'feature_names' has 2 names, the model has 3"
    ):
        build_onnx(model, {"feature_names": ["a", "b"]})
    with pytest.raises(ValueError, match="'classes' has 3 labels, the model has 2"):
        build_onnx(model, {"task": "classification", "classes": ["a", "b", "c"]})
    with pytest.raises(ValueError, match="'standardizer' 'std' must be positive"):
        build_onnx(model, {"standardizer": {"mean": [0, 0, 0], "std": [1, 0, 1]}})
    with pytest.raises(ValueError, match="opset must be an integer >= 13"):
        build_onnx(model, opset=12)
    with pytest.raises(TypeError, match="meta only with a Sequential"):
        export_onnx("model.npz", "m.onnx", meta={})


def test_a_broken_model_file_is_a_model_file_error(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip")
    with pytest.raises(ModelFileError, match="bad.npz"):
        export_onnx(bad, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


# --- the column plan ------------------------------------------------------------------

NA = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", "None"]
PLAN_COLUMNS = [
    {"name": "id", "role": "identifier", "reason": "unique row counter", "inputs": []},
    {
        "name": "age",
        "role": "numeric",
        "fill": 28.0,
        "indicator": True,
        "inputs": ["age", "age_missing"],
    },
    {
        "name": "fare",
        "role": "numeric",
        "fill": 14.5,
        "indicator": False,
        "inputs": ["fare"],
    },
    {
        "name": "adult",
        "role": "boolean",
        "fill": 1.0,
        "indicator": True,
        "inputs": ["adult", "adult_missing"],
    },
    {
        "name": "island",
        "role": "categorical",
        "levels": ["Biscoe", "Dream", "(missing)"],
        "inputs": [
            "island=Biscoe",
            "island=Dream",
            "island=(missing)",
            "island=(other)",
        ],
    },
    {
        "name": "sex",
        "role": "categorical",
        "levels": ["female", "male"],
        "inputs": ["sex=female", "sex=male", "sex=(other)"],
    },
    {"name": "name", "role": "text", "reason": "free text", "inputs": []},
    {
        "name": "date",
        "role": "datetime",
        "parts": ["year", "month", "day_of_year", "day_of_week", "hour"],
        "fill": [2013.0, 6.0, 180.0, 3.0, 0.0],
        "indicator": True,
        "inputs": [
            "date:year",
            "date:month",
            "date:day_of_year",
            "date:day_of_week",
            "date:hour",
            "date_missing",
        ],
    },
]
PLAN_INPUTS = [name for c in PLAN_COLUMNS for name in c["inputs"]]

#: A raw table: missing cells of every kind, unseen levels, dates in the forms
#: the export reads (and text that is no date: missing).
TABLE = {
    "id": [1, 2, 3, 4, 5, 6, 7, 8, 9, 10],
    "age": [22.0, np.nan, 35.0, 0.5, np.nan, 80.0, 41.0, 19.0, 3.0, 60.0],
    "fare": [7.25, 71.3, np.nan, 8.05, 53.1, 0.0, 512.3, 13.0, 21.1, 7.9],
    "adult": ["true", "False", "TRUE", "", "NA", "fAlSe", "yes", "true", "None", "0"],
    "island": [
        "Biscoe",
        "Dream",
        "",
        "Torgersen",
        "NA",
        "biscoe",
        "Dream",
        "(missing)",
        "null",
        "Biscoe",
    ],
    "sex": [
        "female",
        "male",
        "",
        "male",
        "NaN",
        "other",
        "female",
        "male",
        "Male",
        "female",
    ],
    "name": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
    "date": [
        "2013-06-29",
        "2012-02-29T14:05:00",
        "2000-03-01 23:59:59",
        "",
        "1969-12-31T00:00:00Z",
        "NA",
        "2016-12-31 07:30",
        "soon",
        "2013-13-01",
        "1900-03-01T12:00:00-05:00",
    ],
}


def reference_encode(columns, table, na_values):
    """The model inputs of a raw table, written from the plan spec alone."""
    n = len(next(iter(table.values())))
    out = []
    for c in columns:
        values = table[c["name"]]
        if c["role"] == "numeric":
            x = np.asarray(values, np.float64)
            out.append(np.where(np.isnan(x), c["fill"], x))
            if c["indicator"]:
                out.append(np.isnan(x).astype(np.float64))
        elif c["role"] == "boolean":
            word = [str(v).lower() for v in values]
            missing = np.array([w not in ("true", "false") for w in word])
            x = np.array([1.0 if w == "true" else 0.0 for w in word])
            out.append(np.where(missing, c["fill"], x))
            if c["indicator"]:
                out.append(missing.astype(np.float64))
        elif c["role"] == "categorical":
            text = ["(missing)" if v in na_values else v for v in values]
            for level in c["levels"]:
                out.append(np.array([t == level for t in text], np.float64))
            out.append(np.array([t not in c["levels"] for t in text], np.float64))
        elif c["role"] == "datetime":
            parts = np.empty((n, len(c["parts"])))
            missing = np.zeros(n, bool)
            for i, v in enumerate(values):
                try:  # Python 3.10 reads no "Z" (UTC): write it as +00:00
                    when = dt.datetime.fromisoformat(re.sub("Z$", "+00:00", v))
                except ValueError:
                    missing[i] = True
                    parts[i] = c["fill"]
                    continue
                part = {
                    "year": when.year,
                    "month": when.month,
                    "day_of_year": when.timetuple().tm_yday,
                    "day_of_week": when.weekday(),
                    "hour": when.hour,
                }
                parts[i] = [part[p] for p in c["parts"]]
            out.extend(parts.T)
            if c["indicator"]:
                out.append(missing.astype(np.float64))
    return np.column_stack(out)


def plan_meta(**more):
    plan = {"version": 1, "na_values": NA, "columns": PLAN_COLUMNS}
    return {
        "feature_names": PLAN_INPUTS,
        "target_name": "survived",
        "task": "regression",
        "classes": None,
        "standardizer": None,
        "plan": plan,
        **more,
    }


def table_feeds(proto):
    """The table's columns the graph takes, as onnxruntime wants them."""
    feeds = {}
    for i in proto.graph.input:
        values = TABLE[i.name]
        if i.type.tensor_type.elem_type == onnx.TensorProto.STRING:
            feeds[i.name] = np.array(values, dtype=object).reshape(-1, 1)
        else:
            feeds[i.name] = np.array(values, np.float64).reshape(-1, 1)
    return feeds


def identity_model(n, dtype=np.float64):
    layer = Linear(n, n, dtype=dtype)
    layer.weight.data[...] = np.eye(n)
    layer.bias.data[...] = 0
    return Sequential(layer)


def test_the_plan_encodes_raw_columns_as_specified():
    """Through an identity network in float64, the graph's output is its
    encoding of the raw table: exactly the spec's."""
    proto = build_onnx(identity_model(len(PLAN_INPUTS)), plan_meta())
    assert [i.name for i in proto.graph.input] == [
        "age",
        "fare",
        "adult",
        "island",
        "sex",
        "date",
    ]  # identifier and text columns feed nothing
    got = run(proto, table_feeds(proto))["variable"]
    expected = reference_encode(PLAN_COLUMNS, TABLE, NA)
    np.testing.assert_array_equal(got, expected)
    col = {name: got[:, j] for j, name in enumerate(PLAN_INPUTS)}
    # Spot checks against the spec, by hand.
    assert col["age"][1] == 28.0 and col["age_missing"].tolist()[:2] == [0, 1]
    assert col["adult"].tolist()[:7] == [1, 0, 1, 1, 1, 0, 1]
    assert col["adult_missing"].tolist()[:7] == [0, 0, 0, 1, 1, 0, 1]
    assert col["island=(other)"].tolist() == [0, 0, 0, 1, 0, 1, 0, 0, 0, 0]
    assert col["island=(missing)"].tolist() == [0, 0, 1, 0, 1, 0, 0, 1, 1, 0]
    # sex has no "(missing)" level: a missing cell is "other".
    assert col["sex=(other)"].tolist() == [0, 0, 1, 0, 1, 1, 0, 0, 1, 0]
    assert got[1, PLAN_INPUTS.index("date:day_of_year")] == 60  # 29 February
    assert got[1, PLAN_INPUTS.index("date:hour")] == 14
    assert got[4, PLAN_INPUTS.index("date:day_of_week")] == 2  # a Wednesday
    assert col["date_missing"].tolist() == [0, 0, 0, 1, 0, 1, 0, 1, 1, 0]


def test_dates_match_pythons_calendar_over_centuries():
    rng = np.random.default_rng(3)
    column = dict(
        PLAN_COLUMNS[-1], indicator=False, inputs=PLAN_COLUMNS[-1]["inputs"][:5]
    )
    days = rng.integers(0, dt.date(2400, 1, 1).toordinal(), 2000)
    when = [
        dt.datetime.fromordinal(int(d)) + dt.timedelta(hours=int(d % 24)) for d in days
    ]
    text = [w.isoformat(sep="T" if i % 2 else " ") for i, w in enumerate(when)]
    meta = {
        "feature_names": column["inputs"],
        "standardizer": None,
        "plan": {"version": 1, "na_values": NA, "columns": [column]},
    }
    proto = build_onnx(identity_model(5), meta)
    got = run(proto, {"date": np.array(text, dtype=object).reshape(-1, 1)})["variable"]
    expected = reference_encode([column], {"date": text}, NA)
    np.testing.assert_array_equal(got, expected)


def test_plan_models_match_predict_on_raw_tables():
    """A classifier on the encoded inputs: the raw table through the graph
    gives Predictor's labels on the spec's encoding."""
    n = len(PLAN_INPUTS)
    rng = np.random.default_rng(11)
    model = mlp([n, 16, 3], "gelu", rng=2)
    encoded = reference_encode(PLAN_COLUMNS, TABLE, NA)
    mean, std = encoded.mean(0), encoded.std(0)
    std[std == 0] = 1.0
    for j, name in enumerate(PLAN_INPUTS):
        if "=" in name or name.endswith("_missing"):
            mean[j], std[j] = 0.0, 1.0
    meta = plan_meta(
        task="classification",
        classes=["1", "2", "3"],
        loss="ce",
        standardizer={"mean": mean.tolist(), "std": std.tolist()},
    )
    model.layers[-1].weight.data[...] = rng.normal(size=(16, 3)) * 3
    proto = build_onnx(model, meta)
    got = run(proto, table_feeds(proto))
    assert [str(v) for v in got["label"]] == predictor(model, meta).predict(encoded)
    z = numpy_forward(model, (encoded - mean) / std)
    np.testing.assert_allclose(got["probabilities"], softmax(z), **TOL32)


def test_regression_plan_with_matrix_input_and_target_scale(rng):
    columns = [c for c in PLAN_COLUMNS if c["role"] in ("numeric", "identifier")]
    inputs = [name for c in columns for name in c["inputs"]]
    model = mlp([len(inputs), 8, 1], "sigmoid", rng=1)
    meta = {
        "feature_names": inputs,
        "task": "regression",
        "standardizer": {"mean": [30.0, 0.0, 30.0], "std": [15.0, 1.0, 50.0]},
        "target_scale": {"mean": 3.0, "std": 0.5},
        "plan": {"version": 1, "na_values": NA, "columns": columns},
    }
    proto = build_onnx(model, meta, inputs="matrix")
    X = np.column_stack([TABLE["age"], TABLE["fare"]])
    got = run(proto, {"X": X})["variable"][:, 0]
    encoded = reference_encode(columns, TABLE, NA)
    expected = predictor(model, meta).predict(encoded) * 0.5 + 3.0
    np.testing.assert_allclose(got, expected, **TOL32)


def test_plan_refusals_name_the_column():
    model = identity_model(len(PLAN_INPUTS))
    with pytest.raises(
        ValueError,
        match=r"column 'date': reading date text needs "
        r"ONNX opset 20.*opset 17",
    ):
        build_onnx(model, plan_meta(), opset=17)
    odd = [
        dict(
            c,
            parts=["year", "quarter"],
            fill=[0.0, 0.0],
            inputs=["date:year", "date:quarter"],
            indicator=False,
        )
        if c["role"] == "datetime"
        else c
        for c in PLAN_COLUMNS
    ]
    inputs = [name for c in odd for name in c["inputs"]]
    meta = dict(plan_meta(feature_names=inputs), plan={"version": 1, "columns": odd})
    with pytest.raises(
        ValueError,
        match=r"column 'date': cannot compute the date "
        r"part 'quarter'",
    ):
        build_onnx(identity_model(len(inputs)), meta)
    with pytest.raises(ValueError, match="column 'adult' is boolean"):
        build_onnx(model, plan_meta(), inputs="matrix")
    with pytest.raises(ValueError, match="not meta 'feature_names'"):
        build_onnx(model, plan_meta(feature_names=PLAN_INPUTS[::-1]))
    named = [{"name": "variable", "role": "numeric", "fill": 0.0, "inputs": ["v"]}]
    meta = {"feature_names": ["v"], "plan": {"version": 1, "columns": named}}
    with pytest.raises(ValueError, match="'variable' has the name of an ONNX output"):
        build_onnx(identity_model(1), meta)
    # Without a plan the model inputs are the columns: "label" of a classifier.
    meta = classifier_meta(2, ["a", "b"], feature_names=["label", "x"])
    with pytest.raises(ValueError, match="'label' has the name of an ONNX output"):
        build_onnx(mlp([2, 2], rng=0), meta)


def test_plan_model_file_exports(tmp_path):
    n = len(PLAN_INPUTS)
    save_model(tmp_path / "m.npz", identity_model(n), meta=plan_meta())
    export_onnx(tmp_path / "m.npz", tmp_path / "m.onnx")
    proto = onnx.load(tmp_path / "m.onnx")
    got = run(proto, table_feeds(proto))["variable"]
    np.testing.assert_array_equal(got, reference_encode(PLAN_COLUMNS, TABLE, NA))


def test_string_inputs_are_date_pattern_strict():
    from fastbp.io.onnx import DATE_PATTERN

    for good in ("2013-06-29", "2013-6-9", "2013-06-29T14:05:00Z", "2013-06-29 07"):
        assert re.fullmatch(DATE_PATTERN, good), good
    for bad in ("2013/06/29", " 2013-06-29", "13-06-29", "2013-06-29T25:00", "soon"):
        assert not re.fullmatch(DATE_PATTERN, bad), bad
