"""fastbp.sklearn.TableEncoder: the column plan of fastbp train as a
scikit-learn transformer.

References: scikit-learn's own StandardScaler, SimpleImputer and
OneHotEncoder where they compute the same numbers, pandas' date parts, and
fastbp train itself (its plan in the model file; its training inputs). Then
scikit-learn's conformance suite and its tools (Pipeline, ColumnTransformer,
set_output, clone, pickle).
"""

import json
import pickle
import warnings
from collections import Counter

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn")
pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

from raw_tables import raw_frame, run_fastbp, write_csv  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.compose import ColumnTransformer  # noqa: E402
from sklearn.impute import SimpleImputer  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import OneHotEncoder, StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import estimator_checks_generator  # noqa: E402

from fastbp.sklearn import TableEncoder  # noqa: E402

#: Checks that do not apply, left out: they skip themselves anyway.
NOT_APPLICABLE = {
    # Array API inputs (CuPy, torch tensors...): a column plan reads NumPy,
    # pandas and Arrow; the check also needs SCIPY_ARRAY_API=1 set.
    "check_array_api_input",
}


def conformance_checks():
    for est in (TableEncoder(), TableEncoder(dtype="float64", max_categories=3)):
        for item in estimator_checks_generator(est, mark="xfail"):
            estimator, check = item.values if hasattr(item, "values") else item
            name = getattr(check, "func", check).__name__
            if name not in NOT_APPLICABLE:
                yield pytest.param(estimator, check, id=f"{est.dtype}-{name}")


@pytest.mark.parametrize("estimator, check", list(conformance_checks()))
def test_sklearn_conformance(estimator, check):
    check(estimator)


# --- a raw table -----------------------------------------------------------------


def features(df):
    return df.drop(columns=["label", "spend"])


def test_roles_of_a_raw_table():
    enc = TableEncoder().fit(features(raw_frame()))
    roles = {c.name: c.role for c in enc.plan_.columns}
    assert roles == {
        "id": "identifier",
        "age": "numeric",
        "city": "categorical",
        "member": "boolean",
        "joined": "datetime",
        "note": "text",
    }
    assert list(enc.feature_names_in_) == list(features(raw_frame()).columns)
    assert enc.n_features_in_ == 6
    names = list(enc.get_feature_names_out())
    assert names[:2] == ["age", "age_missing"]
    assert names[-7:] == [
        "member",
        "member_missing",
        "joined:year",
        "joined:month",
        "joined:day_of_year",
        "joined:day_of_week",
        "joined_missing",
    ]
    assert enc.transform(features(raw_frame())).shape == (200, len(names))


def reference_inputs(train, rows, max_categories):
    """The encoder's inputs computed by scikit-learn and pandas, by name:
    numbers standardized over their present training values (StandardScaler
    disregards NaN), then missing cells filled with the standardized median
    with an indicator (SimpleImputer(add_indicator=True)); one-hot of the
    most frequent levels (Counter; ties by text) by OneHotEncoder, the rest
    "(other)"; date parts from pandas' .dt."""
    out = {}

    def numeric(name, train_values, values):
        scaler = StandardScaler().fit(train_values.reshape(-1, 1))
        imputer = SimpleImputer(strategy="median", add_indicator=True)
        imputer.fit(scaler.transform(train_values.reshape(-1, 1)))
        filled = imputer.transform(scaler.transform(values.reshape(-1, 1)))
        out[name] = filled[:, 0]
        if filled.shape[1] == 2:
            out[f"{name}_missing"] = filled[:, 1]

    numeric("age", train["age"].to_numpy(), rows["age"].to_numpy())

    def levels(s):
        return s.replace("NA", None).fillna("(missing)").astype(str).to_numpy()

    counts = Counter(levels(train["city"]))
    top = sorted(counts, key=lambda v: (-counts[v], v))[:max_categories]
    onehot = OneHotEncoder(categories=[top], handle_unknown="ignore")
    coded = onehot.fit(levels(train["city"]).reshape(-1, 1))
    coded = coded.transform(levels(rows["city"]).reshape(-1, 1)).toarray()
    for j, level in enumerate(top):
        out[f"city={level}"] = coded[:, j]
    out["city=(other)"] = 1.0 - coded.sum(axis=1)

    def member(s):
        return np.array([np.nan if v is None else float(v) for v in s])

    numeric("member", member(train["member"]), member(rows["member"]))
    for part, attr in [
        ("year", "year"),
        ("month", "month"),
        ("day_of_year", "day_of_year"),
        ("day_of_week", "day_of_week"),
    ]:
        values = getattr(rows["joined"].dt, attr).to_numpy(dtype=float)
        numeric(
            f"joined:{part}",
            getattr(train["joined"].dt, attr).to_numpy(dtype=float),
            values,
        )
    # One missing indicator for the date, not one per part.
    out["joined_missing"] = out.pop("joined:year_missing")
    for part in ("month", "day_of_year", "day_of_week"):
        del out[f"joined:{part}_missing"]
    return out


