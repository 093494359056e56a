"""Equality tests where the last round's planted bugs survived: non-default
parameters of every schedule and of early stopping (against scikit-learn's
MLP and against plain references written here), ties with ``tol=0``,
``seed=None`` resumed from a checkpoint, ``partial_fit`` whose first batch
lacks a declared class, the documented formula of the streamed validation
split (golden values computed here from the docstring, not by the
function), the row numbers errors name in Parquet, Feather and CSV files,
labels named as first written when statistics merge, and the pure parts of
the MPI step (local SGD's period, a shard's padding, per-rank keys, means
over ranks). ``benchmarks/mutants.py`` measures what these catch.
"""

from __future__ import annotations

import math
import shutil
import types
import warnings

import numpy as np
import pytest

import fastbp
from fastbp.training.schedules import (
    Adaptive,
    Cosine,
    EarlyStopping,
    EpochControl,
    InvScaling,
    StepDecay,
    schedule,
)

# --- plain references --------------------------------------------------------------


def ref_stop(values, *, higher, patience, tol, lr=None, factor=5.0, min_lr=1e-6):
    """scikit-learn's rule, as its MLP writes it: a loss counts as no
    improvement when ``loss > best_loss - tol`` (a score when ``score <
    best + tol``); the best is replaced only by a strictly better value;
    after more than ``patience`` such epochs training stops, or with ``lr``
    (adaptive) the rate is divided by ``factor`` unless it is <= min_lr.
    Returns (epoch it stops after or None, best epoch, rates per epoch)."""
    best, best_epoch, count, rates = None, None, 0, []
    for epoch, v in enumerate(values, 1):
        rates.append(lr)
        if higher:
            worse = best is not None and v < best + tol
            better = best is None or v > best
        else:
            worse = best is not None and v > best - tol
            better = best is None or v < best
        count = count + 1 if worse else 0
        if better:
            best, best_epoch = v, epoch
        if count > patience:
            count = 0
            if lr is None or lr <= min_lr:
                return epoch, best_epoch, rates
            lr = lr / factor
    return None, best_epoch, rates


def drive(values, rule, schedule_=None, lr=0.1):
    """EpochControl fed ``values`` as the monitored figure, epoch by epoch:
    (the epoch it stopped after or None, best epoch, rate of each epoch)."""
    optimizer = types.SimpleNamespace(lr=lr)
    model = types.SimpleNamespace(flat_data=np.zeros(3))
    control = EpochControl(optimizer, model, schedule_, rule)
    result = types.SimpleNamespace(epochs=0, stop_reason=None, history=[])
    result.history_array = lambda name: np.array(result.history)
    rates = []
    for epoch, v in enumerate(values, 1):
        control.before(epoch, 0)
        rates.append(optimizer.lr if schedule_ is not None else None)
        result.epochs = epoch
        result.history.append(v)
        if control.after(result):
            return epoch, control.best_epoch, rates
    return None, control.best_epoch, rates


TIED = [
    [1.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.4],
    [3, 2, 2, 3, 2, 1, 1, 1, 1, 1, 1],
    [0.7, 0.7, 0.7, 0.7, 0.8, 0.8, 0.8, 0.8, 0.9],
    [5.0] * 12,
]


