"""The column plan (fastbp.data.plan) and its statistics (fastbp.data.stats):
every role and every spelling of a missing cell in each file format, fills,
levels, date parts and standardization against plain NumPy, the plan applied
to rows it never saw, and one plan whether a table is read into memory,
streamed in chunks or merged from parts."""

import datetime as dt
import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

from fastbp.data.plan import (
    MAX_CATEGORIES,
    NA_VALUES,
    PlanOptions,
    TablePlan,
    TableStats,
    infer_plan,
)
from fastbp.data.raw import RawTable, raw_problem
from fastbp.data.stats import BottomK, Levels, Moments
from fastbp.data.stream import file_source, holdout_mask, scan

N = 240


def raw_columns(n=N, seed=0):
    """A table with a column of every role, as text (what a CSV holds)."""
    rng = np.random.default_rng(seed)
    value = np.round(rng.normal(50, 10, n), 3)
    holes = rng.random(n) < 0.1
    spelled = rng.choice(NA_VALUES, n)
    numeric = np.where(holes, spelled, value.astype(str))
    level = rng.choice(["a", "b", "c", "d"], n, p=[0.4, 0.3, 0.2, 0.1])
    days = [
        dt.date(2020, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 900, n)
    ]
    return {
        "": np.arange(n).astype(str),  # pandas' index column
        "id": rng.permutation(n).astype(str),
        "num": numeric,
        "qnum": np.where(rng.random(n) < 0.03, "?", value.astype(str)),
        "flag": rng.choice(["true", "false", "TRUE"], n),
        "cat": level,
        "day": [d.strftime("%Y/%m/%d") for d in days],
        "name": [f"person {i} {rng.integers(1e9)}" for i in range(n)],
        "empty": np.full(n, "NA"),
        "y": np.round(value * 0.1 + rng.normal(size=n), 3).astype(str),
    }


def write(columns, folder, kind):
    table = pa.table({k: pa.array(list(v), pa.string()) for k, v in columns.items()})
    path = folder / f"t.{kind}"
    if kind in ("csv", "tsv"):
        options = pacsv.WriteOptions(delimiter="\t" if kind == "tsv" else ",")
        pacsv.write_csv(table, path, write_options=options)
    elif kind == "parquet":
        pq.write_table(table, path)
    else:
        feather.write_feather(table, path)
    return path


def plan_of(path, val_rows=None, **options):
    raw = RawTable.read(path, target="y", options=PlanOptions(**options))
    held = np.zeros(raw.table.num_rows, bool) if val_rows is None else val_rows
    problem, _, _ = raw_problem(raw, dtype=np.float64, val_rows=held)
    return problem


EXPECTED_ROLES = {
    "": "identifier",
    "id": "identifier",
    "num": "numeric",
    "qnum": "numeric",
    "flag": "boolean",
    "cat": "categorical",
    "day": "datetime",
    "name": "text",
    "empty": "dropped",
}


@pytest.mark.parametrize("kind", ["csv", "tsv", "parquet", "feather"])
def test_every_role_in_every_format(tmp_path, kind):
    problem = plan_of(write(raw_columns(), tmp_path, kind))
    roles = {c.name: c.role for c in problem.plan.columns}
    assert roles == EXPECTED_ROLES
    assert problem.plan.raw_columns == ("num", "qnum", "flag", "cat", "day")


def test_typed_columns_take_their_roles(tmp_path):
    n = 100
    rng = np.random.default_rng(1)
    table = pa.table({
        "x": rng.normal(size=n),
        "k": pa.array(rng.choice(["u", "v", "w"], n)).dictionary_encode(),
        "b": pa.array(rng.random(n) < 0.5),
        "t": pa.array([dt.datetime(2021, 1, 1, i % 24) for i in range(n)]),
        "d": pa.array([dt.date(2021, 1, 1) + dt.timedelta(days=i) for i in range(n)]),
        "y": rng.normal(size=n),
    })  # fmt: skip
    path = tmp_path / "typed.parquet"
    pq.write_table(table, path)
    plan = plan_of(path).plan
    roles = {c.name: c.role for c in plan.columns}
    assert roles == {"x": "numeric", "k": "categorical", "b": "boolean",
                     "t": "datetime", "d": "datetime"}  # fmt: skip
    parts = {c.name: c.parts for c in plan.columns}
    assert "hour" in parts["t"] and "hour" not in parts["d"]  # times vary in t only


