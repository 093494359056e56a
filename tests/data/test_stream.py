"""fastbp.stream: the first pass, the hashed validation split, the approximate
shuffle, and streamed training against fastbp.train on the same rows."""

import io

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

import fastbp
from fastbp.data import DataError, Standardizer, load_csv
from fastbp.data.plan import PlanOptions
from fastbp.data.problem import Predictor
from fastbp.data.stream import (
    Streamed,
    StreamStats,
    _ShufflePool,
    holdout_mask,
    scan,
)
from fastbp.kernels.epoch import _train_epochs


def table_source(columns: dict, chunk: int):
    """A source giving the columns as record batches of chunk rows."""
    table = pa.table(columns)

    def source():
        return iter(table.to_batches(max_chunksize=chunk))

    return source


def csv_source(text: str, block_size: int = 1 << 20, text_columns=()):
    """A CSV source; text_columns are read as strings (labels as written)."""

    def source():
        read = pacsv.ReadOptions(block_size=block_size)
        convert = pacsv.ConvertOptions(
            column_types={c: pa.string() for c in text_columns}
        )
        return iter(
            pacsv.open_csv(
                io.BytesIO(text.encode()), read_options=read, convert_options=convert
            )
        )

    return source


def regression_columns(n, f=4, seed=0, noise=0.05):
    rng = np.random.default_rng(seed)
    X = rng.normal(3.0, 2.0, size=(n, f))
    w = rng.normal(size=f)
    y = X @ w / 2.0 + noise * rng.normal(size=n)
    cols = {f"x{j}": X[:, j] for j in range(f)}
    cols["y"] = y
    return cols, X, y


def classification_columns(n, f=3, n_classes=3, seed=1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f))
    y = np.argmax(X @ rng.normal(size=(f, n_classes)), axis=1)
    cols = {f"x{j}": X[:, j] for j in range(f)}
    cols["label"] = np.array(["cat", "dog", "eel"])[y]
    return cols, X, y


def test_holdout_mask_independent_of_chunking():
    whole = holdout_mask(0, 10000, 0.2, 7)
    parts = np.concatenate(
        [holdout_mask(s, 1000, 0.2, 7) for s in range(0, 10000, 1000)]
    )
    np.testing.assert_array_equal(whole, parts)
    assert abs(whole.mean() - 0.2) < 0.02
    assert not np.array_equal(whole, holdout_mask(0, 10000, 0.2, 8))
    assert not holdout_mask(0, 100, 0.0, 7).any()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scan_statistics_match_standardizer(dtype):
    cols, X, _ = regression_columns(5000)
    cols["x1"] = np.full(5000, 2.5)  # constant: std 1
    stats = scan(table_source(cols, 333), dtype=dtype, val_fraction=0.25, seed=3)
    keep = ~holdout_mask(0, 5000, 0.25, 3)
    Xd = np.column_stack([cols[f"x{j}"] for j in range(4)]).astype(dtype)
    ref = Standardizer().fit(Xd, rows=np.flatnonzero(keep))
    np.testing.assert_allclose(stats.scaler.mean, ref.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.scaler.std, ref.std, rtol=1e-12, atol=1e-12)
    assert stats.scaler.std[1] == 1.0
    assert stats.n_rows == 5000 and stats.n_train == int(keep.sum())
    assert stats.task == "regression" and stats.classes is None
    assert stats.feature_names == ("x0", "x1", "x2", "x3")


def test_scan_one_chunk_statistics_are_bitwise():
    cols, _, _ = regression_columns(777)
    stats = scan(table_source(cols, 10**6), dtype=np.float64, val_fraction=0.3)
    keep = np.flatnonzero(~holdout_mask(0, 777, 0.3, 0))
    X = np.column_stack([cols[f"x{j}"] for j in range(4)])
    ref = Standardizer().fit(X, rows=keep)
    np.testing.assert_array_equal(stats.scaler.mean, ref.mean)
    np.testing.assert_array_equal(stats.scaler.std, ref.std)


@pytest.mark.parametrize(
    "labels",
    [
        ["b", "a", "c", "a"],
        ["10", "9", "10", "-1"],
        ["1.0", "2", "1", "3"],
        ["0.5", "1.5", "2", "7"],
    ],
)
def test_scan_labels_and_task_like_load_csv(tmp_path, labels):
    rows = [f"{i},{lab}" for i, lab in enumerate(labels * 5)]
    text = "x,t\n" + "\n".join(rows) + "\n"
    path = tmp_path / "d.csv"
    path.write_text(text)
    ref = load_csv(path)
    stats = scan(csv_source(text, block_size=16, text_columns=["t"]))
    assert stats.task == ref.task
    assert stats.classes == ref.classes


