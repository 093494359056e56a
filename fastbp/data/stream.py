"""Training from record batches read from disk each epoch, in bounded memory.

A file larger than memory trains in two kinds of passes over a *source*, a
zero-argument callable returning a fresh iterator of ``pyarrow.RecordBatch``
(for a file: :func:`file_source`):

- :func:`scan`, once: counts the rows, names the columns, discovers the task
  and class labels (the rules of :func:`fastbp.data.load_csv`) and computes
  the standardization statistics over the training rows, merged chunk by
  chunk in float64 (Chan et al.'s pairwise update of mean and sum of squared
  deviations), so they equal :meth:`fastbp.data.Standardizer.fit` to rounding;
- :func:`train_stream`, per epoch: reads the source again, converts each
  record batch to arrays of the training dtype, standardizes them, and trains
  on them with the fused kernel (:class:`fastbp.train.FusedRunner`) or the
  layer path, then streams once more over the validation rows.

Validation rows are chosen by a seeded hash of the 0-based row number
(splitmix64 of (seed, row), as a uniform draw in [0, 1), compared with
``val_fraction``), so they are the same rows in every pass without storing
them; about ``val_fraction`` of the rows, not an exact count.

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
it grows with the file. Every chunk reaches the kernel as C-contiguous arrays
of one dtype, so its compiled version is reused, never recompiled.
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

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validate import as_dtype, positive_int
from ..kernels.util import all_finite
from ..nn.layers import Sequential
from ..nn.losses import Loss
from ..training.checkpoint import CheckpointError
from ..training.checks import check_initial_loss, divergence_error
from ..training.metrics import batch_loss_share
from ..training.runners import epoch_order
from .loading import (
    MAX_INFERRED_CLASSES,
    DataError,
    Standardizer,
    parse_number,
    target_index,
    warn_many_classes,
)
from .problem import LOSS_NAMES, TASKS, Prepared, Problem

__all__ = [
    "DEFAULT_SHUFFLE_BUFFER",
    "StreamStats",
    "scan",
    "Streamed",
    "train_stream",
    "file_source",
    "holdout_mask",
]

#: Rows the shuffle buffer holds by default: 65536 rows of 20 float32
#: features are 5 MB, and a buffer of this size draws each batch from about
#: one Parquet record batch's worth of rows.
DEFAULT_SHUFFLE_BUFFER = 65536

#: A streamed classification target may have at most this many labels (they
#: are kept in memory during the first pass).
MAX_STREAM_CLASSES = 65536

Source = Callable[[], Iterator]

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(z: NDArray) -> NDArray:
    """The splitmix64 finalizer of uint64 z (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def holdout_mask(start: int, n: int, val_fraction: float, seed: int) -> NDArray:
    """Which of rows start..start+n-1 (0-based) are validation rows: bool (n,).

    Row r is held out when ``u(seed, r) < val_fraction``, u the top 53 bits of
    splitmix64(splitmix64(seed) + (r + 1) * golden) over 2**53: a fixed
    uniform draw per (seed, row), independent of how the rows are chunked.
    """
    if val_fraction <= 0.0:
        return np.zeros(n, dtype=bool)
    key = _splitmix(np.array([seed % (1 << 64)], dtype=np.uint64))[0]
    rows = np.arange(start + 1, start + n + 1, dtype=np.uint64)
    with np.errstate(over="ignore"):
        h = _splitmix(rows * _GOLDEN + key)
    return (h >> np.uint64(11)).astype(np.float64) * 2.0**-53 < val_fraction


def file_source(
    path: str | os.PathLike, *, format: str | None = None, batch_rows: int = 65536
) -> Source:
    """A source reading path's record batches (:func:`fastbp.tables.iter_batches`)
    afresh on every call."""
    from .tables import iter_batches

    return lambda: iter_batches(path, format=format, batch_rows=batch_rows)


@dataclass(frozen=True, eq=False)
class StreamStats:
    """What the first pass learned about a streamed table (see :func:`scan`).

    Attributes
    ----------
    n_rows, n_train : int
        Data rows in the source, and those not held out for validation.
    feature_names : tuple of str
    target_name : str
    task : {"regression", "classification"}
    classes : tuple of str or None
        Classification: the labels as written, ``classes[k]`` for index k.
    scaler : Standardizer
        Mean and std (ddof=0, float64, 0 -> 1) of each feature over the
        training rows, the values rounded to ``dtype`` first, as
        :meth:`fastbp.problem.Problem.prepare` computes them.
    dtype : float32 or float64
    val_fraction : float
    seed : int
        Of the validation hash (:func:`holdout_mask`).
    name : str
        Names the data in messages.
    class_values : ndarray of float64 or None
        Numeric labels: the sorted values ``classes`` name.
    """

    n_rows: int
    n_train: int
    feature_names: tuple[str, ...]
    target_name: str
    task: str
    classes: tuple[str, ...] | None
    scaler: Standardizer
    dtype: np.dtype
    val_fraction: float
    seed: int
    name: str
    class_values: NDArray | None = None

    @property
    def n_val(self) -> int:
        return self.n_rows - self.n_train

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

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
                    "train_stream: loss 'ce' needs a classification target; use "
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
        """A :class:`fastbp.problem.Prepared` with empty arrays, for its
        :meth:`~fastbp.problem.Prepared.metadata` and
        :meth:`~fastbp.problem.Prepared.save` (the model-file schema)."""
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
    try:
        for batch in _read_ahead(iter(source())):
            if not isinstance(batch, pa.RecordBatch):
                raise TypeError(f"{name}: source yielded {type(batch).__name__}")
            yield batch
            offset += batch.num_rows
    except pa.ArrowException as exc:
        first = (str(exc).strip().splitlines() or ["error"])[0]
        raise DataError(
            f"{name}: cannot read the data after data row {offset} ({first})"
        ) from None


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


def _first_bad_cell(column) -> tuple[int, object]:
    """(index, cell) of the first cell of a non-numeric column that is not a
    number (the first cell when all are)."""
    for i, cell in enumerate(column.to_pylist()):
        if cell is None or parse_number(str(cell).strip()) is None:
            return i, cell
    return 0, column[0].as_py()


def _fill_features(batch, names, offset, limit, out, where) -> None:
    """out[:, k] = column names[k] of batch (rows offset+1..., from 1) in out's
    dtype; DataError naming the data row and column unless every value is a
    finite number within limit."""
    import pyarrow as pa

    for k, col_name in enumerate(names):
        try:
            column = batch.column(col_name)
        except KeyError:
            raise DataError(
                f"{where}: the record batch from data row {offset + 1} has no "
                f"column {col_name!r}"
            ) from None
        at = f"{where}, column {col_name!r}"
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            i, cell = _first_bad_cell(column)
            raise DataError(
                f"{at}, data row {offset + i + 1}: {cell!r} is not a number"
            )
        if column.null_count:
            i = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
            raise DataError(f"{at}, data row {offset + i + 1}: missing value")
        values = column.to_numpy(zero_copy_only=False)
        if values.dtype.kind == "f":
            bad = ~np.isfinite(values)
            if bad.any():
                i = int(np.argmax(bad))
                raise DataError(
                    f"{at}, data row {offset + i + 1}: {values[i]} is not finite"
                )
        if values.size and np.abs(values).max() > limit:
            i = int(np.argmax(np.abs(values) > limit))
            raise DataError(
                f"{at}, data row {offset + i + 1}: {values[i]:g} is too large for "
                f"{out.dtype} (use float64)"
            )
        out[:, k] = values


def _stripped(column, where: str, offset: int):
    """The column as a pyarrow string array, surrounding spaces stripped;
    DataError on an empty cell."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        i = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise DataError(f"{where}, data row {offset + i + 1}: missing value")
    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        column = pc.cast(column, pa.string())
    return pc.utf8_trim_whitespace(column)


def _numbers(column, where: str, offset: int, limit: float) -> NDArray | None:
    """The target column as float64 numbers, or None when a cell is text;
    DataError on an empty, non-finite or too large value."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if column.null_count:
        i = int(np.argmax(column.is_null().to_numpy(zero_copy_only=False)))
        raise DataError(f"{where}, data row {offset + i + 1}: missing value")
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        values = column.to_numpy(zero_copy_only=False).astype(np.float64)
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        text = pc.utf8_trim_whitespace(column)
        if pc.any(pc.match_substring(text, "_")).as_py():
            return None  # "1_0" is text to load_csv, a number to pyarrow
        try:
            values = pc.cast(text, pa.float64()).to_numpy(zero_copy_only=False)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
    else:
        return None
    bad = ~np.isfinite(values) | (np.abs(values) > limit)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(
            f"{where}, data row {offset + i + 1}: {column[i].as_py()!r} is not "
            "finite or too large"
        )
    return values


class _TargetScan:
    """The target column's task and labels, learned chunk by chunk with the
    rules of :func:`fastbp.data.load_csv`; memory bounded by the labels kept."""

    def __init__(self, task: str | None, where: str, limit: float) -> None:
        self.task, self.where, self.limit = task, where, limit
        self.numeric, self.integers, self.overflow = True, True, False
        self.first_text_row: int | None = None
        self.numbers: dict[float, str] = {}  # value -> first cell as written
        self.texts: set[str] = set()  # distinct text cells
        self.cap = {"regression": 0, "classification": MAX_STREAM_CLASSES}.get(
            task, MAX_INFERRED_CLASSES
        )

    def add(self, column, offset: int) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc

        values = _numbers(column, self.where, offset, self.limit)
        if values is None:
            if self.numeric:
                self.numeric = False
                text = _stripped(column, self.where, offset).to_pylist()
                bad = next(
                    i for i, cell in enumerate(text) if parse_number(cell) is None
                )
                self.first_text_row = offset + bad + 1
            if self.task == "regression":
                return
            unique = pc.unique(_stripped(column, self.where, offset)).to_pylist()
            self.texts.update(unique)
            if len(self.texts) > MAX_STREAM_CLASSES:
                self.overflow = True
            return
        self.integers = self.integers and bool(np.all(values == np.floor(values)))
        if self.overflow or self.cap == 0:
            return
        unique, first = np.unique(values, return_index=True)
        new = [j for j, v in enumerate(unique.tolist()) if v not in self.numbers]
        if len(self.numbers) + len(new) > self.cap:
            self.overflow = True
            return
        if new:
            cells = _stripped(column, self.where, offset)
            names = cells.take(pa.array(first[new])).to_pylist()
            for j, cell in zip(new, names, strict=True):
                self.numbers[float(unique[j])] = cell

    def finish(self, n_rows: int, path: str, target_name: str):
        """(task, classes, class_values)."""
        task, inferred = self.task, self.task is None
        if inferred:
            if not self.numeric:
                task = "classification"
            else:
                limit = min(MAX_INFERRED_CLASSES, max(2, n_rows // 2))
                small = not self.overflow and len(self.numbers) <= limit
                task = "classification" if self.integers and small else "regression"
        if task == "regression":
            if not self.numeric:
                raise DataError(
                    f"{self.where}, data row {self.first_text_row}: not a number "
                    "(the regression target must be numeric)"
                )
            return task, None, None
        if self.overflow:
            most = self.cap if self.numeric else MAX_STREAM_CLASSES
            raise DataError(
                f"{self.where}: more than {most} distinct labels; too many "
                "classes to stream (pass task='regression' for a number)"
            )
        if self.numeric:
            keys = sorted(self.numbers)
            classes = tuple(self.numbers[v] for v in keys)
            values = np.array(keys, dtype=np.float64)
        else:
            classes = tuple(sorted(self.texts | set(self.numbers.values())))
            values = None
        if inferred:
            warn_many_classes(path, target_name, n_rows, len(classes))
        if len(classes) < 2:
            raise DataError(
                f"{self.where}: only one class ({classes[0]!r}) in {n_rows} rows; "
                "classification needs at least 2"
            )
        return task, classes, values


class _Moments:
    """Count, mean and sum of squared deviations per column, float64, merged
    chunk by chunk (Chan, Golub and LeVeque's pairwise update)."""

    def __init__(self, n_columns: int) -> None:
        self.n = 0
        self.mean = np.zeros(n_columns)
        self.m2 = np.zeros(n_columns)

    def add(self, X: NDArray) -> None:
        """Merge the rows of X, (m, n_columns); each column is taken in
        float64 as Standardizer.fit takes it (col.mean(), then the mean of
        squared deviations), so one chunk gives its results bit for bit."""
        m = X.shape[0]
        if m == 0:
            return
        mean, m2 = np.empty(X.shape[1]), np.empty(X.shape[1])
        for j in range(X.shape[1]):
            col = X[:, j].astype(np.float64)
            mean[j] = col.mean()
            d = col - mean[j]
            m2[j] = np.sum(d * d)
        if self.n == 0:
            self.n, self.mean, self.m2 = m, mean, m2
            return
        n = self.n + m
        delta = mean - self.mean
        self.mean = self.mean + delta * (m / n)
        self.m2 = self.m2 + m2 + delta * delta * (self.n * m / n)
        self.n = n

    def standardizer(self) -> Standardizer:
        std = np.sqrt(self.m2 / self.n)
        std[std == 0] = 1.0
        return Standardizer(self.mean, std)


def scan(
    source: Source,
    *,
    target: str | int | None = None,
    task: str | None = None,
    dtype: DTypeLike = np.float32,
    val_fraction: float = 0.0,
    seed: int | None = 0,
    name: str = "<stream>",
) -> StreamStats:
    """The first pass over a streamed table: rows, columns, task, labels and
    standardization statistics over the training rows.

    Parameters
    ----------
    source : callable returning an iterator of pyarrow.RecordBatch
        Read once here; every record batch must have the same columns.
    target, task : as in :func:`fastbp.data.load_csv`
    dtype : float32 or float64
        The training dtype: features are rounded to it before the statistics
        are taken, and values too large for it are errors.
    val_fraction : float in [0, 1)
        The expected share of validation rows (:func:`holdout_mask`).
    seed : int or None
        Seeds the validation hash; None draws one (kept in the result).
    name : str
        Names the data in error messages.

    Raises
    ------
    DataError
        One line naming the data row (from 1) and column at fault: a missing,
        non-numeric, non-finite or too large value, an unknown target, a
        record batch without a column, a single class, no training rows.
    """
    if task not in (None, *TASKS):
        raise ValueError(f"scan: task must be one of {TASKS} or None, got {task!r}")
    if not 0.0 <= float(val_fraction) < 1.0:
        raise ValueError(f"scan: val_fraction must be in [0, 1), got {val_fraction!r}")
    dtype = as_dtype(dtype, "scan")
    limit = float(np.finfo(dtype).max)
    if seed is None:
        seed = int(np.random.default_rng().integers(1 << 62))
    header: list[str] | None = None
    n_rows = 0
    for batch in _batches(source, name):
        if header is None:
            header = [str(c).strip() for c in batch.schema.names]
            if len(header) < 2 or len(set(header)) != len(header) or "" in header:
                raise DataError(
                    f"{name}: needs at least 2 distinctly named columns, got {header}"
                )
            t = target_index(target, header, name)
            target_name = header[t]
            features = [h for j, h in enumerate(header) if j != t]
            where = f"{name}, column {target_name!r}"
            labels = _TargetScan(task, where, limit)
            moments = _Moments(len(features))
            batch_names = list(batch.schema.names)
            feature_columns = [batch_names[j] for j in range(len(header)) if j != t]
            target_column = batch_names[t]
        c = batch.num_rows
        if c == 0:
            continue
        X = np.empty((c, len(features)), dtype)
        _fill_features(batch, feature_columns, n_rows, limit, X, name)
        try:
            labels.add(batch.column(target_column), n_rows)
        except KeyError:
            raise DataError(
                f"{name}: the record batch from data row {n_rows + 1} has no "
                f"column {target_name!r}"
            ) from None
        keep = ~holdout_mask(n_rows, c, float(val_fraction), seed)
        moments.add(X if keep.all() else X[keep])
        n_rows += c
    if header is None or n_rows == 0:
        raise DataError(f"{name}: no data rows")
    if moments.n == 0:
        raise DataError(
            f"{name}: val_fraction {val_fraction:g} leaves no training rows in "
            f"{n_rows} rows"
        )
    task, classes, values = labels.finish(n_rows, name, target_name)
    return StreamStats(
        n_rows=n_rows,
        n_train=moments.n,
        feature_names=tuple(features),
        target_name=target_name,
        task=task,
        classes=classes,
        scaler=moments.standardizer(),
        dtype=dtype,
        val_fraction=float(val_fraction),
        seed=seed,
        name=name,
        class_values=values,
    )


# --- the training pass -------------------------------------------------------


class _Reader:
    """Record batches as standardized (X, T) arrays of the training dtype,
    split into training and validation rows by the stats' hash."""

    def __init__(self, stats: StreamStats, loss_name: str, n_outputs: int) -> None:
        self.stats, self.loss_name, self.n_outputs = stats, loss_name, n_outputs
        self.limit = float(np.finfo(stats.dtype).max)
        self.where = f"{stats.name}, column {stats.target_name!r}"

    def chunks(self, source: Source) -> Iterator[tuple[NDArray, NDArray, NDArray]]:
        """(X, T, held_out) per record batch: X (c, n_features), T targets
        (int64 labels (c,), or (c, n_outputs) of the dtype), held_out bool (c,)."""
        stats = self.stats
        offset = 0
        feature_columns = target_column = None
        for batch in _batches(source, stats.name):
            if feature_columns is None:
                names = list(batch.schema.names)
                stripped = [str(c).strip() for c in names]
                lookup = dict(zip(stripped, names, strict=False))
                missing = [
                    c
                    for c in (*stats.feature_names, stats.target_name)
                    if c not in lookup
                ]
                if missing:
                    raise DataError(
                        f"{stats.name}: no column {missing[0]!r}; the statistics "
                        "were taken from another table"
                    )
                feature_columns = [lookup[c] for c in stats.feature_names]
                target_column = lookup[stats.target_name]
            c = batch.num_rows
            if c == 0:
                continue
            X = np.empty((c, stats.n_features), stats.dtype)
            _fill_features(batch, feature_columns, offset, self.limit, X, stats.name)
            _standardize(X, stats.scaler)
            try:
                column = batch.column(target_column)
            except KeyError:
                raise DataError(
                    f"{stats.name}: the record batch from data row {offset + 1} has "
                    f"no column {stats.target_name!r}"
                ) from None
            T = self._targets(column, offset)
            held_out = holdout_mask(offset, c, stats.val_fraction, stats.seed)
            yield X, T, held_out
            offset += c
        if offset != stats.n_rows:
            raise DataError(
                f"{stats.name}: the source gave {offset} rows, the first pass "
                f"counted {stats.n_rows}; it must give the same rows every time"
            )

    def _targets(self, column, offset: int) -> NDArray:
        stats, dtype = self.stats, self.stats.dtype
        if stats.task == "regression":
            values = _numbers(column, self.where, offset, self.limit)
            if values is None:
                raise DataError(
                    f"{self.where}, data rows from {offset + 1}: not a number (the "
                    "regression target must be numeric)"
                )
            return values.astype(dtype).reshape(-1, 1)
        index = self._labels(column, offset)
        if self.loss_name == "ce":
            return index
        if self.n_outputs == 1:
            return index.astype(dtype).reshape(-1, 1)
        return np.eye(self.n_outputs, dtype=dtype)[index]

    def _labels(self, column, offset: int) -> NDArray:
        import pyarrow as pa
        import pyarrow.compute as pc

        stats = self.stats
        if stats.class_values is not None:
            values = _numbers(column, self.where, offset, self.limit)
            ok = values is not None
            if ok:
                index = np.searchsorted(stats.class_values, values)
                index = np.minimum(index, len(stats.class_values) - 1)
                unseen = stats.class_values[index] != values
                ok = not unseen.any()
            if ok:
                return index.astype(np.int64)
        else:
            cells = _stripped(column, self.where, offset)
            found = pc.index_in(cells, value_set=pa.array(stats.classes))
            if not found.null_count:
                return found.to_numpy(zero_copy_only=False).astype(np.int64)
        raise DataError(
            f"{self.where}, data rows from {offset + 1}: a label the first pass did "
            "not see; the source must give the same rows every time"
        )


def _standardize(X: NDArray, scaler: Standardizer) -> None:
    """X = (X - mean) / std in place: the arithmetic of
    Standardizer.transform_ (float64, rounded once into X's dtype), on the
    whole chunk at once rather than column by column (3x faster here)."""
    wide = X.astype(np.float64)
    wide -= scaler.mean
    wide /= scaler.std
    X[...] = wide


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
        self.t = None  # _Moments of the targets, for r2

    def add(self, model: Sequential, X: NDArray, T: NDArray, batch: int) -> bool:
        """Adds rows X, T; False when the model's outputs are not finite."""
        for s in range(0, X.shape[0], batch):
            x, t = X[s : s + batch], T[s : s + batch]
            y = model.predict(x)
            if not all_finite(y):
                return False
            self.total += batch_loss_share(self.loss, self.loss.value(y, t), y.shape[0])
            self.rows += y.shape[0]
            if self.metric == "r2":
                if self.t is None:
                    self.t = _Moments(t.shape[1])
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
            self.shuffle_buffer,
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
        """Compile (or load) the kernel on one row: ``compile_seconds``."""
        start = time.perf_counter()
        run.engine.runner(
            self.pool.X[:1], self.pool.T[:1], self.batch_size, grad_norms=run.grad_norms
        ).warm_up()
        run.result.compile_seconds = time.perf_counter() - start

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
        if not (math.isfinite(value) and all_finite(run.model.flat_data)):
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
