"""Predictions written batch by batch (fastbp.outputs) and streamed
prediction (Predictor.predict_batches, fastbp predict)."""

import csv
import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

import fastbp
from fastbp.cli import main
from fastbp.data.problem import Predictor, Problem
from fastbp.io.outputs import PredictionWriter, csv_field, output_format


def test_csv_labels_quoted_by_csv_rules(tmp_path):
    labels = ["a", "b, c", 'say "hi"', " padded", "plain"]
    with PredictionWriter(tmp_path / "p.csv", "labels") as out:
        out.write(labels[:2])
        out.write(labels[2:])
    text = (tmp_path / "p.csv").read_text()
    assert text.splitlines()[0] == "prediction"
    assert [row[0] for row in csv.reader(io.StringIO(text))][1:] == labels
    assert csv_field("b, c") == '"b, c"' and csv_field("plain") == "plain"


def test_values_round_trip_exactly_in_csv_and_parquet(tmp_path):
    values = np.random.default_rng(0).normal(size=1000)
    for name in ("p.csv", "p.parquet"):
        with PredictionWriter(tmp_path / name, "values") as out:
            for chunk in np.array_split(values, 7):
                out.write(chunk)
    rows = list(csv.reader(open(tmp_path / "p.csv")))[1:]
    np.testing.assert_array_equal(np.array([r[0] for r in rows], float), values)
    table = pq.read_table(tmp_path / "p.parquet")
    np.testing.assert_array_equal(table.column("prediction").to_numpy(), values)


def test_error_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "p.csv"
    target.write_bytes(b"old contents")
    with pytest.raises(RuntimeError), PredictionWriter(target, "values") as out:
        out.write([1.0, 2.0])
        raise RuntimeError("stop")
    assert target.read_bytes() == b"old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]


def naive_csv(kind, predictions):
    """The CSV fastbp predict writes, built line by line by its rules: a
    header, then labels quoted only when they hold , " CR LF or surrounding
    spaces (quotes doubled), or values as repr(float)."""
    lines = ["prediction"]
    for p in predictions:
        if kind == "values":
            lines.append(repr(float(p)))
        elif any(c in p for c in ',"\r\n') or p != p.strip():
            lines.append('"' + p.replace('"', '""') + '"')
        else:
            lines.append(p)
    return ("\n".join(lines) + "\n").encode("utf-8")


LABELS = ["cat", "b, c", 'say "hi"', " padded", "tail ", "two\nlines", "cr\r",
          "", "naïve", "日本", "a'b", "x;y", "tab\tin"]  # fmt: skip


def test_csv_labels_bytes_equal_the_rules(tmp_path):
    with PredictionWriter(tmp_path / "p.csv", "labels") as out:
        for i in range(0, len(LABELS), 3):
            out.write(LABELS[i : i + 3])
    assert (tmp_path / "p.csv").read_bytes() == naive_csv("labels", LABELS)
    assert out.rows == len(LABELS)


def test_csv_values_bytes_equal_the_rules(tmp_path):
    rng = np.random.default_rng(3)
    values = np.concatenate(
        [rng.normal(size=50) * 10.0 ** rng.integers(-30, 30, size=50),
         [0.0, -0.0, 1.0, 1e-310, 1e300, 0.1, 1 / 3]]
    )  # fmt: skip
    with PredictionWriter(tmp_path / "p.csv", "values") as out:
        out.write(values[:20])
        out.write(values[20:50].astype(np.float32).astype(np.float64))
        out.write(values[50:])
        out.write(list(values[:2]))  # a plain list is a batch too
    expected = [*values[:20], *values[20:50].astype(np.float32), *values[50:]]
    expected += list(values[:2])
    assert (tmp_path / "p.csv").read_bytes() == naive_csv("values", expected)


def test_float32_values_are_written_as_their_float64_repr(tmp_path):
    v = np.array([0.1, 1 / 3], np.float32)
    with PredictionWriter(tmp_path / "p.csv", "values") as out:
        out.write(v)
    rows = (tmp_path / "p.csv").read_text().splitlines()[1:]
    assert rows == [repr(float(x)) for x in v]
    assert np.array([float(r) for r in rows], np.float32).tobytes() == v.tobytes()


def test_csv_many_batches_and_empty_ones(tmp_path):
    values = np.arange(10_000, dtype=np.float64) / 7
    with PredictionWriter(tmp_path / "p.csv", "values") as out:
        out.write([])
        for chunk in np.array_split(values, 1000):
            out.write(chunk)
            out.write(np.empty(0))
    assert (tmp_path / "p.csv").read_bytes() == naive_csv("values", values)
    assert out.rows == 10_000


def test_no_batches_writes_the_header_or_an_empty_table(tmp_path):
    with PredictionWriter(tmp_path / "p.csv", "labels"):
        pass
    assert (tmp_path / "p.csv").read_bytes() == b"prediction\n"
    with PredictionWriter(tmp_path / "p.parquet", "values"):
        pass
    table = pq.read_table(tmp_path / "p.parquet")
    assert table.num_rows == 0 and table.schema.field("prediction").type == "double"


def test_parquet_labels_round_trip_in_many_row_groups(tmp_path):
    labels = [LABELS[i % len(LABELS)] for i in range(2000)]
    with PredictionWriter(tmp_path / "p.pq", "labels") as out:
        for i in range(0, 2000, 100):
            out.write(np.array(labels[i : i + 100]))
    meta = pq.ParquetFile(tmp_path / "p.pq").metadata
    assert meta.num_row_groups == 20 and meta.num_rows == 2000
    table = pq.read_table(tmp_path / "p.pq")
    assert table.column_names == ["prediction"]
    assert table.schema.field("prediction").type == pa.string()
    assert table.column("prediction").to_pylist() == labels


