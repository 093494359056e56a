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
from fastbp.outputs import PredictionWriter, csv_field
from fastbp.problem import Predictor, Problem


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