def test_scan_labels_by_value_named_as_first_written():
    cols = {"x": np.arange(6.0), "t": pa.array([3, 1, 2, 1, 3, 2], pa.int64())}
    stats = scan(table_source(cols, 2), task="classification")
    assert stats.classes == ("1", "2", "3")
    np.testing.assert_array_equal(stats.class_values, [1.0, 2.0, 3.0])


def _reference(stats, cols, names, target, loss_name, dtype):
    """The training and validation arrays fastbp.train gets in memory."""
    X = np.column_stack([cols[c] for c in names]).astype(dtype)
    held = holdout_mask(0, X.shape[0], stats.val_fraction, stats.seed)
    train_idx, val_idx = np.flatnonzero(~held), np.flatnonzero(held)
    scaler = Standardizer().fit(X, rows=train_idx)
    Xt = scaler.transform_(X[train_idx].copy())
    Xv = scaler.transform_(X[val_idx].copy())
    if loss_name == "ce":
        T = target
    else:
        T = target.reshape(-1, 1).astype(dtype)
    return Xt, T[train_idx], Xv, T[val_idx]


@pytest.mark.parametrize("chunk", [10**6, 37])
@pytest.mark.parametrize(
    ("loss_name", "opt"),
    [("mse", "sgd"), ("mse", "adam"), ("ce", "sgd"), ("ce", "adam")],
)
def test_train_stream_equals_train_in_memory(loss_name, opt, chunk):
    n = 400
    if loss_name == "mse":
        cols, _, y = regression_columns(n)
        names, target, n_out = [f"x{j}" for j in range(4)], y, 1
    else:
        cols, _, y = classification_columns(n)
        names, target, n_out = ["x0", "x1", "x2"], y, 3
    source = table_source(cols, chunk)
    stats = scan(source, dtype=np.float64, val_fraction=0.2, seed=11)

    def make():
        model = fastbp.mlp([len(names), 8, n_out], dtype=np.float64, rng=4)
        loss = fastbp.MSELoss() if loss_name == "mse" else fastbp.CrossEntropyLoss()
        params = model.parameters()
        if opt == "sgd":
            optimizer = fastbp.SGD(params, lr=0.05, momentum=0.9)
        else:
            optimizer = fastbp.Adam(params, lr=0.01)
        return model, loss, optimizer

    model_s, loss_s, opt_s = make()
    streamed = fastbp.train(
        model_s,
        loss_s,
        opt_s,
        Streamed(source, stats, shuffle_buffer=n),
        epochs=3,
        batch_size=16,
        seed=5,
    )
    model_m, loss_m, opt_m = make()
    Xt, Tt, Xv, Tv = _reference(stats, cols, names, target, loss_name, np.float64)
    memory = fastbp.train(
        model_m,
        loss_m,
        opt_m,
        Xt,
        Tt,
        epochs=3,
        batch_size=16,
        seed=5,
        val=(Xv, Tv),
    )
    assert streamed.fused and memory.fused
    if chunk >= n:  # one chunk: the same statistics, bit for bit
        np.testing.assert_array_equal(model_s.flat_data, model_m.flat_data)
    else:  # statistics merged over chunks differ from numpy's in the last bits
        np.testing.assert_allclose(
            model_s.flat_data, model_m.flat_data, rtol=1e-12, atol=1e-12
        )
    assert opt_s.step_count == opt_m.step_count
    np.testing.assert_allclose(streamed.loss, memory.loss, rtol=1e-11)
    np.testing.assert_allclose(streamed.val_loss, memory.val_loss, rtol=1e-11)
    np.testing.assert_allclose(streamed.val_metric, memory.val_metric, rtol=1e-9)
    assert streamed.samples == memory.samples and streamed.steps == memory.steps


