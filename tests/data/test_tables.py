"""fastbp.tables: the pyarrow reader gives what load_csv gives, in every
format, and the same one-line errors."""

import io
import sys

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.feather as feather
import pyarrow.parquet as pq
import pytest

import fastbp
from fastbp.data import DataError, load_csv
from fastbp.data.problem import Problem
from fastbp.data.tables import (
    format_of,
    iter_batches,
    read_arrow,
    read_columns,
    read_table,
)

FORMATS = ["csv", "tsv", "csv.gz", "csv.zst", "tsv.gz", "parquet", "feather"]


def make_table(n=60, seed=0, classification=True):
    rng = np.random.default_rng(seed)
    columns = {
        "a": rng.normal(size=n),
        "b": rng.integers(-5, 5, n).astype(np.float64),
        "c": rng.uniform(0, 100, n),
    }
    if classification:
        columns["species"] = rng.choice(["setosa", "versicolor", "virginica"], n)
    else:
        columns["y"] = columns["a"] * 2 + rng.normal(size=n)
    return pa.table(columns)


def write(table, folder, kind):
    path = folder / f"data.{kind}"
    if kind.startswith(("csv", "tsv")):
        options = pacsv.WriteOptions(delimiter="\t" if kind.startswith("tsv") else ",")
        compression = {"gz": "gzip", "zst": "zstd"}.get(kind.rsplit(".", 1)[-1])
        if compression:
            with pa.CompressedOutputStream(str(path), compression) as out:
                pacsv.write_csv(table, out, write_options=options)
        else:
            pacsv.write_csv(table, str(path), write_options=options)
    elif kind == "parquet":
        pq.write_table(table, path)
    else:
        feather.write_feather(table, path)
    return path


@pytest.mark.parametrize("classification", [True, False])
def test_every_format_reads_like_load_csv(tmp_path, classification):
    table = make_table(classification=classification)
    reference = load_csv(write(table, tmp_path, "csv"), dtype=np.float32)
    for kind in FORMATS:
        problem = read_table(write(table, tmp_path, kind), dtype=np.float32)
        np.testing.assert_array_equal(problem.X, reference.X.astype(np.float32))
        assert problem.X.dtype == np.float32 and problem.X.flags.c_contiguous
        np.testing.assert_array_equal(problem.y, reference.y)
        assert problem.classes == reference.classes, kind
        assert problem.feature_names == reference.feature_names
        assert problem.task == reference.task


def test_every_format_trains_the_same_model(tmp_path):
    table = make_table(n=90, seed=3)
    weights = []
    for kind in FORMATS:
        prepared = Problem.from_file(write(table, tmp_path, kind)).prepare(
            val_fraction=0.2, seed=1
        )
        model = fastbp.mlp([3, 8, 3], "relu", rng=0)
        optimizer = fastbp.Adam(model.parameters(), lr=0.01)
        fastbp.train(model, fastbp.CrossEntropyLoss(), optimizer, prepared.X_train,
                     prepared.T_train, epochs=5, batch_size=16, seed=2)  # fmt: skip
        weights.append(model.flat_data.copy())
    for w in weights[1:]:
        np.testing.assert_array_equal(w, weights[0])


def test_standard_input_reads_csv(tmp_path, monkeypatch):
    table = make_table()
    data = write(table, tmp_path, "csv").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    problem = read_table("-")
    assert problem.X.shape == (60, 3) and problem.classes[0] == "setosa"
    bad = data.replace(b"\n", b"\n,,,\n", 1)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(bad)))
    with pytest.raises(DataError, match="<stdin>, line 2, column 'a': missing value"):
        read_table("-")


def test_load_csv_promises_hold(tmp_path):
    path = tmp_path / "quirks.csv"
    path.write_bytes(
        '\ufeffx1, x2 ,label\n1, 2,"a, b"\n\n3,4, c \n5,6,"a, b"\n'.encode()
    )
    problem = read_table(path)
    expected = load_csv(path)
    np.testing.assert_array_equal(problem.X, expected.X)
    assert problem.feature_names == ("x1", "x2") == expected.feature_names
    assert problem.classes == ("a, b", "c") == expected.classes
    numbers = tmp_path / "numbers.csv"
    numbers.write_text("x1,x2,x3\n1.5,2,3\n4.5,5,6\n")
    by_index = read_table(numbers, target=0)
    assert by_index.target_name == "x1" and by_index.task == "regression"
    assert by_index.feature_names == ("x2", "x3")
    assert read_table(numbers, target=-2).target_name == "x2"