@pytest.mark.parametrize("monitor", ["train_loss", "val_metric"])
@pytest.mark.parametrize("tol", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("patience", [1, 2, 3])
@pytest.mark.parametrize("values", TIED, ids=range(len(TIED)))
def test_early_stopping_with_ties_is_scikit_learns_rule(values, patience, tol, monitor):
    rule = EarlyStopping(patience, tol, monitor, restore_best=False)
    higher = monitor == "val_metric"
    got = drive(values, rule)
    assert got == ref_stop(values, higher=higher, patience=patience, tol=tol)


@pytest.mark.parametrize("seed", range(6))
def test_early_stopping_on_random_tied_sequences(seed):
    rng = np.random.default_rng(seed)
    values = list(rng.choice([0.1, 0.2, 0.3], size=40))
    for patience, tol in [(1, 0.0), (2, 0.0), (4, 0.05), (3, 0.1)]:
        rule = EarlyStopping(patience, tol, "val_loss", restore_best=False)
        assert drive(values, rule) == ref_stop(
            values, higher=False, patience=patience, tol=tol
        )


@pytest.mark.parametrize(
    ("factor", "min_lr", "lr"), [(5.0, 1e-6, 0.1), (4.0, 1e-3, 0.2), (2.0, 0.05, 0.1)]
)
def test_adaptive_lowers_the_rate_at_plateaus_until_min_lr(factor, min_lr, lr):
    values = [1.0] * 60  # a plateau every patience + 1 epochs
    rule = EarlyStopping(2, 0.1, "train_loss", restore_best=False)
    got = drive(values, rule, Adaptive(factor, min_lr), lr=lr)
    expected = ref_stop(
        values, higher=False, patience=2, tol=0.1, lr=lr, factor=factor, min_lr=min_lr
    )
    assert got[0] is not None  # it did stop, after lowering the rate
    assert got[0] == expected[0] and got[1] == expected[1]
    np.testing.assert_allclose(got[2], expected[2], rtol=1e-15)


def test_adaptive_stops_when_the_rate_equals_min_lr():
    # 1 / 4 is min_lr exactly: the next plateau stops (<=, not <).
    rule = EarlyStopping(1, 0.1, "train_loss", restore_best=False)
    stop, _, rates = drive([1.0] * 20, rule, Adaptive(4.0, 0.25), lr=1.0)
    assert stop == 5 and rates == [1.0, 1.0, 1.0, 0.25, 0.25]


def test_schedule_rates_with_non_default_parameters():
    lr = 0.3
    for epoch in range(1, 16):
        seen = 37 * (epoch - 1)
        assert InvScaling(0.3).rate(epoch, lr, seen) == pytest.approx(
            lr / (seen + 1) ** 0.3, rel=1e-15
        )
        assert StepDecay(3, 0.5).rate(epoch, lr, seen) == pytest.approx(
            lr * 0.5 ** ((epoch - 1) // 3), rel=1e-15
        )
        x = min(epoch - 1, 7) / 7
        assert Cosine(7, 0.01).rate(epoch, lr, seen) == pytest.approx(
            0.01 + (lr - 0.01) * (1 + math.cos(math.pi * x)) / 2, rel=1e-15
        )
    assert schedule("invscaling", epochs=5, power_t=0.25).rate(2, lr, 15) == (
        pytest.approx(lr / 16**0.25, rel=1e-15)
    )
    step = schedule("step", epochs=12, gamma=0.2)
    assert [step.rate(e, 1.0, 0) for e in (4, 5, 9)] == pytest.approx([1, 0.2, 0.04])
    assert schedule("cosine", epochs=4).rate(5, 1.0, 0) == pytest.approx(0.0)


# --- against scikit-learn's MLP ---------------------------------------------------

PLAIN = dict(
    solver="sgd",
    momentum=0.0,
    shuffle=False,
    batch_size=32,
    learning_rate_init=0.05,
    hidden_layer_sizes=(7, 4),
    random_state=3,
)


def _both(kind, **params):
    skl = pytest.importorskip("sklearn.neural_network")
    from fastbp import sklearn as ours

    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 5))
    if kind == "regression":
        y = np.tanh(X @ rng.normal(size=5)) + 0.1 * X[:, 0]
        a, b = ours.MLPRegressor, skl.MLPRegressor
    else:
        y = np.digitize(X[:, 0] + 0.5 * X[:, 2], [-0.5, 0.5])
        a, b = ours.MLPClassifier, skl.MLPClassifier
    a, b = a(dtype="float64", **params), b(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.fit(X, y)
        b.fit(X, y)
    return a, b


def _same_weights(a, b, rtol=1e-8, atol=1e-11):
    for ours, theirs in zip(
        a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_, strict=True
    ):
        np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=atol)


@pytest.mark.parametrize("power_t", [0.25, 0.8])
def test_invscaling_power_t_matches_sklearn(power_t):
    params = dict(PLAIN, learning_rate="invscaling", power_t=power_t, max_iter=12)
    params.update(learning_rate_init=0.5, n_iter_no_change=100)
    a, b = _both("regression", **params)
    assert a.n_iter_ == b.n_iter_ == 12
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-9)
    _same_weights(a, b)