def test_train_stream_layer_path_equals_fused():
    cols, _, _ = regression_columns(300)
    source = table_source(cols, 50)
    stats = scan(source, dtype=np.float64, val_fraction=0.1)
    models = []
    for fuse in (True, False):
        model = fastbp.mlp([4, 6, 1], dtype=np.float64, rng=2)
        optimizer = fastbp.Adam(model.parameters(), lr=0.01)
        result = fastbp.train(
            model,
            fastbp.MSELoss(),
            optimizer,
            Streamed(source, stats, shuffle_buffer=64),
            epochs=2,
            batch_size=32,
            fuse=fuse,
        )
        assert result.fused is fuse
        models.append(model.flat_data.copy())
    np.testing.assert_allclose(models[0], models[1], rtol=1e-10, atol=1e-12)


def test_shuffle_pool_trains_each_row_once():
    rng = np.random.default_rng(0)
    pool = _ShufflePool(100, 8, 1, (1,), np.float64, np.float64, rng)
    ids = np.arange(1000, dtype=np.float64).reshape(-1, 1)
    seen = []
    for s in range(0, 1000, 130):
        for X, _, perms in pool.add(ids[s : s + 130], ids[s : s + 130]):
            assert perms.shape == (1, 0) and X.shape[0] % 8 == 0
            seen.append(X[:, 0].copy())
    for X, _, perms in pool.drain(key=3, epoch=0):
        seen.append(X[perms[0], 0])
    order = np.concatenate(seen)
    np.testing.assert_array_equal(np.sort(order), np.arange(1000))
    assert not np.array_equal(order, np.arange(1000))
    # Approximate: a row is never trained before it is read.
    # Approximate: a row is trained at most buffer + batch + one piece of
    # 100 rows earlier than its position in the file.
    assert np.all(order < np.arange(1000) + 100 + 8 + 100)


def test_train_stream_multi_chunk_converges():
    cols, _, _ = regression_columns(20000, f=5, seed=3)
    source = table_source(cols, 1000)
    stats = scan(source, val_fraction=0.1, seed=1)
    model = fastbp.mlp([5, 16, 1], rng=0)
    optimizer = fastbp.Adam(model.parameters(), lr=0.01)
    epochs_seen = []
    result = fastbp.train(
        model,
        fastbp.MSELoss(),
        optimizer,
        Streamed(source, stats, shuffle_buffer=4096),
        epochs=4,
        batch_size=64,
        seed=2,
        callback=lambda e, r: epochs_seen.append(e),
    )
    assert epochs_seen == [1, 2, 3, 4]
    assert result.loss[-1] < result.loss[0]
    assert result.val_metric[-1] > 0.9
    assert result.samples == 4 * stats.n_train
    assert abs(stats.n_val / stats.n_rows - 0.1) < 0.01


def test_train_stream_does_not_recompile_across_chunks():
    cols, _, _ = regression_columns(3000)
    stats = scan(table_source(cols, 250), val_fraction=0.1)
    model = fastbp.mlp([4, 8, 1], rng=0)
    optimizer = fastbp.Adam(model.parameters(), lr=0.01)
    kwargs = dict(epochs=1, batch_size=32)
    fastbp.train(
        model,
        fastbp.MSELoss(),
        optimizer,
        Streamed(table_source(cols, 250), stats, shuffle_buffer=500),
        **kwargs,
    )
    before = len(_train_epochs.signatures)
    fastbp.train(
        model,
        fastbp.MSELoss(),
        optimizer,
        Streamed(table_source(cols, 77), stats, shuffle_buffer=333),
        **kwargs,
    )
    assert len(_train_epochs.signatures) == before


def test_train_stream_save_and_predict(tmp_path):
    cols, X, y = classification_columns(600)
    source = table_source(cols, 100)
    stats = scan(source, val_fraction=0.2)
    model = fastbp.mlp([3, 8, 3], rng=0)
    loss = fastbp.CrossEntropyLoss()
    fastbp.train(
        model,
        loss,
        fastbp.Adam(model.parameters(), lr=0.02),
        Streamed(source, stats),
        epochs=5,
        batch_size=32,
    )
    meta = stats.metadata(loss)
    assert meta["classes"] == ["cat", "dog", "eel"] and meta["loss"] == "ce"
    assert meta["metric"] == "accuracy" and meta["task"] == "classification"
    assert meta["standardizer"]["mean"] == stats.scaler.mean.tolist()
    path = tmp_path / "m.npz"
    stats.save(path, model, loss)
    predictor = Predictor.load(path)
    assert predictor.feature_names == stats.feature_names
    features = predictor.scaler.transform(X, dtype=np.float32)
    predicted = predictor.decode(predictor.model.predict(features))
    truth = np.array(["cat", "dog", "eel"])[y]
    assert np.mean(np.array(predicted) == truth) > 0.8