@pytest.mark.parametrize("max_categories", [2, 4, 20])
def test_transform_is_what_scikit_learn_computes(max_categories):
    df = features(raw_frame())
    train, new = df.iloc[:150], df.iloc[150:].copy()
    new.loc[new.index[:5], "city"] = "Atlantis"  # never seen: "(other)"
    new.loc[new.index[5:8], "member"] = None
    enc = TableEncoder(dtype="float64", max_categories=max_categories).fit(train)
    for rows in (train, new):
        got = enc.transform(rows)
        expected = reference_inputs(train, rows, max_categories)
        names = list(enc.get_feature_names_out())
        assert sorted(names) == sorted(expected)
        for j, name in enumerate(names):
            np.testing.assert_allclose(
                got[:, j], expected[name], rtol=1e-12, atol=1e-12, err_msg=name
            )
    assert (enc.transform(new)[:5, names.index("city=(other)")] == 1).all()


def test_float32_is_the_float64_inputs_rounded_once():
    df = features(raw_frame())
    wide = TableEncoder(dtype="float64").fit(df).transform(df)
    narrow = TableEncoder().fit(df).transform(df)
    assert narrow.dtype == np.float32 and wide.dtype == np.float64
    # Statistics taken in float32 (as fastbp train --dtype float32) move the
    # inputs by a few float32 ulps at most.
    np.testing.assert_allclose(narrow, wide, rtol=4e-7, atol=4e-7)


def test_arrow_tables_batches_dicts_and_frames_give_the_same_inputs():
    df = features(raw_frame())
    enc = TableEncoder().fit(df)
    expected = enc.transform(df)
    table = pa.Table.from_pandas(df, preserve_index=False)
    np.testing.assert_array_equal(enc.transform(table), expected)
    np.testing.assert_array_equal(enc.transform(table.to_batches()[0]), expected)
    as_dict = {name: df[name].tolist() for name in df.columns}
    np.testing.assert_array_equal(enc.transform(as_dict), expected)
    assert TableEncoder().fit(table).plan_ == enc.plan_


# --- the same plan and inputs as fastbp train ---------------------------------


def test_plan_is_the_one_fastbp_train_saves(tmp_path):
    data = write_csv(raw_frame().drop(columns="spend"), tmp_path / "raw.csv")
    model = tmp_path / "m.npz"
    run_fastbp("train", "--data", data, "--target", "label", "--val-split", "0",
               "--epochs", "1", "--max-categories", "4", "--save", model)  # fmt: skip
    from fastbp.io import load_model

    saved = load_model(model)[1]["plan"]
    # The CSV read back by pandas (NaN for empty and "NA" cells; dates as
    # text), and by fastbp's own raw reader (every cell text).
    from fastbp.data.raw import RawTable

    read = pd.read_csv(data).drop(columns="label")
    raw = RawTable.read(data).table.drop_columns(["label"])
    for table in (read, raw):
        plan = TableEncoder(max_categories=4).fit(table).plan_
        assert json.loads(json.dumps(plan.to_json())) == saved


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_transform_is_what_fastbp_train_feeds_the_network(tmp_path, dtype):
    from fastbp.data.raw import RawTable, raw_problem

    data = write_csv(raw_frame().drop(columns="spend"), tmp_path / "raw.csv")
    raw = RawTable.read(data, target="label")
    problem, val_rows, _ = raw_problem(raw, dtype=dtype)
    prepared = problem.prepare(val_rows=val_rows, dtype=dtype)
    enc = TableEncoder(dtype=dtype).fit(raw.table.drop_columns(["label"]))
    got = enc.transform(raw.table.drop_columns(["label"]))
    assert got.dtype == prepared.X_train.dtype
    assert list(enc.get_feature_names_out()) == list(problem.feature_names)
    if dtype == "float64":
        np.testing.assert_array_equal(got, prepared.X_train)
    else:
        # fastbp train rounds each raw number to float32 before it
        # standardizes; the encoder (as fastbp predict) rounds once, after.
        np.testing.assert_allclose(got, prepared.X_train, rtol=0, atol=1e-6)


