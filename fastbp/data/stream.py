"""Training from record batches read from disk each epoch, in bounded memory.

A file larger than memory trains in two kinds of passes over a *source*, a
zero-argument callable returning a fresh iterator of ``pyarrow.RecordBatch``
(for a file: :func:`file_source`, which reads every CSV cell as text, so that
a column's type comes from the whole file, never from its first block):

- :func:`scan`, once: counts the rows, codes the target (task and labels:
  :class:`fastbp.data.raw.TargetStats`, the rules of a table read into
  memory) and gathers the statistics of the training rows
  (:class:`fastbp.data.plan.TableStats`) from which the column plan is made
  (roles, fills, levels, date parts, standardization) -- the same code, the
  same plan as in memory, where the data fits, to float64 rounding (medians
  exactly up to 2**16 training values per column, then from a row-hash
  sample of that many);
- each epoch (:class:`Streamed`, a data source of :func:`fastbp.training.fit`):
  reads the source again, encodes each record batch with the plan, and
  trains on it with the fused kernel or the layer path, then streams once
  more over the validation rows.

Validation rows are chosen by a seeded hash of the 0-based row number
(splitmix64 of (seed, row), as a uniform draw in [0, 1), compared with
``val_fraction``), so they are the same rows in every pass without storing
them; about ``val_fraction`` of the rows, not an exact count. Rows without a
target are left out of both.

Shuffling is APPROXIMATE: rows wait in a buffer of ``shuffle_buffer`` rows;
once it overflows, whole mini-batches of rows drawn at random from the buffer
are trained (the rest wait), and what is left is trained in a random order at
the end of the epoch. A row can therefore be trained much later than it was
read, but never earlier. When the buffer holds every training row, nothing is
trained before the end of the pass, and the epoch's order is
``epoch_order(shuffle_key(seed), epoch, n_train)``, exactly as
:func:`fastbp.train` draws it: streamed and in-memory training then give the
same model.

Memory is one record batch, its arrays in float64 and the training dtype, and
about ``3 * (shuffle_buffer + batch_size)`` rows of the training dtype; none of
it grows with the file (the first pass also keeps each text column's levels,
up to 65536, and each column's median sample, 1 MB). pyarrow's reader holds a
few record batches per column, and its memory pool keeps what it frees, so
each batch read hands it back. Measured: ``fastbp train --stream`` on
5,000,000 rows of 20 float features in Parquet peaks at about 380 MB of
resident memory (Numba's compiled kernels are about 60 MB of it), whether
the row groups hold 100k, 500k or 1M rows. Every chunk reaches the kernel
as C-contiguous arrays of one dtype, so its compiled version is reused.
"""

from __future__ import annotations

import math
import os
import queue
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validate import as_dtype, finite, positive_int
from ..nn.layers import Sequential
from ..nn.losses import Loss
from ..training.checkpoint import CheckpointError
from ..training.checks import check_initial_loss, divergence_error
from ..training.metrics import batch_loss_share
from ..training.runners import epoch_order
from .loading import DataError, Standardizer
from .plan import PlanError, PlanOptions, TablePlan, TableStats, infer_plan, numbers_of
from .problem import LOSS_NAMES, TASKS, Prepared, Problem
from .raw import TargetStats, check_header, code_target, target_name_of
from .stats import Moments, row_hash

__all__ = [
    "DEFAULT_SHUFFLE_BUFFER",
    "StreamStats",
    "scan",
    "Streamed",
    "train_stream",
    "file_source",
    "holdout_mask",
    "strict_cells",
]

#: Rows the shuffle buffer holds by default: 65536 rows of 20 float32
#: features are 5 MB, and a buffer of this size draws each batch from about
#: one Parquet record batch's worth of rows.
DEFAULT_SHUFFLE_BUFFER = 65536

#: The most rows the shuffle buffer may hold: 2**30 rows (and their copy for
#: drawing) are more than most machines have memory for anyway.
MAX_SHUFFLE_BUFFER = 1 << 30

Source = Callable[[], Iterator]


