"""Tests for fastbp.data: XOR, CSV loading and its errors, splits, standardizing."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from fastbp.data import (
    DataError,
    Dataset,
    Standardizer,
    load_csv,
    train_val_split,
    xor,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load_error(path, **kwargs):
    """The DataError message for path; checks it is one line naming the file."""
    with pytest.raises(DataError) as info:
        load_csv(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(str(path))
    return message


# --- xor ---------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_xor_values(dtype):
    X, T = xor(dtype)
    assert X.dtype == dtype and T.dtype == dtype
    assert X.flags.c_contiguous and T.flags.c_contiguous
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(T, [[0], [1], [1], [0]])


def test_xor_default_float32():
    X, T = xor()
    assert X.dtype == np.float32 and T.dtype == np.float32


# --- load_csv: good files ----------------------------------------------------


def test_load_csv_iris_example():
    data = load_csv(EXAMPLES / "iris.csv")
    assert isinstance(data, Dataset)
    assert data.X.shape == (150, 4) and data.X.dtype == np.float64
    assert data.y.shape == (150,) and data.y.dtype == np.int64
    assert data.task == "classification"
    assert data.classes == ("setosa", "versicolor", "virginica")
    assert data.feature_names == (
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    )
    assert data.target_name == "species"
    np.testing.assert_array_equal(np.bincount(data.y), [50, 50, 50])
    np.testing.assert_array_equal(data.X[0], [5.1, 3.5, 1.4, 0.2])
    assert data.n_outputs == 3 and data.n_samples == 150 and data.n_features == 4


def test_load_csv_regression_example():
    data = load_csv(EXAMPLES / "regression.csv")
    assert data.task == "regression"
    assert data.X.shape == (200, 3) and data.y.shape == (200, 1)
    assert data.y.dtype == np.float64 and data.classes is None
    assert data.feature_names == ("x1", "x2", "x3") and data.target_name == "y"
    assert data.n_outputs == 1


def test_load_csv_regression_example_is_reproducible(tmp_path):
    import runpy

    script = runpy.run_path(str(EXAMPLES / "make_regression.py"))
    out = tmp_path / "r.csv"
    script["main"](["make_regression.py", str(out)])
    assert out.read_bytes() == (EXAMPLES / "regression.csv").read_bytes()


def test_load_csv_quoting_blank_lines_and_spaces(tmp_path):
    path = write(tmp_path, 'a, "b,c" ,y\n\n 1 , 2,"x"\n3,4, z \n\n')
    data = load_csv(path)
    assert data.feature_names == ("a", "b,c")
    np.testing.assert_array_equal(data.X, [[1, 2], [3, 4]])
    assert data.classes == ("x", "z")
    np.testing.assert_array_equal(data.y, [0, 1])
    assert data.path == str(path)


def test_load_csv_byte_order_mark(tmp_path):
    path = tmp_path / "bom.csv"
    path.write_bytes(b"\xef\xbb\xbfa,y\n1,2.5\n2,3.5\n")
    data = load_csv(path)
    assert data.feature_names == ("a",) and data.task == "regression"


def test_load_csv_target_by_name_and_index(tmp_path):
    path = write(tmp_path, "y,a,b\n1.5,2,3\n2.5,4,5\n")
    for target in ("y", 0, "0", -3):
        data = load_csv(path, target=target)
        assert data.target_name == "y"
        assert data.feature_names == ("a", "b")
        np.testing.assert_array_equal(data.y, [[1.5], [2.5]])
        np.testing.assert_array_equal(data.X, [[2, 3], [4, 5]])


def test_load_csv_digit_header_name_wins_over_index(tmp_path):
    path = write(tmp_path, "a,2,1\n1,2.5,3\n4,5.5,6\n")
    assert load_csv(path, target="1").target_name == "1"
    assert load_csv(path, target=1).target_name == "2"


def test_load_csv_numeric_labels_sorted_numerically(tmp_path):
    rows = "".join(f"{i},{label}\n" for i, label in enumerate([10, 2, 2, 10, 1, 1]))
    data = load_csv(write(tmp_path, "a,y\n" + rows))
    assert data.task == "classification"
    assert data.classes == ("1", "2", "10")
    np.testing.assert_array_equal(data.y, [2, 1, 1, 2, 0, 0])


def test_load_csv_infers_regression_for_fractions_and_many_values(tmp_path):
    frac = write(tmp_path, "a,y\n1,0.5\n2,1\n3,0.5\n4,1\n", "f.csv")
    assert load_csv(frac).task == "regression"
    many = "".join(f"{i},{i}\n" for i in range(100))
    assert load_csv(write(tmp_path, "a,y\n" + many, "m.csv")).task == "regression"
    # Integers, but every row different: not labels.
    assert load_csv(write(tmp_path, "a,y\n1,1\n2,2\n3,3\n", "d.csv")).task == (
        "regression"
    )


def test_load_csv_task_override(tmp_path):
    path = write(tmp_path, "a,y\n1,0\n2,1\n3,0\n4,1\n")
    assert load_csv(path).task == "classification"
    data = load_csv(path, task="regression")
    assert data.task == "regression" and data.y.shape == (4, 1)
    many = write(tmp_path, "a,y\n1,1\n2,2\n3,3\n", "m.csv")
    data = load_csv(many, task="classification")
    assert data.classes == ("1", "2", "3")


def test_load_csv_bad_task_value(tmp_path):
    path = write(tmp_path, "a,y\n1,2\n")
    with pytest.raises(ValueError, match="task"):
        load_csv(path, task="clustering")


# --- load_csv: errors, each naming file, line and column ---------------------


def test_load_csv_error_missing_file(tmp_path):
    message = load_error(tmp_path / "nope.csv")
    assert "no such file" in message


def test_load_csv_error_directory(tmp_path):
    assert "directory" in load_error(tmp_path)


def test_load_csv_error_empty_file(tmp_path):
    assert "empty" in load_error(write(tmp_path, ""))
    assert "empty" in load_error(write(tmp_path, "\n\n", "blank.csv"))


def test_load_csv_error_header_only(tmp_path):
    message = load_error(write(tmp_path, "a,b,y\n"))
    assert "line 1" in message and "no data rows" in message


def test_load_csv_error_ragged_row(tmp_path):
    message = load_error(write(tmp_path, "a,b,y\n1,2,3\n\n4,5\n"))
    assert "line 4" in message and "2 fields" in message and "has 3" in message
    message = load_error(write(tmp_path, "a,y\n1,2\n3,4,5\n", "long.csv"))
    assert "line 3" in message and "3 fields" in message


def test_load_csv_error_line_numbers_count_multiline_quotes(tmp_path):
    path = write(tmp_path, 'a,b,y\n1,2,"two\nlines"\n1,x,3\n')
    message = load_error(path)
    assert "line 4, column 'b'" in message and "'x' is not a number" in message


def test_load_csv_error_non_numeric_feature(tmp_path):
    path = write(
        tmp_path,
        "sepal_length,petal_width,species\n1,2,a\n3,4,b\n5,6,a\n7,8,b\n9,10,a\n"
        "13,abc,b\n",
        "iris.csv",
    )
    message = load_error(path)
    assert message == (f"{path}, line 7, column 'petal_width': 'abc' is not a number")


def test_load_csv_error_missing_value(tmp_path):
    message = load_error(write(tmp_path, "a,b,y\n1,2,3\n4,,6\n"))
    assert "line 3, column 'b': missing value" in message
    message = load_error(write(tmp_path, "a,b,y\n1,2,3\n4,5,\n", "t.csv"))
    assert "line 3, column 'y': missing value" in message


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity"])
def test_load_csv_error_non_finite_feature(tmp_path, bad):
    message = load_error(write(tmp_path, f"a,b,y\n1,2,3\n4,{bad},6\n"))
    assert f"line 3, column 'b': {bad!r}" in message and "finite" in message


@pytest.mark.parametrize("bad", ["nan", "inf"])
def test_load_csv_error_non_finite_target(tmp_path, bad):
    message = load_error(write(tmp_path, f"a,y\n1,3\n4,{bad}\n"))
    assert f"line 3, column 'y': {bad!r}" in message and "finite" in message


def test_load_csv_error_underscore_number(tmp_path):
    message = load_error(write(tmp_path, "a,y\n1_0,3\n4,5\n"))
    assert "line 2, column 'a': '1_0' is not a number" in message


def test_load_csv_error_target_not_found(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,3\n")
    message = load_error(path, target="label")
    assert "line 1" in message and "'label' not found" in message
    assert "'a', 'b', 'y'" in message


def test_load_csv_error_target_index_out_of_range(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,3\n")
    for target in (3, "7", -4):
        message = load_error(path, target=target)
        assert "line 1" in message and "out of range" in message


def test_load_csv_error_target_wrong_type(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,3\n")
    with pytest.raises(TypeError, match="target"):
        load_csv(path, target=1.5)


def test_load_csv_error_single_class(tmp_path):
    message = load_error(write(tmp_path, "a,y\n1,cat\n2,cat\n"))
    assert "column 'y'" in message and "only one class ('cat')" in message
    path = write(tmp_path, "a,y\n1,1\n2,1\n3,1\n", "num.csv")
    message = load_error(path, task="classification")
    assert "column 'y'" in message and "only one class ('1')" in message


def test_load_csv_error_duplicate_header(tmp_path):
    message = load_error(write(tmp_path, "a,b,a\n1,2,3\n"))
    assert "line 1" in message and "duplicate column name 'a'" in message
    assert "columns 1 and 3" in message


def test_load_csv_error_empty_header_name(tmp_path):
    message = load_error(write(tmp_path, "a,,y\n1,2,3\n"))
    assert "line 1, column 2: empty column name" in message


def test_load_csv_error_fewer_than_two_columns(tmp_path):
    message = load_error(write(tmp_path, "y\n1\n2\n"))
    assert "line 1" in message and "only 1 column" in message


def test_load_csv_error_regression_target_not_numeric(tmp_path):
    path = write(tmp_path, "a,y\n1,2.5\n2,3.5\n3,oops\n")
    message = load_error(path, task="regression")
    assert "line 4, column 'y': 'oops' is not a number" in message


def test_load_csv_error_malformed_csv(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(b"a,y\n1,2\n3\x00,4\n")
    assert "line 3" in load_error(path)


def test_load_csv_error_not_utf8(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("a,y\n1,caf\xe9\n".encode("latin-1"))
    assert "UTF-8" in load_error(path)


def test_load_csv_header_line_after_blank_lines(tmp_path):
    message = load_error(write(tmp_path, "\n\na,b,y\n1,2\n"))
    assert "line 4" in message and "(line 3) has 3" in message


# --- train_val_split ---------------------------------------------------------


def test_train_val_split_partition_and_seed():
    train, val = train_val_split(100, 0.2, seed=7)
    assert train.dtype == np.int64 and val.dtype == np.int64
    assert len(val) == 20 and len(train) == 80
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), range(100))
    again = train_val_split(100, 0.2, seed=7)
    np.testing.assert_array_equal(again[1], val)
    other = train_val_split(100, 0.2, seed=8)
    assert not np.array_equal(other[1], val)


def test_train_val_split_zero_fraction():
    train, val = train_val_split(5, 0.0, seed=0)
    np.testing.assert_array_equal(train, range(5))
    assert val.size == 0
    train, val = train_val_split(1, 0, seed=0)
    assert train.tolist() == [0] and val.size == 0


def test_train_val_split_at_least_one_each_side():
    train, val = train_val_split(3, 0.01, seed=0)
    assert len(val) == 1 and len(train) == 2
    train, val = train_val_split(2, 0.99, seed=0)
    assert len(val) == 1 and len(train) == 1


@pytest.mark.parametrize("bad", [1.0, 1.5, -0.1, float("nan"), True, "0.2"])
def test_train_val_split_bad_fraction(bad):
    # The library names its own parameter, not the CLI's --val-split.
    with pytest.raises(ValueError, match="val_fraction must be in") as e:
        train_val_split(10, bad, seed=0)
    assert "--" not in str(e.value)


def test_train_val_split_no_training_rows():
    with pytest.raises(ValueError, match="val_fraction.*no training rows"):
        train_val_split(1, 0.5, seed=0)


def test_train_val_split_bad_n():
    with pytest.raises(ValueError, match="n must be"):
        train_val_split(0, 0.2, seed=0)


def test_train_val_split_stratified_keeps_proportions():
    y = np.repeat([0, 1, 2], [50, 30, 20])
    train, val = train_val_split(100, 0.2, seed=3, stratify=y)
    assert len(val) == 20
    np.testing.assert_array_equal(np.bincount(y[val]), [10, 6, 4])
    np.testing.assert_array_equal(np.sort(np.concatenate([train, val])), range(100))
    y = np.array([0] * 7 + [1] * 3)
    train, val = train_val_split(10, 0.25, seed=0, stratify=y)
    assert len(val) == 2 and len(train) == 8  # round(2.5) = 2


def test_train_val_split_stratify_shape():
    with pytest.raises(ValueError, match="stratify"):
        train_val_split(10, 0.2, seed=0, stratify=np.zeros(9, np.int64))


# --- Standardizer ------------------------------------------------------------


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_standardizer_fit_transform(dtype):
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(50, 3))
    X[:, 1] = 7.0  # constant column
    s = Standardizer().fit(X)
    assert s.std[1] == 1.0
    Z = s.transform(X, dtype)
    assert Z.dtype == dtype and Z.flags.c_contiguous
    tol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(Z.mean(axis=0), 0, atol=tol)
    np.testing.assert_allclose(Z[:, [0, 2]].std(axis=0), 1, rtol=tol)
    np.testing.assert_array_equal(Z[:, 1], 0)


def test_standardizer_from_saved_statistics():
    s = Standardizer(mean=[1.0, 2.0], std=[2.0, 4.0])
    np.testing.assert_array_equal(s.transform(np.array([[3.0, 6.0]])), [[1.0, 1.0]])
    out = s.transform(np.asfortranarray(np.ones((3, 2))), np.float32)
    assert out.flags.c_contiguous and out.dtype == np.float32


@pytest.mark.parametrize("big", [1e101, 1e300, 1.5e308])
def test_standardizer_fit_values_whose_squares_overflow(big):
    # Finite values beyond 1e154 square to infinity: the statistics used to be
    # inf (with a RuntimeWarning), zeroing the column after standardizing.
    col = np.array([big, -big / 2, 0.0, big / 4, 3.0])
    X = np.stack([col, np.arange(5.0)], axis=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = Standardizer().fit(X)
        Z = s.transform(X)
    assert np.all(np.isfinite(s.mean)) and np.all(np.isfinite(s.std))
    unit = col / big  # the same column at a size whose squares are safe
    np.testing.assert_allclose(s.mean[0] / big, unit.mean(), rtol=1e-15)
    np.testing.assert_allclose(s.std[0] / big, unit.std(), rtol=1e-15)
    np.testing.assert_allclose(Z.std(axis=0), 1, rtol=1e-12)
    assert s.mean[1] == 2.0  # small columns take the unscaled sums, bit for bit


def test_standardizer_errors():
    with pytest.raises(RuntimeError, match="fit"):
        Standardizer().transform(np.ones((2, 2)))
    with pytest.raises(ValueError, match="expected"):
        Standardizer().fit(np.ones((2, 2))).transform(np.ones((2, 3)))
    with pytest.raises(ValueError, match="n_samples >= 1"):
        Standardizer().fit(np.ones((0, 2)))
    with pytest.raises(ValueError, match="positive"):
        Standardizer(mean=[0.0], std=[0.0])
    with pytest.raises(ValueError, match="both"):
        Standardizer(mean=[0.0])


@pytest.mark.parametrize(
    ("n", "fraction", "n_val"),
    [(10, 0.29, 3), (10, 0.25, 2), (7, 0.5, 4), (100, 0.2, 20)],
)
def test_train_val_split_rounds_the_validation_size(n, fraction, n_val):
    # round(fraction * n), as documented: 2.9 -> 3 (truncating would give 2);
    # Python rounds halves to even: 2.5 -> 2, 3.5 -> 4.
    train, val = train_val_split(n, fraction, seed=0)
    assert len(val) == n_val and len(train) == n - n_val


@pytest.mark.parametrize("column", ["x1", "y"])
def test_load_csv_value_too_large_for_float32_names_line_and_column(tmp_path, column):
    path = tmp_path / "big.csv"
    rows = ["x1,x2,y", "1,2,0.5", "3,4,1.5"]
    rows.append("1e300,5,2.5" if column == "x1" else "1,5,1e300")
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError) as e:
        load_csv(path, task="regression", dtype=np.float32)
    message = str(e.value)
    assert f"line 4, column '{column}'" in message and "'1e300'" in message
    assert "too large for float32" in message and "float64" in message
    # float64 holds it: no error.
    data = load_csv(path, task="regression", dtype=np.float64)
    assert np.max(np.abs(data.X)) == 1e300 or data.y.max() == 1e300


def test_load_csv_overflowing_float64_is_not_called_nan(tmp_path):
    path = tmp_path / "huge.csv"
    path.write_text("x,y\n1,2\n1e400,3\n")
    with pytest.raises(DataError, match="line 3, column 'x': '1e400' is too large"):
        load_csv(path, dtype=np.float64)


def test_load_csv_warns_when_a_column_of_names_is_read_as_labels(tmp_path):
    path = tmp_path / "names.csv"
    lines = ["x,name"] + [f"{i},person{i}" for i in range(30)]
    path.write_text("\n".join(lines) + "\n")
    with pytest.warns(UserWarning, match="30 classes for 30 rows"):
        load_csv(path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_csv(path, task="classification")  # asked for: no warning