# --- parameters ------------------------------------------------------------------


def test_forced_roles_drop_features_and_na_values():
    df = pd.DataFrame(
        {
            "n": [1, 2, 2, 3, 3, 3],
            "code": ["7", "7", "8", "9", "?", "7"],
            "t": ["a", "NA", "b", "a", "a", "b"],
            "w": [0.5, 1.5, 2.5, 3.5, 4.5, 5.5],
        }
    )
    enc = TableEncoder(categorical="n", numeric=["code"], drop="w", na_values=["?"])
    enc.fit(df)
    roles = {c.name: c.role for c in enc.plan_.columns}
    assert roles == {"n": "categorical", "code": "numeric", "t": "categorical",
                     "w": "dropped"}  # fmt: skip
    names = list(enc.get_feature_names_out())
    assert names == ["n=3", "n=2", "n=1", "n=(other)", "code", "code_missing",
                     "t=a", "t=b", "t=NA", "t=(other)"]  # fmt: skip
    # "?" is missing (and "NA" a level, na_values replacing the defaults).
    np.testing.assert_array_equal(enc.transform(df)[:, 5], [0, 0, 0, 0, 1, 0])
    only = TableEncoder(features=["w", "t"], max_categories=1).fit(df)
    assert list(only.get_feature_names_out()) == ["t=a", "t=(other)", "w"]
    assert only.plan_.columns[0].reason == "not among features="


@pytest.mark.parametrize(
    "params, error, words",
    [
        ({"max_categories": 0}, ValueError, "max_categories"),
        ({"max_categories": 2.5}, TypeError, "max_categories"),
        ({"max_categories": True}, TypeError, "max_categories"),
        ({"dtype": "float16"}, ValueError, "dtype"),
        ({"categorical": 3}, TypeError, "categorical"),
        ({"numeric": [1, 2]}, TypeError, "numeric"),
        ({"drop": ["a", None]}, TypeError, "drop"),
        ({"na_values": [None]}, TypeError, "na_values"),
        ({"features": 1.0}, TypeError, "features"),
        ({"categorical": ["zzz"]}, ValueError, "categorical names 'zzz'"),
        ({"drop": ["a"], "features": ["zzz"]}, ValueError, "features names 'zzz'"),
        ({"categorical": "a", "numeric": "a"}, ValueError, "'a' is given as both"),
        ({"drop": ["a", "b"]}, ValueError, "no column can be an input"),
    ],
)
def test_bad_parameters_are_one_line_errors_naming_them(params, error, words):
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": ["x", "y", "x"]})
    enc = TableEncoder(**params)
    assert enc.get_params()[next(iter(params))] == next(iter(params.values()))
    with pytest.raises(error, match=words) as info:
        enc.fit(df)
    assert "\n" not in str(info.value) and "TableEncoder" in str(info.value)
    assert "--" not in str(info.value)  # the CLI's option names are not ours


def test_no_usable_column_names_the_parameters_to_use():
    df = pd.DataFrame({"empty": [None, None, None], "other": [np.nan] * 3})
    with pytest.raises(ValueError, match="features=.*numeric=.*categorical="):
        TableEncoder().fit(df)


# --- arrays, new rows, checks ----------------------------------------------------


def test_numpy_columns_are_x0_x1_and_nan_is_missing():
    X = np.array([[1.0, np.nan], [2.0, 5.0], [np.nan, 7.0], [4.0, np.inf]])
    enc = TableEncoder(dtype="float64").fit(X)
    assert not hasattr(enc, "feature_names_in_")
    assert list(enc.get_feature_names_out()) == ["x0", "x0_missing", "x1",
                                                 "x1_missing"]  # fmt: skip
    present = [1.0, 2.0, 4.0], [5.0, 7.0]
    mean = [np.mean(v) for v in present]
    std = [np.std(v) for v in present]
    fill = [np.median(v) for v in present]
    expected = np.array(
        [
            [(1 - mean[0]) / std[0], 0, (fill[1] - mean[1]) / std[1], 1],
            [(2 - mean[0]) / std[0], 0, (5 - mean[1]) / std[1], 0],
            [(fill[0] - mean[0]) / std[0], 1, (7 - mean[1]) / std[1], 0],
            [(4 - mean[0]) / std[0], 0, (fill[1] - mean[1]) / std[1], 1],
        ]
    )
    np.testing.assert_allclose(enc.transform(X), expected, rtol=1e-14)
    # Named by the columns a ColumnTransformer gives.
    assert list(enc.get_feature_names_out(["a", "b"])) == ["a", "a_missing", "b",
                                                           "b_missing"]  # fmt: skip