def test_stats_coding_follows_prepare():
    cols, _, _ = classification_columns(50, n_classes=2)
    cols["label"] = np.where(cols["x0"] > 0, "yes", "no")
    stats = scan(table_source(cols, 20))
    assert isinstance(stats, StreamStats)
    assert stats.coding("mse") == ("mse", 1, "binary_accuracy")
    assert stats.coding(None) == ("ce", 2, "accuracy")


def _csv(n, bad_row=None, bad_value="nan"):
    lines = ["a,b,y"]
    for i in range(n):
        b = bad_value if i + 1 == bad_row else f"{i * 0.5}"
        lines.append(f"{i},{b},{i % 7 * 0.5}")
    return "\n".join(lines) + "\n"


def test_scan_nan_in_later_chunk_names_row_and_column():
    cols, _, _ = regression_columns(3000)
    cols["x2"][2499] = np.nan
    with pytest.raises(DataError, match=r"column 'x2', data row 2500: nan") as info:
        scan(table_source(cols, 1000), options=PlanOptions(strict=True))
    assert "\n" not in str(info.value)


def test_scan_inf_or_empty_in_later_csv_chunk_names_row_and_column():
    source = csv_source(_csv(3000, bad_row=2500, bad_value="inf"), block_size=4096)
    with pytest.raises(DataError, match=r"column 'b', data row 2500: inf"):
        scan(source, options=PlanOptions(strict=True))
    source = csv_source(_csv(3000, bad_row=2700, bad_value=""), block_size=4096)
    with pytest.raises(DataError, match=r"column 'b', data row 2700: missing"):
        scan(source, options=PlanOptions(strict=True))


def test_scan_text_in_later_csv_chunk_is_one_line():
    source = csv_source(_csv(3000, bad_row=2500, bad_value="oops"), block_size=4096)
    with pytest.raises(DataError, match="after data row") as info:
        scan(source)
    assert "\n" not in str(info.value) and "oops" in str(info.value)


def test_train_stream_text_in_later_batch_names_row_and_column():
    good = pa.record_batch({"a": [1.0, 2.0], "y": [0.5, 1.5]})
    bad = pa.record_batch({"a": ["3", "x"], "y": [0.5, 1.5]})
    calls = []

    def source():
        calls.append(1)
        return iter([good, good, bad] if len(calls) > 1 else [good, good])

    stats = scan(source, options=PlanOptions(strict=True))
    model = fastbp.mlp([1, 1], rng=0)
    with pytest.raises(DataError, match=r"column 'a', data row 6: 'x' is not a number"):
        fastbp.train(
            model,
            fastbp.MSELoss(),
            fastbp.SGD(model.parameters(), lr=0.1),
            Streamed(source, stats),
            epochs=1,
        )


def test_train_stream_checks_arguments():
    cols, _, _ = regression_columns(100)
    source = table_source(cols, 30)
    stats = scan(source)
    model = fastbp.mlp([3, 1], rng=0)
    with pytest.raises(ValueError, match="takes 3 features"):
        fastbp.train(
            model,
            fastbp.MSELoss(),
            fastbp.SGD(model.parameters(), lr=0.1),
            Streamed(source, stats),
            epochs=1,
        )
    model = fastbp.mlp([4, 1], rng=0)
    with pytest.raises(ValueError, match="shuffle_buffer"):
        fastbp.train(
            model,
            fastbp.MSELoss(),
            fastbp.SGD(model.parameters(), lr=0.1),
            Streamed(source, stats, shuffle_buffer=0),
            epochs=1,
        )


def test_train_stream_divergence_raises():
    cols, _, _ = regression_columns(2000)
    cols["y"] = cols["y"] * 1e3
    source = table_source(cols, 300)
    stats = scan(source)
    model = fastbp.mlp([4, 16, 1], rng=0)
    with pytest.raises(fastbp.DivergenceError, match="epoch 1"):
        fastbp.train(
            model,
            fastbp.MSELoss(),
            fastbp.SGD(model.parameters(), lr=10.0),
            Streamed(source, stats, shuffle_buffer=256),
            epochs=3,
            batch_size=16,
        )