def test_missing_cells_every_spelling_filled_with_the_median(tmp_path):
    columns = raw_columns()
    problem = plan_of(write(columns, tmp_path, "csv"))
    num = next(c for c in problem.plan.columns if c.name == "num")
    cells = columns["num"]
    missing = np.isin(cells, NA_VALUES)
    present = np.array([float(v) for v in cells[~missing]])
    assert num.missing == missing.sum() > 0
    assert num.fill == np.median(present)
    assert num.inputs == ("num", "num_missing")
    j = problem.feature_names.index("num")
    X = problem.X
    np.testing.assert_array_equal(X[missing, j], np.median(present))
    np.testing.assert_array_equal(X[~missing, j], present)
    np.testing.assert_array_equal(X[:, j + 1], missing.astype(float))
    # standardized with the present values' moments; the indicator stays 0/1
    assert num.mean == (present.mean(), 0.0) and num.std[1] == 1.0
    np.testing.assert_allclose(num.std[0], present.std(), rtol=1e-12)


def test_na_values_option_replaces_the_spellings(tmp_path):
    x = [str(i) for i in range(20)]
    x[3], x[7] = "-999", "NA"
    path = write({"x": x, "y": [str(i % 5) for i in range(20)]}, tmp_path, "csv")
    numbers = [float(v) for v in x if v != "NA"]
    default = plan_of(path).plan.columns[0]
    # "NA" is missing by default; "-999" is a number
    assert default.missing == 1 and default.fill == np.median(numbers)
    custom = plan_of(path, na_values=("", "-999")).plan.columns[0]
    # now -999 is missing, and "NA" is text in a numeric column (read as missing)
    assert custom.role == "numeric" and custom.missing == 2
    assert custom.fill == np.median([v for v in numbers if v != -999])


def test_categories_most_frequent_then_other(tmp_path):
    rng = np.random.default_rng(2)
    levels = [f"L{i:02d}" for i in range(30)]
    weights = np.arange(30, 0, -1) / np.arange(30, 0, -1).sum()
    cells = rng.choice(levels, 3000, p=weights)
    columns = {"k": cells, "y": rng.normal(size=3000).astype(str)}
    path = write(columns, tmp_path, "csv")
    for max_categories in (5, MAX_CATEGORIES):
        plan = plan_of(path, max_categories=max_categories).plan
        k = plan.columns[0]
        values, counts = np.unique(cells, return_counts=True)
        ranked = [v for _, v in sorted(zip(-counts, values, strict=True))]
        assert list(k.levels) == ranked[:max_categories]
        assert k.inputs[-1] == "k=(other)"
        encoded = plan.encode(
            pa.table({"k": ["L00", ranked[-1], "never", None]}), float
        )
        assert encoded[0, k.levels.index("L00")] == 1
        np.testing.assert_array_equal(
            encoded[1:, -1], [1, 1, 1]
        )  # rare, unseen, missing
        np.testing.assert_array_equal(encoded.sum(axis=1), 1)


def test_categorical_missing_is_a_level(tmp_path):
    columns = {
        "k": ["a", "NA", "b", "", "a", "a"] * 5,
        "y": [str(i) for i in range(30)],
    }
    plan = plan_of(write(columns, tmp_path, "csv")).plan
    assert "(missing)" in plan.columns[0].levels