@pytest.mark.parametrize(("patience", "tol"), [(2, 0.05), (1, 0.0), (5, 0.01)])
def test_adaptive_and_stopping_with_non_default_settings_match_sklearn(patience, tol):
    params = dict(PLAIN, learning_rate="adaptive", max_iter=150, tol=tol)
    params.update(n_iter_no_change=patience, learning_rate_init=0.3)
    a, b = _both("classification", **params)
    assert a.n_iter_ == b.n_iter_
    np.testing.assert_allclose(a.loss_curve_, b.loss_curve_, rtol=1e-8)
    _same_weights(a, b, rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("tol", [0.0, 0.02])
def test_early_stopping_on_tied_accuracies_matches_sklearn(tol):
    # Validation accuracy on 36 rows takes few values: ties are frequent.
    params = dict(PLAIN, early_stopping=True, validation_fraction=0.3, tol=tol)
    params.update(n_iter_no_change=3, max_iter=200, learning_rate_init=0.2)
    a, b = _both("classification", **params)
    assert a.n_iter_ == b.n_iter_ < 200
    np.testing.assert_allclose(a.validation_scores_, b.validation_scores_)
    assert a.best_validation_score_ == b.best_validation_score_
    _same_weights(a, b)  # the best epoch's, the first of tied bests


def _partial_both(batches, classes, **params):
    skl = pytest.importorskip("sklearn.neural_network")
    from fastbp import sklearn as ours

    a = ours.MLPClassifier(dtype="float64", **params)
    b = skl.MLPClassifier(**params)
    for i, (X, y) in enumerate(batches):
        given = classes if i == 0 else None
        a.partial_fit(X, y, classes=given)
        b.partial_fit(X, y, classes=given)
        _same_weights(a, b)
    return a, b


def test_partial_fit_first_batch_lacking_a_declared_class_matches_sklearn():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(90, 5))
    y = np.digitize(X[:, 0], [-0.4, 0.4])
    first = y != 2  # the first batch has no row of class 2
    batches = [(X[first][:30], y[first][:30]), (X[30:60], y[30:60]), (X[60:], y[60:])]
    a, b = _partial_both(batches, [0, 1, 2], **PLAIN)
    np.testing.assert_array_equal(a.classes_, [0, 1, 2])
    assert a.predict_proba(X).shape == (90, 3) and a.n_outputs_ == 3
    np.testing.assert_allclose(a.predict_proba(X), b.predict_proba(X), rtol=1e-9)


def test_partial_fit_first_batch_of_one_binary_class_matches_sklearn():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(60, 5))
    y = np.where(X[:, 0] > 0, "yes", "no")
    batches = [(X[y == "no"][:20], y[y == "no"][:20]), (X[20:], y[20:])]
    a, b = _partial_both(batches, ["no", "yes"], **PLAIN)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


@pytest.mark.parametrize("power_t", [0.3, 0.5])
def test_partial_fit_invscaling_counts_samples_across_calls(power_t):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(120, 5))
    y = (X[:, 1] > 0).astype(int)
    params = dict(PLAIN, learning_rate="invscaling", power_t=power_t)
    params["learning_rate_init"] = 0.4
    batches = [(X[s : s + 40], y[s : s + 40]) for s in range(0, 120, 40)]
    a, _ = _partial_both(batches * 2, [0, 1], **params)
    assert a.t_ == 240


# --- checkpoints with seed=None ---------------------------------------------------