def test_format_by_extension_or_given():
    assert output_format("a.csv") == output_format("a.txt") == "csv"
    assert output_format("a.PARQUET") == output_format("dir.x/a.pq") == "parquet"
    assert output_format(None) == output_format("-") == "csv"
    assert output_format("a.csv", "parquet") == "parquet"
    with pytest.raises(ValueError, match="'csv' or 'parquet'"):
        output_format("a.csv", "json")
    with pytest.raises(ValueError, match="kind must be"):
        PredictionWriter("a.csv", "probabilities")


def test_format_overrides_the_extension(tmp_path):
    with PredictionWriter(tmp_path / "p.out", "values", format="parquet") as out:
        out.write([1.5, 2.5])
    assert pq.read_table(tmp_path / "p.out").column(0).to_pylist() == [1.5, 2.5]


@pytest.mark.parametrize("path", [None, "-"])
def test_stdout_gets_csv(path, capsysbinary):
    print("before", flush=False)  # text still buffered goes out first
    with PredictionWriter(path, "labels") as out:
        out.write(LABELS)
    assert capsysbinary.readouterr().out == b"before\n" + naive_csv("labels", LABELS)


def test_success_leaves_no_temporary_file_and_keeps_permissions(tmp_path):
    target = tmp_path / "p.csv"
    target.write_text("old")
    target.chmod(0o640)
    with PredictionWriter(target, "values") as out:
        out.write([1.0])
    assert [p.name for p in tmp_path.iterdir()] == ["p.csv"]
    assert target.read_bytes() == b"prediction\n1.0\n"
    assert target.stat().st_mode & 0o777 == 0o640


@pytest.mark.parametrize("name", ["p.csv", "p.parquet"])
def test_error_after_many_batches_leaves_the_old_file(tmp_path, name):
    target = tmp_path / name
    old = bytes(range(256)) * 10
    target.write_bytes(old)
    with pytest.raises(KeyboardInterrupt), PredictionWriter(target, "values") as out:
        for _ in range(50):
            out.write(np.ones(1000))
        raise KeyboardInterrupt
    assert target.read_bytes() == old
    assert [p.name for p in tmp_path.iterdir()] == [name]


def test_error_before_any_file_existed_leaves_nothing(tmp_path):
    with (
        pytest.raises(RuntimeError),
        PredictionWriter(tmp_path / "p.csv", "labels") as out,
    ):
        out.write(["a"])
        raise RuntimeError("stop")
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def regression_model(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(500, 3))
    table = pa.table({"a": X[:, 0], "b": X[:, 1], "c": X[:, 2], "y": X[:, 0] - X[:, 2]})
    pacsv.write_csv(table, tmp_path / "train.csv")
    pq.write_table(table, tmp_path / "train.parquet")
    prepared = Problem.from_file(tmp_path / "train.csv").prepare(seed=0)
    model = fastbp.mlp([3, 8, 1], "relu", rng=0)
    fastbp.train(model, fastbp.MSELoss(), fastbp.Adam(model.parameters(), lr=0.01),
                 prepared.X_train, prepared.T_train, epochs=3)  # fmt: skip
    prepared.save(tmp_path / "m.npz", model)
    return tmp_path


def test_streamed_predictions_equal_whole_file_ones(regression_model):
    predictor = Predictor.load(regression_model / "m.npz")
    whole = predictor.predict_file(regression_model / "train.csv")
    for name in ("train.csv", "train.parquet"):
        one = list(predictor.predict_batches(regression_model / name))
        np.testing.assert_array_equal(np.concatenate(one), whole)
        # Smaller batches: the product switches from BLAS to loops below a
        # size, so float32 sums may round differently (a few ulps).
        parts = list(predictor.predict_batches(regression_model / name, batch_rows=64))
        assert len(parts) >= 2 or name.endswith(".csv")
        np.testing.assert_allclose(np.concatenate(parts), whole, rtol=1e-5, atol=1e-6)


def test_cli_predict_writes_parquet_by_extension(regression_model):
    out = regression_model / "p.parquet"
    args = ["predict", "--model", regression_model / "m.npz", "--data"]
    result = CliRunner().invoke(
        main,
        [str(a) for a in [*args, regression_model / "train.parquet", "--out", out]],
    )
    assert result.exit_code == 0, result.output
    csv_run = CliRunner().invoke(
        main, [str(a) for a in [*args, regression_model / "train.csv"]]
    )
    expected = [float(v) for v in csv_run.stdout.splitlines()[1:]]
    np.testing.assert_array_equal(
        pq.read_table(out).column("prediction").to_numpy(), expected
    )


def test_cli_predict_bad_cell_late_in_a_big_file_fails_and_keeps_old_output(
    tmp_path, regression_model
):
    rows = ["a,b,c"] + [f"{i % 7},{i % 5},{i % 3}" for i in range(200_000)]
    rows[150_000] = "1,oops,2"
    data = tmp_path / "big.csv"
    data.write_text("\n".join(rows) + "\n")
    out = tmp_path / "p.csv"
    out.write_text("old")
    result = CliRunner().invoke(
        main,
        [
            "predict",
            "--model",
            str(regression_model / "m.npz"),
            "--data",
            str(data),
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 2
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Error:") and "column 'b'" in last, last
    assert out.read_text() == "old"