def test_numeric_labels_are_named_as_written_and_sorted_by_value(tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("x,y\n1,10\n2,9\n3,10.0\n4,9\n5,2\n6,2\n")
    problem = read_table(path, task="classification")
    assert (
        problem.classes
        == ("2", "9", "10")
        == load_csv(path, task="classification").classes
    )
    np.testing.assert_array_equal(problem.y, [2, 1, 2, 1, 0, 0])


BAD_CSV = {
    "empty cell": "a,b,y\n1,2,3\n4,,6\n",
    "text": "a,b,y\n1,2,3\n4,x,6\n",
    "ragged": "a,b,y\n1,2,3\n4,5\n",
    "nan": "a,b,y\n1,2,3\nnan,5,6\n",
    "inf": "a,b,y\n1,2,3\n4,inf,6\n",
    "too large for float32": "a,b,y\n1,2,3\n4,1e300,6\n",
    "rounds to float32's largest": "a,b,y\n1,2,3\n4,3.4028235e38,6\n",
    "duplicate header": "a,a,y\n1,2,3\n",
    "header only": "a,b,y\n",
    "empty file": "",
    "empty target": "a,b,y\n1,2,3\n4,5,\n",
}


@pytest.mark.parametrize("case", sorted(BAD_CSV))
@pytest.mark.parametrize("kind", ["csv", "csv.gz", "csv.zst"])
def test_bad_csv_gives_load_csv_message(tmp_path, case, kind):
    plain = tmp_path / "bad.csv"
    plain.write_text(BAD_CSV[case])
    with pytest.raises(DataError) as expected:
        load_csv(plain, dtype=np.float32)
    path = plain
    if kind != "csv":
        path = tmp_path / f"bad.{kind}"
        compression = "gzip" if kind.endswith("gz") else "zstd"
        with pa.CompressedOutputStream(str(path), compression) as out:
            out.write(BAD_CSV[case].encode())
    with pytest.raises(DataError) as got:
        read_table(path, dtype=np.float32)
    assert str(got.value) == str(expected.value).replace(str(plain), str(path))
    assert "\n" not in str(got.value)


@pytest.mark.parametrize("kind", ["parquet", "feather"])
def test_bad_typed_files_name_row_and_column(tmp_path, kind):
    table = pa.table({"a": [1.0, None, 3.0], "b": [1.0, 2.0, 3.0], "y": [0.5, 1, 2]})
    with pytest.raises(DataError, match=r"column 'a': data row 2 is empty"):
        read_table(write(table, tmp_path, kind))
    table = pa.table({"a": [1.0, np.inf, 3.0], "b": [1.0, 2.0, 3.0], "y": [0.5, 1, 2]})
    with pytest.raises(DataError, match=r"column 'a': data row 2 is NaN or inf"):
        read_table(write(table, tmp_path, kind))
    table = pa.table({"a": ["x", "y", "z"], "b": [1.0, 2.0, 3.0], "y": [0.5, 1, 2]})
    with pytest.raises(DataError, match=r"column 'a': holds string values"):
        read_table(write(table, tmp_path, kind))


def test_read_columns_by_name_in_any_order(tmp_path):
    table = make_table()
    for kind in ("csv", "parquet"):
        X = read_columns(write(table, tmp_path, kind), ["c", "a"], dtype=np.float64)
        np.testing.assert_array_equal(X[:, 0], table.column("c").to_numpy())
        np.testing.assert_array_equal(X[:, 1], table.column("a").to_numpy())
    with pytest.raises(DataError, match="missing 'zz'"):
        read_columns(write(table, tmp_path, "csv"), ["a", "zz"])


def test_format_by_extension_and_override():
    assert format_of("x.csv") == ("csv", None)
    assert format_of("x.TSV.gz") == ("tsv", "gzip")
    assert format_of("x.csv.zst") == ("csv", "zstd")
    assert format_of("x.pq") == ("parquet", None)
    assert format_of("x.arrow") == ("feather", None)
    assert format_of("data.txt", "csv") == ("csv", None)
    with pytest.raises(ValueError, match="unknown file type"):
        format_of("x.xlsx")
    with pytest.raises(ValueError, match="format must be one of"):
        format_of("x.csv", "excel")


@pytest.mark.parametrize("kind", ["csv", "csv.gz", "parquet", "feather"])
def test_iter_batches_streams_every_row(tmp_path, kind):
    table = make_table(n=1000)
    batches = list(iter_batches(write(table, tmp_path, kind), batch_rows=128))
    assert sum(b.num_rows for b in batches) == 1000
    if kind == "parquet":
        assert len(batches) == 8
    got = pa.Table.from_batches(batches).column("a").to_numpy()
    np.testing.assert_allclose(got, table.column("a").to_numpy())


def test_float32_largest_value_is_read(tmp_path):
    path = tmp_path / "edge.csv"
    largest = float(np.finfo(np.float32).max)
    path.write_text(f"a,b,y\n1,{largest!r},0.5\n{-largest!r},2,1.5\n")
    np.testing.assert_array_equal(
        read_table(path).X, load_csv(path, dtype=np.float32).X.astype(np.float32)
    )


def test_typed_numeric_labels_are_named_as_in_csv(tmp_path):
    table = pa.table({"a": np.arange(8.0), "y": pa.array([3, 1, 2, 3, 1, 2, 1, 3])})
    expected = read_table(write(table, tmp_path, "csv"))
    for kind in ("parquet", "feather"):
        got = read_table(write(table, tmp_path, kind))
        assert got.classes == expected.classes == ("1", "2", "3")
        np.testing.assert_array_equal(got.y, expected.y)


def test_arrow_stream_format_is_read(tmp_path):
    table = make_table()
    path = tmp_path / "data.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table, max_chunksize=16)
    expected = read_table(write(table, tmp_path, "parquet"))
    got = read_table(path)
    np.testing.assert_array_equal(got.X, expected.X)
    assert got.classes == expected.classes


@pytest.mark.parametrize("kind", FORMATS)
def test_read_arrow_gives_the_whole_table(tmp_path, kind):
    table = make_table()
    got = read_arrow(write(table, tmp_path, kind))
    assert got.column_names == table.column_names and got.num_rows == 60
    np.testing.assert_allclose(got.column("a").to_numpy(), table.column("a").to_numpy())
    with pytest.raises(DataError, match="no such file"):
        read_arrow(tmp_path / "missing.parquet")


def test_from_file_gives_float32_features_without_copies(tmp_path):
    path = write(make_table(), tmp_path, "parquet")
    problem = Problem.from_file(path)
    assert problem.X.dtype == np.float32 and problem.X.flags.owndata
    prepared = problem.prepare(val_fraction=0.25)
    assert prepared.X_train.dtype == np.float32 and prepared.X_train.flags.c_contiguous
    assert not np.shares_memory(prepared.X_train, problem.X)
    csv = Problem.from_csv(write(make_table(), tmp_path, "csv"))
    np.testing.assert_array_equal(csv.X, problem.X)


def test_a_csv_of_many_record_batches_grows_x_in_place_exactly(tmp_path):
    # 300,001 rows: several 64k-row batches, so X is resized more than once
    # and cut to the row count at the end.
    rng = np.random.default_rng(2)
    values = rng.normal(size=(300_001, 3)).round(4)
    path = tmp_path / "many.csv"
    np.savetxt(path, values, delimiter=",", header="a,b,y", comments="", fmt="%.4f")
    data = read_table(path, dtype=np.float64)
    assert data.X.shape == (300_001, 2) and data.X.flags.c_contiguous
    assert data.X.flags.owndata
    np.testing.assert_array_equal(data.X, values[:, :2])
    np.testing.assert_array_equal(np.ravel(data.y), values[:, 2])