def holdout_mask(start: int, n: int, val_fraction: float, seed: int) -> NDArray:
    """Which of rows start..start+n-1 (0-based) are validation rows: bool (n,).

    Row r is held out when ``u(seed, r) < val_fraction``, u the top 53 bits of
    splitmix64(splitmix64(seed) + (r + 1) * golden) over 2**53
    (:func:`fastbp.data.stats.row_hash`): a fixed uniform draw per (seed,
    row), independent of how the rows are chunked.
    """
    if val_fraction <= 0.0:
        return np.zeros(n, dtype=bool)
    h = row_hash(np.arange(start, start + n, dtype=np.uint64), seed)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < val_fraction


def file_source(
    path: str | os.PathLike, *, format: str | None = None, batch_rows: int = 16384
) -> Source:
    """A source reading path's record batches afresh on every call, every
    CSV cell as text (:func:`fastbp.data.tables.iter_batches`); Parquet in
    batches of ``batch_rows`` rows (pyarrow's reader holds a few batches'
    worth of each column: 16384 rows keep it to tens of MB)."""
    from .tables import format_of, iter_batches

    format_of(path, format)  # an unknown format or extension fails here
    batch_rows = positive_int(batch_rows, "file_source", "batch_rows")
    return lambda: iter_batches(path, format=format, batch_rows=batch_rows, text=True)