def test_date_parts_against_python(tmp_path):
    rng = np.random.default_rng(3)
    stamps = [
        dt.datetime(2000, 1, 1) + dt.timedelta(minutes=int(m))
        for m in rng.integers(0, 30 * 365 * 24 * 60, 200)
    ]
    columns = {
        "when": [s.strftime("%Y-%m-%d %H:%M:%S") for s in stamps],
        "y": rng.normal(size=200).astype(str),
    }
    problem = plan_of(write(columns, tmp_path, "csv"))
    column = problem.plan.columns[0]
    assert column.role == "datetime" and column.parts == (
        "year", "month", "day_of_year", "day_of_week", "hour",
    )  # fmt: skip
    expected = np.array(
        [[s.year, s.month, s.timetuple().tm_yday, s.weekday(), s.hour] for s in stamps],
        dtype=float,
    )
    np.testing.assert_array_equal(problem.X, expected)


def test_plan_json_round_trip_encodes_the_same(tmp_path):
    path = write(raw_columns(), tmp_path, "csv")
    problem = plan_of(path)
    data = json.loads(json.dumps(problem.plan.to_json()))
    again = TablePlan.from_json(data)
    table = RawTable.read(path, target="y").table
    np.testing.assert_array_equal(
        again.encode(table, np.float64), problem.plan.encode(table, np.float64)
    )
    assert again.inputs == problem.plan.inputs
    with pytest.raises(ValueError, match="version 1"):
        TablePlan.from_json({**data, "version": 2})


def test_no_usable_column_is_one_line(tmp_path):
    columns = {
        "name": [f"n{i}" for i in range(100)],
        "y": [str(i % 2) for i in range(100)],
    }
    with pytest.raises(ValueError, match="no column can be an input") as info:
        plan_of(write(columns, tmp_path, "csv"))
    assert "\n" not in str(info.value) and "--features" in str(info.value)


def test_options_name_columns_that_exist(tmp_path):
    path = write({"a": ["1", "2"], "y": ["1", "2"]}, tmp_path, "csv")
    with pytest.raises(ValueError, match="drop names 'zz'"):
        plan_of(path, drop=("zz",))
    with pytest.raises(ValueError, match="target column 'y'"):
        plan_of(path, categorical=("y",))
    with pytest.raises(ValueError, match="both categorical and numeric"):
        PlanOptions(categorical=("a",), numeric=("a",))


def test_overrides_force_roles(tmp_path):
    columns = raw_columns()
    path = write(columns, tmp_path, "csv")
    plan = plan_of(path, categorical=("qnum",), numeric=("cat",), drop=("flag",)).plan
    roles = {c.name: c.role for c in plan.columns}
    assert roles["qnum"] == "categorical" and roles["cat"] == "numeric"
    assert roles["flag"] == "dropped"
    only = plan_of(path, features=("num", "day")).plan
    assert only.raw_columns == ("num", "day")