def test_seed_none_resumed_from_a_checkpoint_equals_the_uninterrupted_run(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    T = np.tanh(X @ [1.0, -0.5, 0.3]).reshape(-1, 1)
    path, kept = tmp_path / "run.npz", tmp_path / "epoch3.npz"

    def run(epochs, **kw):
        model = fastbp.mlp([3, 8, 1], "tanh", rng=0, dtype="float64")
        opt = fastbp.SGD(model.parameters(), lr=0.05, momentum=0.9)
        result = fastbp.train(
            model, fastbp.MSELoss(), opt, X, T, epochs=epochs, batch_size=8,
            seed=None, **kw,
        )  # fmt: skip
        return model.flat_data.copy(), result

    def keep_epoch_3(epoch, result):  # before epoch 4's checkpoint is written
        if epoch == 4:
            shutil.copy(path, kept)

    full, whole = run(6, checkpoint=path, checkpoint_every=1, callback=keep_epoch_3)
    resumed, part = run(6, resume=kept)
    assert part.start_epoch == 3
    np.testing.assert_array_equal(resumed, full)
    np.testing.assert_array_equal(part.loss, whole.loss)
    # Two fresh runs with seed=None do shuffle differently.
    other, _ = run(6)
    assert not np.array_equal(other, full)


def test_checkpoint_written_after_the_last_epoch_whatever_every_is(tmp_path):
    from fastbp.training.checkpoint import Checkpoint

    X, T = np.ones((16, 2)), np.ones((16, 1))
    model = fastbp.mlp([2, 4, 1], "tanh", rng=0)
    opt = fastbp.SGD(model.parameters(), lr=0.01)
    fastbp.train(
        model, fastbp.MSELoss(), opt, X, T, epochs=5, batch_size=8,
        checkpoint=tmp_path / "c.npz", checkpoint_every=2,
    )  # fmt: skip
    ckpt = Checkpoint.load(tmp_path / "c.npz")
    assert ckpt.epochs_done == 5
    # Exactly the epochs asked for: nothing to train, no error.
    model = fastbp.mlp([2, 4, 1], "tanh", rng=0)
    opt = fastbp.SGD(model.parameters(), lr=0.01)
    result = fastbp.train(
        model, fastbp.MSELoss(), opt, X, T, epochs=5, batch_size=8, resume=ckpt
    )
    assert result.epochs == 5 and result.start_epoch == 5


# --- the streamed validation split, from its docstring -------------------------------

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def _mix(z: int) -> int:
    """splitmix64's finalizer, in Python integers."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def _u(seed: int, row: int) -> float:
    """holdout_mask's docstring: the top 53 bits of splitmix64(splitmix64(seed)
    + (r + 1) * golden) over 2**53."""
    return (_mix((_mix(seed & MASK64) + (row + 1) * GOLDEN) & MASK64) >> 11) / 2**53


#: Rows among 0..39 held out at val_fraction 0.25, computed once from _u
#: (and checked against it below), so that a change to either shows.
GOLDEN_ROWS = {
    0: [2, 4, 6, 8, 18, 31, 32, 33, 37],
    7: [9, 11, 19, 32, 37, 38],
    2**40 + 3: [3, 9, 13, 17, 20, 21, 29, 34, 37],
}


def test_golden_rows_follow_the_docstring_formula():
    for seed, rows in GOLDEN_ROWS.items():
        assert [r for r in range(40) if _u(seed, r) < 0.25] == rows


@pytest.mark.parametrize("seed", sorted(GOLDEN_ROWS))
def test_holdout_mask_is_the_documented_hash_rule(seed):
    from fastbp.data.stream import holdout_mask

    assert list(np.flatnonzero(holdout_mask(0, 40, 0.25, seed))) == GOLDEN_ROWS[seed]
    start = 1_000_003
    expected = [_u(seed, start + i) < 0.6 for i in range(50)]
    assert list(holdout_mask(start, 50, 0.6, seed)) == expected
    assert not holdout_mask(5, 50, 0.0, seed).any()


def test_streamed_plan_is_made_of_the_training_rows_of_the_formula(tmp_path):
    from fastbp.data.stream import file_source, scan

    rng = np.random.default_rng(3)
    n, seed, fraction = 300, 11, 0.3
    x = rng.normal(size=n) * 10
    y = rng.normal(size=n)
    path = tmp_path / "t.csv"
    rows = zip(x.tolist(), y.tolist(), strict=True)
    path.write_text("x,y\n" + "".join(f"{a!r},{b!r}\n" for a, b in rows))
    stats = scan(
        file_source(path), val_fraction=fraction, seed=seed, dtype=np.float64,
        scale_target=True,
    )  # fmt: skip
    train = np.array([_u(seed, r) >= fraction for r in range(n)])
    assert stats.n_train == train.sum() and stats.n_val == n - train.sum()
    (column,) = stats.plan.columns
    np.testing.assert_allclose(column.mean, [x[train].mean()], rtol=1e-12)
    np.testing.assert_allclose(column.std, [x[train].std()], rtol=1e-12)
    np.testing.assert_allclose(stats.target_scale, (y[train].mean(), y[train].std()))


# --- row numbers in errors of typed and text files ------------------------------------


def _bad_table(kind, n=50, at=37):
    """A table of n rows whose column 'b' is NaN at data row at + 1."""
    import pyarrow as pa

    b = np.ones(n)
    b[at] = np.nan if kind == "nan" else 1e39
    column = pa.array(b, mask=np.arange(n) == at) if kind == "null" else b
    return pa.table(
        {"a": np.arange(n, dtype=float), "b": column, "y": np.arange(n) % 2}
    )


@pytest.fixture(params=["parquet", "feather"])
def typed(request, tmp_path):
    """(format, path, a writer) for files stored in batches of 10 rows."""
    import pyarrow.feather as pf
    import pyarrow.parquet as pq

    fmt = request.param

    def write(table, name="t"):
        path = tmp_path / f"{name}.{fmt}"
        if fmt == "parquet":
            pq.write_table(table, path, row_group_size=10)
        else:
            pf.write_feather(table, path, chunksize=10)
        return path

    return fmt, write


def test_typed_file_errors_name_the_data_row(typed):
    from fastbp.data.plan import PlanOptions
    from fastbp.data.stream import file_source, scan
    from fastbp.data.tables import read_table

    fmt, write = typed
    path = write(_bad_table("nan"))
    with pytest.raises(ValueError, match=r"column 'b': data row 38 is NaN"):
        read_table(path)
    with pytest.raises(ValueError, match=r"column 'b', data row 38: nan is not finite"):
        scan(file_source(path), options=PlanOptions(strict=True), name=str(path))
    empty = write(_bad_table("null"), "empty")
    with pytest.raises(ValueError, match=r"column 'b': data row 38 is empty"):
        read_table(empty)
    big = write(_bad_table("big"), "big")
    with pytest.raises(ValueError, match=r"'b': data row 38 is too large for float32"):
        read_table(big)
    with pytest.raises(ValueError, match=r"'b', data row 38: 1e\+39 is too large"):
        scan(file_source(big), name=str(big))


def test_cli_names_the_data_row_of_typed_files_and_the_line_of_csv(typed, tmp_path):
    from cli_helpers import assert_input_error, invoke

    fmt, write = typed
    for args in ([], ["--stream"]):
        path = write(_bad_table("nan"))
        result = invoke("train", "--data", path, "--strict", "--epochs", 1, *args)
        assert_input_error(result.output, result.exit_code, "data row 38", "'b'")
        path = write(_bad_table("big"), "big")
        result = invoke("train", "--data", path, "--epochs", 1, *args)
        assert_input_error(result.output, result.exit_code, "data row 38", "'b'")
    table = _bad_table("big")
    csv = tmp_path / "t.csv"
    rows = zip(*(table.column(c).to_pylist() for c in ("a", "b", "y")), strict=True)
    csv.write_text("a,b,y\n" + "".join(f"{a},{b},{y}\n" for a, b, y in rows))
    for args in ([], ["--stream"], ["--strict"]):
        result = invoke("train", "--data", csv, "--epochs", 1, *args)
        assert_input_error(result.output, result.exit_code, "line 39", "'b'")


# --- labels named as first written, whatever the merge order -----------------------


@pytest.mark.parametrize("order", ["forward", "backward"])
def test_target_labels_are_named_by_their_first_row_when_merged(order):
    import pyarrow as pa

    from fastbp.data.raw import TargetStats

    def stats(cells, first_row):
        s = TargetStats(None, "y", "t.csv, column 'y'", ("",), np.dtype("float32"))
        s.add(pa.array(cells), first_row)
        return s

    early = stats(["7", "10", "7", "10"], 0)
    late = stats(["007", "010", "7.0", "10"], 4)
    a, b = (early, late) if order == "forward" else (late, early)
    a.merge(b)
    task, classes, values = a.finish()
    assert task == "classification" and classes == ("7", "10")
    np.testing.assert_array_equal(values, [7.0, 10.0])


# --- the MPI step's pure parts --------------------------------------------------


class FakeComm:
    """allgather and allreduce of N ranks whose values are given."""

    def __init__(self, rank, gathered):
        self.rank, self.gathered = rank, gathered

    def allgather(self, value):
        out = list(self.gathered)
        out[self.rank] = value
        return out

    def allreduce(self, value):
        return sum(
            self.gathered[: self.rank] + [value] + self.gathered[self.rank + 1 :]
        )


def _parallel(rank, size, *, shard=False, sync_every=1, gathered=None):
    from fastbp.training.parallel import DataParallel

    dp = DataParallel.__new__(DataParallel)
    dp.comm = FakeComm(rank, gathered or [None] * size)
    dp.size, dp.rank, dp.shard, dp.sync_every = size, rank, shard, sync_every
    dp.period = 1
    return dp


def test_local_sgd_period_is_the_largest_divisor_not_above_sync_every():
    fresh = types.SimpleNamespace(step_count=0)
    for steps in range(1, 31):
        for k in range(1, 9):
            expected = max(d for d in range(1, k + 1) if steps % d == 0)
            assert _parallel(0, 2, sync_every=k).sync_period(steps, fresh) == expected
    assert _parallel(0, 1, sync_every=4).sync_period(12, fresh) == 1


@pytest.mark.parametrize("rank", [0, 1, 2])
def test_shard_padding_gives_every_rank_the_same_steps(rank):
    counts, batch, size = [10, 7, 3], 8, 3
    local = -(-batch // size)  # 3 rows of each rank per global batch of 8
    rows = max(-(-c // local) for c in counts) * local  # 12
    n = counts[rank]
    dp = _parallel(rank, size, shard=True, gathered=counts)
    X, T = np.ones((n, 2)), np.ones((n, 1))
    X2, T2, w, local_batch, total = dp.pad(X, T, None, batch)
    assert local_batch == local and total == sum(counts)
    assert X2.shape == (rows, 2) and T2.shape == (rows, 1)
    np.testing.assert_array_equal(w, np.r_[np.ones(n), np.zeros(rows - n)])
    np.testing.assert_array_equal(X2[n:], 0)


def test_each_shard_shuffles_with_its_own_key_and_means_weigh_rows():
    key = 0x5DEECE66D
    assert [_parallel(r, 3, shard=True).rank_key(key) for r in range(3)] == [
        key, key ^ 1, key ^ 2,
    ]  # fmt: skip
    assert _parallel(2, 3).rank_key(key) == key  # unsharded: one order
    assert _parallel(1, 3, shard=True).rank_key(-1) == -1  # no shuffling
    gathered = [(10, 1.0, 0.5), (30, 3.0, 0.25), (0, 100.0, 100.0)]
    dp = _parallel(0, 3, shard=True, gathered=gathered)
    loss, metric = dp.mean_over_ranks(10, 1.0, 0.5)
    assert loss == pytest.approx((10 * 1 + 30 * 3) / 40)
    assert metric == pytest.approx((10 * 0.5 + 30 * 0.25) / 40)


# --- the same column types and labels streamed as in memory --------------------------


def test_a_late_fraction_in_a_column_of_integers_streams_as_in_memory(tmp_path):
    from fastbp.data.raw import RawTable, raw_problem
    from fastbp.data.stream import file_source, scan

    n = 150_001  # past the first record batches of every reader
    path = tmp_path / "ints.csv"
    cells = [str(i % 997) for i in range(n - 1)] + ["2.5"]
    path.write_text("a,y\n" + "".join(f"{c},{i % 2}\n" for i, c in enumerate(cells)))
    problem, _, _ = raw_problem(RawTable.read(path), dtype=np.float64)
    stats = scan(file_source(path), dtype=np.float64)
    assert problem.plan.to_json() == stats.plan.to_json()
    (column,) = stats.plan.columns
    assert column.role == "numeric"
    values = np.array([float(c) for c in cells])
    np.testing.assert_allclose(column.mean, [values.mean()], rtol=1e-12)


def test_labels_written_with_leading_zeros_stream_as_in_memory(tmp_path):
    from fastbp.data.raw import RawTable, raw_problem
    from fastbp.data.stream import file_source, scan

    path = tmp_path / "labels.csv"
    labels = ["007", "010", "7.0", "10"] * 20
    path.write_text("a,y\n" + "".join(f"{i % 7},{c}\n" for i, c in enumerate(labels)))
    problem, _, _ = raw_problem(RawTable.read(path))
    stats = scan(file_source(path))
    assert problem.classes == stats.classes == ("007", "010")