@dataclass(frozen=True, eq=False)
class StreamStats:
    """What the first pass learned about a streamed table (see :func:`scan`).

    Attributes
    ----------
    n_rows, n_train : int
        Data rows with a target in the source, and those not held out for
        validation.
    plan : TablePlan
        Every column's role and encoding (its ``inputs`` are the model's),
        from the training rows.
    target_name : str
    task : {"regression", "classification"}
    classes : tuple of str or None
        Classification: the labels as written, ``classes[k]`` for index k.
    dtype : float32 or float64
    val_fraction : float
    seed : int
        Of the validation hash (:func:`holdout_mask`).
    name : str
        Names the data in messages.
    class_values : ndarray of float64 or None
        Numeric labels: the sorted values ``classes`` name.
    dropped : int
        Rows without a target, left out.
    target_scale : (mean, std) or None
        Regression trained on (y - mean) / std (``scan(scale_target=True)``).
    strict : bool
        Every pass refuses a missing or non-numeric cell (``scan(strict=True)``).
    """

    n_rows: int
    n_train: int
    plan: TablePlan
    target_name: str
    task: str
    classes: tuple[str, ...] | None
    dtype: np.dtype
    val_fraction: float
    seed: int
    name: str
    class_values: NDArray | None = None
    dropped: int = 0
    target_scale: tuple[float, float] | None = None
    strict: bool = False

    @property
    def n_val(self) -> int:
        return self.n_rows - self.n_train

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The model's inputs (the plan's encoded names)."""
        return self.plan.inputs

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def scaler(self) -> Standardizer:
        """Mean and std of each input over the training rows (the plan's)."""
        return Standardizer(*self.plan.standardizer())

    @property
    def default_loss(self) -> str:
        return "ce" if self.task == "classification" else "mse"

    def coding(self, loss: str | Loss | None = None) -> tuple[str, int, str]:
        """(loss name, output units, metric) for training with ``loss``, as
        :meth:`fastbp.problem.Problem.prepare` codes targets: class indices
        for "ce"; values, one 0/1 column (two classes) or one-hot rows for
        "mse"."""
        name = _loss_name(loss, self.default_loss)
        if self.task == "regression":
            if name == "ce":
                raise ValueError(
                    "train: loss 'ce' needs a classification target; use "
                    "loss 'mse' for regression"
                )
            return name, 1, "r2"
        n_classes = len(self.classes)
        if name == "ce":
            return name, n_classes, "accuracy"
        if n_classes == 2:
            return name, 1, "binary_accuracy"
        return name, n_classes, "accuracy"

    def prepared(self, loss: str | Loss | None = None) -> Prepared:
        """A :class:`fastbp.data.problem.Prepared` with empty arrays, for its
        :meth:`~fastbp.data.problem.Prepared.metadata` and
        :meth:`~fastbp.data.problem.Prepared.save` (the model-file schema)."""
        name, n_outputs, metric = self.coding(loss)
        f = self.n_features
        problem = Problem(
            np.empty((0, f), self.dtype),
            np.empty(0, np.int64 if self.classes else np.float64),
            self.feature_names,
            self.target_name,
            self.task,
            self.classes,
            self.name,
            True,
            self.default_loss,
            plan=self.plan,
        )
        empty_t = np.empty(0, np.int64) if name == "ce" else np.empty((0, n_outputs))
        return Prepared(
            problem=problem,
            loss=name,
            metric=metric,
            n_outputs=n_outputs,
            scaler=self.scaler,
            X_train=problem.X,
            T_train=empty_t,
            X_val=problem.X,
            T_val=empty_t,
            dtype=self.dtype,
            target_scale=self.target_scale,
        )

    def metadata(self, loss: str | Loss | None = None) -> dict:
        """The model file's ``meta`` object, as ``Prepared.metadata`` writes it."""
        return self.prepared(loss).metadata()

    def save(
        self,
        path: str | os.PathLike,
        model: Sequential,
        loss: str | Loss | None = None,
        extra: dict | None = None,
    ) -> None:
        """Write model and :meth:`metadata` (and the keys of ``extra``) to a
        fastbp model file, atomically."""
        self.prepared(loss).save(path, model, extra)


def _loss_name(loss: str | Loss | None, default: str) -> str:
    if loss is None:
        return default
    if isinstance(loss, Loss):
        return "ce" if loss.target == "labels" else "mse"
    if loss not in LOSS_NAMES:
        raise ValueError(f"loss must be one of {LOSS_NAMES}, got {loss!r}")
    return loss


# --- reading record batches --------------------------------------------------


def _batches(source: Source, name: str) -> Iterator:
    """source()'s record batches, read one ahead in a thread; a reader error
    becomes one DataError line naming the data rows read so far."""
    import pyarrow as pa

    if not callable(source):
        raise TypeError(
            f"source must be a callable returning record batches, got {source!r}"
        )
    offset = 0
    pool = pa.default_memory_pool()
    try:
        for batch in _read_ahead(iter(source())):
            if not isinstance(batch, pa.RecordBatch):
                raise TypeError(f"{name}: source yielded {type(batch).__name__}")
            yield batch
            offset += batch.num_rows
            del batch
            pool.release_unused()  # pyarrow's pool keeps freed batches
    except OSError as exc:
        from .tables import open_error

        raise open_error(name, exc) from None
    except (pa.ArrowException, UnicodeDecodeError) as exc:
        from .raw import read_problem

        first = (str(exc).strip().splitlines() or ["error"])[0]
        ragged = None
        if "columns" in first and os.path.isfile(name):
            from .tables import ragged_line

            ragged = ragged_line(name)
        if ragged is not None:
            raise DataError(f"{name}, {ragged}") from None
        if isinstance(exc, UnicodeDecodeError) or "UTF8" in first or not offset:
            raise DataError(
                f"{name}: {read_problem(exc, _format_word(name))}"
            ) from None
        raise DataError(
            f"{name}: cannot read the data after data row {offset} ({first})"
        ) from None


def _format_word(name: str) -> str:
    """The format of the file called name, for a message ("the file" when
    it has no known extension)."""
    from .tables import format_of

    try:
        return format_of(name)[0]
    except ValueError:
        return "a table"


def _read_ahead(iterator: Iterator, depth: int = 1) -> Iterator:
    """iterator's items, the next ``depth`` of them produced by a thread while
    the caller works on the current one.

    Decoding a record batch (pyarrow, without the GIL) then overlaps with
    training on the one before; memory grows by ``depth`` record batches. The
    thread stops when the caller stops (even on an exception), and its errors
    are raised here.
    """
    items: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                items.put(item, timeout=0.05)
                return True
            except queue.Full:
                pass
        return False

    def work() -> None:
        try:
            for item in iterator:
                if not put((True, item)):
                    return
            put((False, None))
        except BaseException as exc:  # handed to the caller, raised there
            put((False, exc))

    thread = threading.Thread(target=work, name="fastbp-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            ok, item = items.get()
            if ok:
                yield item
            elif item is None:
                return
            else:
                raise item
    finally:
        stop.set()
        thread.join()


def scan(
    source: Source,
    *,
    target: str | int | None = None,
    task: str | None = None,
    dtype: DTypeLike = np.float32,
    val_fraction: float = 0.0,
    seed: int | None = 0,
    name: str = "<stream>",
    options: PlanOptions | None = None,
    scale_target: bool = False,
) -> StreamStats:
    """The first pass over a streamed table: rows, task, labels and the
    column plan of the training rows.

    Parameters
    ----------
    source : callable returning an iterator of pyarrow.RecordBatch
        Read once here; every record batch must have the same columns.
    target : column name or 0-based index, or None for the last column
    task : "regression", "classification" or None (inferred)
    dtype : float32 or float64
        The training dtype: values are rounded to it before the statistics
        are taken, and targets too large for it are errors.
    val_fraction : float in [0, 1)
        The expected share of validation rows (:func:`holdout_mask`).
    seed : int or None
        Seeds the validation hash; None draws one (kept in the result).
    name : str
        Names the data in error messages.
    options : PlanOptions or None
        What the user says about the columns (:mod:`fastbp.data.plan`);
        ``options.strict``: clean numbers only, a missing or non-numeric
        cell is an error naming its data row and column (as ``fastbp train
        --strict``).
    scale_target : bool
        Regression: train on (y - mean) / std of the training rows' targets
        (``StreamStats.target_scale``), as ``fastbp train`` does.

    Raises
    ------
    DataError
        One line naming the data row (from 1) and column at fault: an unknown
        target, a record batch without a column, a single class, a target
        too large for dtype, no training rows; with ``strict``, a missing or
        non-numeric cell.
    """
    if task not in (None, *TASKS):
        raise ValueError(f"scan: task must be one of {TASKS} or None, got {task!r}")
    if not (
        isinstance(val_fraction, Real)
        and not isinstance(val_fraction, bool)
        and 0.0 <= float(val_fraction) < 1.0
    ):
        raise ValueError(f"scan: val_fraction must be in [0, 1), got {val_fraction!r}")
    dtype = as_dtype(dtype, "scan")
    options = options or PlanOptions()
    if seed is None:
        seed = int(np.random.default_rng().integers(1 << 62))
    elif isinstance(seed, bool) or not isinstance(seed, Integral) or seed < 0:
        raise ValueError(f"scan: seed must be an integer >= 0 or None, got {seed!r}")
    seed = int(seed)
    first = None
    rows = kept = train_rows = 0
    for batch in _batches(source, name):
        if first is None:
            first = _first_batch(batch, target, task, dtype, options, seed, name)
            target_name, labels, stats, features = first
        c = batch.num_rows
        if c == 0:
            continue
        columns = _columns(batch, [*features, target_name], name, rows)
        if options.strict:
            strict_cells(columns, features, rows, name, options)
        held_out = holdout_mask(rows, c, float(val_fraction), seed)
        present = labels.add(columns.column(target_name), rows, ~held_out)
        train = present & ~held_out
        try:
            stats.add(columns.select(features), train, rows)
        except PlanError as exc:
            raise DataError(f"{name}, {exc}") from None
        rows += c
        kept += int(present.sum())
        train_rows += int(train.sum())
    if first is None or rows == 0:
        raise DataError(f"{name}: no data rows")
    if train_rows == 0:
        raise DataError(
            f"{name}: val_fraction {val_fraction:g} leaves no training rows in "
            f"{kept} rows"
        )
    task, classes, values = labels.finish()
    try:
        plan = infer_plan(stats, options, where=name)
    except PlanError as exc:
        raise DataError(str(exc)) from None
    return StreamStats(
        n_rows=kept, n_train=train_rows, plan=plan, target_name=target_name,
        task=task, classes=classes, dtype=dtype, val_fraction=float(val_fraction),
        seed=seed, name=name, class_values=values, dropped=rows - kept,
        target_scale=labels.scale() if scale_target and task == "regression" else None,
        strict=options.strict,
    )  # fmt: skip


def _first_batch(batch, target, task, dtype, options, seed, name):
    """(target name, TargetStats, TableStats, feature names) from the first
    record batch's columns."""
    header = list(batch.schema.names)
    check_header(header, name)
    target_name = target_name_of(target, header, name)
    options.check_names(header, target_name, name)
    features = [h for h in header if h != target_name]
    where = f"{name}, column {target_name!r}"
    labels = TargetStats(task, target_name, where, options.na_values, dtype)
    stats = TableStats(batch.select(features).schema, dtype, options, seed=seed)
    return target_name, labels, stats, features


def _columns(batch, names, name, offset):
    """The batch with just these columns; DataError when one is missing."""
    missing = [c for c in names if c not in batch.schema.names]
    if missing:
        raise DataError(
            f"{name}: the record batch from data row {offset + 1} has no "
            f"column {missing[0]!r}"
        )
    return batch.select(names)


def strict_cells(batch, features, offset, name, options) -> None:
    """DataError naming the data row and column of the first missing or
    non-numeric feature cell of a batch (--strict)."""
    for column_name in features:
        values, usable = numbers_of(batch.column(column_name), options.na_values)
        if not usable.all():
            i = int(np.argmin(usable))
            cell = batch.column(column_name)[i].as_py()
            if isinstance(cell, float):
                what = f"{cell} is not finite"
            elif cell is None or str(cell).strip() in options.na_values:
                what = "missing value"
            else:
                what = f"{cell!r} is not a number"
            raise DataError(
                f"{name}, column {column_name!r}, data row {offset + i + 1}: {what}"
            )


# --- the training pass -------------------------------------------------------


class _Reader:
    """Record batches as standardized (X, T) arrays of the training dtype,
    encoded by the plan and split into training and validation rows by the
    stats' hash; rows without a target are left out."""

    def __init__(self, stats: StreamStats, loss_name: str, n_outputs: int) -> None:
        self.stats, self.loss_name, self.n_outputs = stats, loss_name, n_outputs
        self.scaler = stats.scaler
        self.columns = [*stats.plan.raw_columns, stats.target_name]

    def chunks(self, source: Source) -> Iterator[tuple[NDArray, NDArray, NDArray]]:
        """(X, T, held_out) per record batch: X (c, n_features), T targets
        (int64 labels (c,), or (c, n_outputs) of the dtype), held_out bool (c,)."""
        stats = self.stats
        offset = kept = 0
        for batch in _batches(source, stats.name):
            c = batch.num_rows
            if c == 0:
                continue
            batch = _columns(batch, self.columns, stats.name, offset)
            if stats.strict:
                strict_cells(
                    batch, stats.plan.raw_columns, offset, stats.name,
                    PlanOptions(na_values=stats.plan.na_values),
                )  # fmt: skip
            T, present = self._targets(batch.column(stats.target_name))
            held_out = holdout_mask(offset, c, stats.val_fraction, stats.seed)
            rows = np.flatnonzero(present) + offset  # X's rows in the table
            offset += c
            if not present.all():
                import pyarrow as pa

                batch = batch.filter(pa.array(present))
                T, held_out = T[present], held_out[present]
            kept += len(T)
            X = stats.plan.encode(batch, np.float64)
            yield self._standardized(X, rows), T, held_out
        if kept != stats.n_rows:
            raise DataError(
                f"{stats.name}: the source gave {kept} rows with a target, the "
                f"first pass counted {stats.n_rows}; it must give the same rows "
                "every time"
            )

    def _standardized(self, X: NDArray, rows: NDArray) -> NDArray:
        """X = (X - mean) / std in float64, rounded once into the dtype; a
        value too large for the dtype is a DataError naming its data row
        (``rows``: the 0-based table row of each row of X) and input."""
        stats = self.stats
        too_large = np.abs(X) > np.finfo(stats.dtype).max
        if too_large.any():
            r, j = np.unravel_index(np.argmax(too_large), X.shape)
            raise DataError(
                f"{stats.name}, column {stats.feature_names[j]!r}, data row "
                f"{rows[r] + 1}: {X[r, j]:g} is too large for {stats.dtype} "
                "(use float64)"
            )
        X -= self.scaler.mean
        X /= self.scaler.std
        return np.ascontiguousarray(X, dtype=stats.dtype)

    def _targets(self, column) -> tuple[NDArray, NDArray]:
        """(T coded for the loss, rows with a target)."""
        stats, dtype = self.stats, self.stats.dtype
        y, present = code_target(
            column, stats.task, stats.classes, stats.class_values,
            stats.plan.na_values,
        )  # fmt: skip
        if stats.task == "regression":
            if stats.target_scale is not None:
                mean, std = stats.target_scale
                y = (y.astype(dtype).astype(np.float64) - mean) / std
            return y.astype(dtype), present
        if self.loss_name == "ce":
            return y, present
        index = np.where(present, y, 0)
        if self.n_outputs == 1:
            return index.astype(dtype).reshape(-1, 1), present
        return np.eye(self.n_outputs, dtype=dtype)[index], present


class _ShufflePool:
    """The approximate shuffle: training rows wait in a buffer of ``size``
    rows (plus up to a batch); when it overflows, whole batches of rows drawn
    at random from it are handed out, and :meth:`drain` hands out the rest in
    a random order."""

    def __init__(self, size, batch_size, n_features, t_tail, t_dtype, dtype, rng):
        self.size, self.batch_size, self.rng = size, batch_size, rng
        self.piece = max(size, batch_size)
        capacity = size + batch_size + self.piece
        self.X = np.zeros((capacity, n_features), dtype)
        self.T = np.zeros((capacity, *t_tail), t_dtype)
        out = self.piece + batch_size
        self.X_out = np.zeros((out, n_features), dtype)
        self.T_out = np.zeros((out, *t_tail), t_dtype)
        self.k = 0

    def add(self, X: NDArray, T: NDArray) -> Iterator[tuple[NDArray, NDArray, NDArray]]:
        """Take rows X, T; yields (X, T, perms) blocks to train, in order."""
        for s in range(0, X.shape[0], self.piece):
            part = X[s : s + self.piece]
            m, k = part.shape[0], self.k
            self.X[k : k + m] = part
            self.T[k : k + m] = T[s : s + m]
            self.k = k = k + m
            e = (k - self.size) // self.batch_size * self.batch_size
            if e > 0:
                yield self._emit(e)

    def _emit(self, e: int) -> tuple[NDArray, NDArray, NDArray]:
        k = self.k
        pick = self.rng.permutation(k)[:e]
        X_out, T_out = self.X_out[:e], self.T_out[:e]
        np.take(self.X[:k], pick, axis=0, out=X_out)
        np.take(self.T[:k], pick, axis=0, out=T_out)
        # Fill the holes left among the first k - e rows with the rows of the
        # last e that stay.
        taken = np.zeros(k, dtype=bool)
        taken[pick] = True
        holes = np.flatnonzero(taken[: k - e])
        stay = np.flatnonzero(~taken[k - e :]) + (k - e)
        self.X[holes] = self.X[stay]
        self.T[holes] = self.T[stay]
        self.k = k - e
        return X_out, T_out, np.empty((1, 0), np.int64)

    def drain(self, key: int, epoch: int) -> Iterator[tuple[NDArray, NDArray, NDArray]]:
        """The rows left, in the order ``epoch_order(key, epoch, k)`` as
        perms (1, k): fastbp.train's order when they are all the rows."""
        k, self.k = self.k, 0
        if k:
            yield self.X[:k], self.T[:k], epoch_order(key, epoch, k).reshape(1, k)


class _ValidationSums:
    """Loss and metric over the validation rows, accumulated chunk by chunk."""

    def __init__(self, loss: Loss, metric: str) -> None:
        self.loss, self.metric = loss, metric
        self.rows, self.total, self.hits, self.cells = 0, 0.0, 0, 0
        self.ss_res = 0.0
        self.t = None  # Moments of the targets, for r2

    def add(self, model: Sequential, X: NDArray, T: NDArray, batch: int) -> bool:
        """Adds rows X, T; False when the model's outputs are not finite."""
        for s in range(0, X.shape[0], batch):
            x, t = X[s : s + batch], T[s : s + batch]
            y = model.predict(x)
            if not finite(y):
                return False
            self.total += batch_loss_share(self.loss, self.loss.value(y, t), y.shape[0])
            self.rows += y.shape[0]
            if self.metric == "r2":
                if self.t is None:
                    self.t = Moments(t.shape[1])
                self.t.add(t)
                diff = t.astype(np.float64) - y
                self.ss_res += np.sum(diff * diff, axis=0)
            elif self.metric == "binary_accuracy":
                self.hits += int(np.sum((y > 0.5) == (t > 0.5)))
                self.cells += y.size
            else:
                labels = np.argmax(t, axis=1) if t.ndim == 2 else t
                self.hits += int(np.sum(np.argmax(y, axis=1) == labels))
                self.cells += y.shape[0]
        return True

    def result(self) -> tuple[float, float]:
        value = self.total / self.rows
        if self.metric == "r2":
            ss_tot = self.t.m2
            with np.errstate(divide="ignore", invalid="ignore"):
                per_output = np.where(ss_tot > 0, 1.0 - self.ss_res / ss_tot, np.nan)
            return value, float(np.mean(per_output))
        return value, self.hits / self.cells


class Streamed:
    """A table read again every epoch, as a data source of
    :func:`fastbp.training.fit` (``fastbp.train(model, loss, opt,
    Streamed(source, stats), epochs=...)``).

    Parameters
    ----------
    source : callable returning an iterator of pyarrow.RecordBatch
        The same rows, in the same order, as :func:`scan` read.
    stats : StreamStats
        From :func:`scan`: columns, labels, standardization, the validation
        rows (``stats.val_fraction``, ``stats.seed``) and the dtype.
        Targets are coded for the run's loss as :meth:`StreamStats.coding`
        says (class indices for cross-entropy).
    shuffle_buffer : int >= 1
        Rows the approximate shuffle draws from (see the module notes); at
        least the training row count gives ``fastbp.train``'s exact order.

    Each epoch is one pass over the source, trained block by block as the
    shuffle buffer overflows; ``train_seconds`` counts the whole pass,
    reading and converting included. The validation rows are evaluated in
    one more pass after each epoch, in neither ``train_seconds`` nor
    ``compile_seconds``. The buffer's draws come from
    ``numpy.random.default_rng(seed)``, the order of the rows left at the end
    of an epoch from ``epoch_order(shuffle_key(seed), epoch, k)``; a
    checkpoint stores the generator's state (the buffer is empty between
    epochs), so a resumed run draws what the uninterrupted one would.
    """

    mode = "streamed"

    def __init__(
        self,
        source: Source,
        stats: StreamStats,
        *,
        shuffle_buffer: int = DEFAULT_SHUFFLE_BUFFER,
    ) -> None:
        if not isinstance(stats, StreamStats):
            raise TypeError(f"train: stats must come from scan(), got {stats!r}")
        self.source, self.stats = source, stats
        self.shuffle_buffer = positive_int(shuffle_buffer, "train", "shuffle_buffer")
        if self.shuffle_buffer > MAX_SHUFFLE_BUFFER:
            raise ValueError(
                f"train: shuffle_buffer must be at most {MAX_SHUFFLE_BUFFER} rows, "
                f"got {self.shuffle_buffer}"
            )

    @property
    def has_validation(self) -> bool:
        return self.stats.n_val > 0

    def default_metric(self, loss: Loss) -> str:
        return self.stats.coding(loss)[2]

    def bind(self, run) -> None:
        """Check the model against the table, and size the shuffle buffer."""
        stats, model = self.stats, run.model
        if run.strategy.size > 1:
            raise ValueError("train: a streamed source trains in one process")
        if run.shuffle_key < 0:
            raise ValueError(
                "train: a streamed source always shuffles (approximately); "
                "shuffle=False does not apply"
            )
        if model.dtype != stats.dtype:
            raise ValueError(
                f"train: the model is {model.dtype} but scan() read {stats.dtype}"
            )
        if model.in_features is not None and model.in_features != stats.n_features:
            raise ValueError(
                f"train: the model takes {model.in_features} features, the data "
                f"has {stats.n_features}"
            )
        loss_name, n_outputs, _ = stats.coding(run.loss)
        if model.out_features is not None and model.out_features != n_outputs:
            raise ValueError(
                f"train: the model has {model.out_features} outputs; loss "
                f"{loss_name!r} on this target needs {n_outputs}"
            )
        self.reader = _Reader(stats, loss_name, n_outputs)
        labels = loss_name == "ce"
        self.batch_size = min(run.batch_size, stats.n_train)
        self.rng = np.random.default_rng(run.seed)
        self.pool = _ShufflePool(
            # A buffer larger than the training rows holds them all anyway.
            min(self.shuffle_buffer, stats.n_train),
            self.batch_size,
            stats.n_features,
            () if labels else (n_outputs,),
            np.int64 if labels else stats.dtype,
            stats.dtype,
            self.rng,
        )
        self.checked = False

    def describe(self) -> dict:
        """The data and batching, as a checkpoint records them."""
        return {
            "mode": self.mode,
            "batch_size": self.batch_size,
            "rows": self.stats.n_train,
            "validation_rows": self.stats.n_val,
            "sample_weight": False,
            "shuffle_buffer": self.shuffle_buffer,
        }

    def state(self) -> dict:
        """The shuffle buffer's generator state (checkpointed between epochs)."""
        return self.rng.bit_generator.state

    def load_state(self, state) -> None:
        """Take back :meth:`state` (None: nothing to restore)."""
        if state is None:
            return
        try:
            self.rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError):
            raise CheckpointError(
                "checkpoint: the shuffle buffer's generator state is malformed"
            ) from None

    def start(self, run) -> None:
        """Choose the kernel for the epochs left and compile (or load) it on
        one row: ``compile_seconds``."""
        steps_per_epoch = -(-self.stats.n_train // self.batch_size)
        run.choose_kernel(
            self.batch_size, (run.epochs - run.epochs_done) * steps_per_epoch, False
        )
        run.warm_up(
            run.engine.runner(
                self.pool.X[:1], self.pool.T[:1], self.batch_size,
                grad_norms=run.grad_norms,
            )
        )  # fmt: skip

    def max_epochs_per_call(self, run) -> int:
        return 1  # each epoch is a pass over the source

    def train(self, run, count: int) -> None:
        """One epoch: a pass over the source, training as the buffer fills."""
        epoch = run.epochs_done + 1
        parts: list[tuple[float, int, NDArray]] = []
        start = time.perf_counter()
        for X, T, held_out in self.reader.chunks(self.source):
            if held_out.any():
                X, T = X[~held_out], T[~held_out]
            for block in self.pool.add(X, T):
                parts.append(self._train_block(run, block, epoch))
        for block in self.pool.drain(run.shuffle_key, epoch - 1):
            parts.append(self._train_block(run, block, epoch))
        run.result.train_seconds += time.perf_counter() - start
        rows = sum(m for _, m, _ in parts)
        # One block (the whole epoch in one buffer) reports train's figure.
        value = (
            parts[0][0] if len(parts) == 1 else sum(v * m for v, m, _ in parts) / rows
        )
        steps = [-(-m // self.batch_size) for _, m, _ in parts]
        norms = None
        if run.grad_norms:  # each block's per-step mean, weighed by its steps
            norms = sum(k * n for k, (_, _, n) in zip(steps, parts, strict=True))
            norms = (norms / sum(steps)).reshape(1, -1)
        run.record(np.array([value]), rows, sum(steps), norms)

    def _train_block(self, run, block, epoch) -> tuple[float, int, NDArray]:
        """(per-sample loss, rows, per-layer mean weight-gradient norms (empty
        when not tracked)) of one block trained; DivergenceError when its
        loss or the weights after it are not finite."""
        X, T, perms = block
        if not self.checked:
            check_initial_loss(run.model, run.loss, X, T, self.batch_size)
            self.checked = True
        runner = run.engine.runner(X, T, self.batch_size, grad_norms=run.grad_norms)
        value = float(runner(perms)[0])
        if not (math.isfinite(value) and finite(run.model.flat_data)):
            raise divergence_error(epoch, run.optimizer)
        return value, X.shape[0], runner.norms[0] if runner.norms.size else runner.norms

    def validate(self, run) -> None:
        """Loss and metric over the held-out rows, in one more pass."""
        if not self.stats.n_val:
            return
        sums = _ValidationSums(run.loss, run.metric)
        for X, T, held_out in self.reader.chunks(self.source):
            if held_out.any() and not sums.add(
                run.model, X[held_out], T[held_out], 4096
            ):
                raise divergence_error(run.epochs_done, run.optimizer)
        v_loss, v_metric = sums.result()
        if not math.isfinite(v_loss):
            raise divergence_error(run.epochs_done, run.optimizer)
        run.result.record_validation(v_loss, v_metric)

    def finish(self, run) -> None:
        """Nothing left to check."""


def train_stream(
    model,
    loss,
    optimizer,
    source,
    stats,
    *,
    shuffle_buffer=DEFAULT_SHUFFLE_BUFFER,
    **options,
):
    """Deprecated: ``fastbp.train(model, loss, optimizer, Streamed(source,
    stats, shuffle_buffer=...), **options)`` does the same."""
    warnings.warn(
        "train_stream is deprecated: use fastbp.train(model, loss, optimizer, "
        "Streamed(source, stats), ...)",
        DeprecationWarning,
        stacklevel=2,
    )
    from ..training.api import train

    data = Streamed(source, stats, shuffle_buffer=shuffle_buffer)
    return train(model, loss, optimizer, data, **options)