def test_object_arrays_are_read_like_frame_columns():
    X = np.array([["red", 1.5], ["blue", None], ["red", 2.5]], dtype=object)
    enc = TableEncoder().fit(X)
    assert [c.role for c in enc.plan_.columns] == ["categorical", "numeric"]
    frame = pd.DataFrame(X, columns=["x0", "x1"])
    frame["x1"] = frame["x1"].astype(float)
    np.testing.assert_array_equal(
        enc.transform(X), TableEncoder().fit(frame).transform(frame)
    )


def test_new_rows_never_fail():
    df = features(raw_frame())
    enc = TableEncoder().fit(df)
    odd = df.iloc[:3].copy()
    odd["age"] = [np.nan, np.inf, -1e6]
    odd["city"] = ["Atlantis", "", "Oslo "]
    odd["member"] = [None, None, True]
    odd["joined"] = pd.NaT
    got = enc.transform(odd)
    assert np.isfinite(got).all()
    names = list(enc.get_feature_names_out())
    assert got[:2, names.index("age_missing")].tolist() == [1, 1]
    assert got[0, names.index("city=(other)")] == 1
    assert got[1, names.index("city=(missing)")] == 1  # an empty cell
    assert got[2, names.index("city=Oslo")] == 1  # spaces stripped
    assert (got[:, names.index("joined_missing")] == 1).all()


def test_transform_checks_the_columns_of_fit():
    df = features(raw_frame())
    enc = TableEncoder().fit(df)
    with pytest.raises(ValueError, match="feature names should match"):
        enc.transform(df[df.columns[::-1]])
    with pytest.raises(ValueError, match="now missing:\n- note"):
        enc.transform(df.drop(columns="note"))
    with pytest.raises(sklearn.exceptions.NotFittedError):
        TableEncoder().transform(df)
    with pytest.raises(ValueError, match="0 rows"):
        TableEncoder().fit(df.iloc[:0])


# --- scikit-learn's tools --------------------------------------------------------


def test_column_transformer_and_set_output():
    df = raw_frame()
    X = df.drop(columns=["label", "spend", "note"])
    ct = ColumnTransformer(
        [("table", TableEncoder(), ["city", "member", "age"]),
         ("scaled", StandardScaler(), ["id"])]
    )  # fmt: skip
    got = ct.fit_transform(X)
    alone = TableEncoder().fit(X[["city", "member", "age"]])
    np.testing.assert_array_equal(
        got[:, :-1], alone.transform(X[["city", "member", "age"]])
    )
    names = list(ct.get_feature_names_out())
    assert names[:-1] == [f"table__{n}" for n in alone.get_feature_names_out()]
    assert names[-1] == "scaled__id"
    # Arrays: the encoder's inputs take the columns' positions in X.
    numbers = np.column_stack([X["age"], X["id"], X["age"] * 2])
    ct = ColumnTransformer([("table", TableEncoder(), [0, 2])]).fit(numbers)
    expected = ["table__x0", "table__x0_missing", "table__x2", "table__x2_missing"]
    assert list(ct.get_feature_names_out()) == expected
    enc = TableEncoder().set_output(transform="pandas")
    frame = enc.fit_transform(X)
    assert list(frame.columns) == list(enc.get_feature_names_out())
    assert (frame.index == X.index).all()


def test_pipeline_clone_and_pickle():
    df = features(raw_frame())
    pipe = make_pipeline(TableEncoder(max_categories=3), StandardScaler()).fit(df)
    copy = pickle.loads(pickle.dumps(pipe))
    np.testing.assert_array_equal(copy.transform(df), pipe.transform(df))
    fresh = clone(pipe[0])
    assert fresh.get_params() == pipe[0].get_params() and not hasattr(fresh, "plan_")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pipe.transform(df)  # no feature-name warning