# --- one plan, however the table is read ----------------------------------------


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize("batch_rows", [37, 10_000])
def test_streamed_plan_is_the_in_memory_plan(tmp_path, kind, batch_rows):
    columns = raw_columns(n=600, seed=4)
    path = write(columns, tmp_path, kind)
    held = holdout_mask(0, 600, 0.25, 9)
    memory = plan_of(path, val_rows=held).plan
    source = file_source(path, batch_rows=batch_rows)
    if kind == "csv":  # CSV blocks are bytes: make them small, as rows are
        import fastbp.data.tables as tables

        source = lambda: tables.iter_batches(  # noqa: E731
            path, batch_rows=batch_rows, text=True
        )
    streamed = scan(source, target="y", dtype=np.float64, val_fraction=0.25, seed=9)
    a, b = streamed.plan.to_json(), memory.to_json()
    for ca, cb in zip(a["columns"], b["columns"], strict=True):
        mean_a, std_a = ca.pop("mean", []), ca.pop("std", [])
        mean_b, std_b = cb.pop("mean", []), cb.pop("std", [])
        assert ca == cb
        np.testing.assert_allclose(mean_a, mean_b, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(std_a, std_b, rtol=1e-12)


def test_labels_keep_their_text_streamed_and_in_memory(tmp_path):
    # 007 and 010 are class labels as written, not the numbers 7 and 10
    columns = {"x": [str(i) for i in range(40)], "y": ["007", "010"] * 20}
    path = write(columns, tmp_path, "csv")
    problem = plan_of(path)
    assert problem.classes == ("007", "010")
    streamed = scan(file_source(path), target="y")
    assert streamed.classes == ("007", "010")


def test_rows_without_a_target_are_dropped_and_counted(tmp_path):
    columns = {
        "x": [str(i % 7) for i in range(50)],
        "y": ["1.5", "NA", "2.5", ""] * 12 + ["3", "4"],
    }
    path = write(columns, tmp_path, "csv")
    problem, _, dropped = raw_problem(RawTable.read(path), val_fraction=0.0)
    assert dropped == 24 and problem.n_samples == 26
    streamed = scan(file_source(path))
    assert streamed.dropped == 24 and streamed.n_rows == 26


# --- the statistics ---------------------------------------------------------------


def test_moments_merged_equal_one_pass():
    rng = np.random.default_rng(5)
    X = rng.normal(1e6, 3, size=(1000, 3))
    whole = Moments(3)
    whole.add(X)
    merged = Moments(3)
    for part in np.array_split(X, 7):
        chunk = Moments(3)
        chunk.add(part)
        merged.merge(chunk)
    assert merged.n == 1000
    # one pass: NumPy's own column mean and std, bit for bit
    columns = [np.ascontiguousarray(X[:, j]) for j in range(3)]
    np.testing.assert_array_equal(whole.mean_std()[0], [c.mean() for c in columns])
    np.testing.assert_array_equal(whole.mean_std()[1], [c.std() for c in columns])
    np.testing.assert_allclose(merged.mean_std()[0], X.mean(axis=0), rtol=1e-14)
    np.testing.assert_allclose(merged.mean_std()[1], X.std(axis=0), rtol=1e-9)


def test_moments_of_huge_values_stay_finite():
    X = np.array([[1e300], [-1e300], [3e299]])
    moments = Moments(1)
    moments.add(X[:2])
    other = Moments(1)
    other.add(X[2:])
    moments.merge(other)
    mean, std = moments.mean_std()
    np.testing.assert_allclose(mean, X.mean(), rtol=1e-12)
    assert np.isfinite(std).all() and std[0] > 1e299


def test_bottom_k_median_exact_below_k_and_chunk_independent():
    rng = np.random.default_rng(6)
    values = rng.normal(size=5000)
    rows = np.arange(5000)
    exact = BottomK(k=10_000)
    exact.add(values, rows)
    assert exact.median() == np.median(values)
    sampled = [BottomK(k=1000) for _ in range(2)]
    sampled[0].add(values, rows)
    for part in np.array_split(rows, 9):
        chunk = BottomK(k=1000)
        chunk.add(values[part], part)
        sampled[1].merge(chunk)
    assert sampled[0].median() == sampled[1].median()
    # a uniform sample of 1000 of 5000: the median's rank within ~3/sqrt(1000)
    rank = np.mean(values < sampled[0].median())
    assert abs(rank - 0.5) < 0.05


def test_levels_stop_counting_past_their_cap():
    levels = Levels(cap=3)
    levels.add(["a", "b", "a"])
    assert levels.most_common(2) == ["a", "b"] and not levels.overflow
    levels.add(["c", "d"])
    assert levels.overflow


def test_table_stats_of_a_whole_table_equal_its_chunks():
    columns = raw_columns()
    table = pa.table({k: pa.array(list(v), pa.string()) for k, v in columns.items()})
    features = table.drop_columns(["y"])
    train = np.random.default_rng(7).random(N) < 0.8
    whole = TableStats(features.schema, np.float64)
    whole.add(features, train, 0)
    merged = TableStats(features.schema, np.float64)
    for start in range(0, N, 50):
        part = TableStats(features.schema, np.float64)
        part.add(features.slice(start, 50), train[start : start + 50], start)
        merged.merge(part)
    a, b = infer_plan(whole).to_json(), infer_plan(merged).to_json()
    for ca, cb in zip(a["columns"], b["columns"], strict=True):
        np.testing.assert_allclose(ca.pop("std", []), cb.pop("std", []), rtol=1e-12)
        np.testing.assert_allclose(ca.pop("mean", []), cb.pop("mean", []), rtol=1e-12)
        assert ca == cb
