"""Sharded input: each MPI rank reads only its share of a table file.

For data-parallel training on data sets that no single machine should hold,
:func:`load_shard` gives each rank of a communicator the training arrays of
its own share of the file, as :meth:`fastbp.problem.Problem.prepare` gives
them for the whole file, so that the rest of training takes the usual road.

What each rank reads (:func:`shard_part` plans it from the file's size or
metadata, :func:`read_shard` reads it; see :func:`fastbp.tables.file_part`):

- CSV and TSV: the header line (every rank), then its own byte range of the
  rest: the bytes are cut into ``size`` ranges of about equal length, each
  cut moved forward to the next line start, so every line is parsed by
  exactly one rank, by pyarrow, memory-mapped. A bad cell is reported as in
  one process, naming the line of the whole file: the rank then scans its
  own lines again with :func:`fastbp.data.read_csv_cells` and adds the
  newlines before its range, counted only then.
- Parquet: whole row groups, contiguous, balanced by row count; only those
  are read (:meth:`pyarrow.parquet.ParquetFile.iter_batches` with
  ``row_groups``, a record batch at a time).
- Feather (an Arrow IPC file): an even slice of the rows, memory-mapped; only
  the record batches that overlap it are touched.

What the ranks agree on, by ``comm.allgather`` of small objects (every rank
then reduces the same list in rank order, so all get the same bits):

- the target's task and labels (:func:`code_target`), by the rules of
  :func:`fastbp.data.load_csv` applied to the whole column: the same class
  indices everywhere, the same names as one process gives;
- the standardization statistics (:func:`shard_standardizer`): count, sum
  and sum of squared deviations from the global mean, over every rank's
  training rows, in float64; equal to :meth:`fastbp.data.Standardizer.fit`
  on the whole file's training rows to rounding (bit for bit on one rank);
- the validation rows: row r of the file (0-based, counted over all ranks)
  is held out when ``fastbp.stream.holdout_mask`` says so, the rule of
  ``--stream``: about ``val_fraction`` of the rows, not stratified, the same
  rows whatever the number of ranks (one process's ``prepare`` draws an
  exact, stratified count instead).

Training on shards is not training on the file: each rank shuffles only its
own rows, so the batches, and the model, differ from one process's (and from
one rank count to another); the loss curves agree, the weights do not.

Errors: a rank that fails (a bad cell in its share) must not leave the
others waiting in a collective. :func:`run_collectively` runs a step on
every rank and then lets them compare notes: if any failed, every rank
raises the same one-line ValueError (a DataError when the first failure
was one), ``"rank {r}: "`` and the first failing rank's message. Checks that
need every rank (a single class, a rank with no rows) are made on gathered
data, so every rank raises the same error by itself.

A rank with no rows is an error, raised on every rank: a CSV file with fewer
lines, a Parquet file with fewer row groups, or a Feather file with fewer
rows than ranks, or a validation split that leaves a rank no training row.

``comm`` is duck-typed on mpi4py's communicator: ``Get_rank()``,
``Get_size()`` and ``allgather(obj)``; mpi4py is never imported here.
:class:`LocalComm` is a communicator of one process. Limitations: standard
input and compressed CSV cannot be split (a gzip stream cannot be entered in
the middle), nor an Arrow stream (no index of its batches); a CSV field may
not hold a line break (pyarrow's fast reader refuses them anyway), and lines
end in ``\\n`` or ``\\r\\n``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from numbers import Real
from typing import Any, TypeVar

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validate import as_dtype
from .loading import (
    MAX_INFERRED_CLASSES,
    SQUARE_SAFE,
    DataError,
    Standardizer,
    warn_many_classes,
)
from .problem import LOSS_NAMES, TASKS, Prepared, Problem
from .stream import holdout_mask
from .tables import Part, TablePart, file_part, format_of, read_part

__all__ = [
    "LocalComm",
    "shard_part",
    "read_shard",
    "run_collectively",
    "code_target",
    "shard_standardizer",
    "load_shard",
    "global_rows",
]

T = TypeVar("T")


class LocalComm:
    """A communicator of one process, rank 0 of 1, with the methods of
    mpi4py's that this module calls: for the sharded path without MPI."""

    def Get_rank(self) -> int:
        return 0

    def Get_size(self) -> int:
        return 1

    def allgather(self, obj: object) -> list:
        return [obj]


def _rank_size(comm: Any, who: str) -> tuple[int, int]:
    """(rank, size) of a duck-typed communicator; TypeError if it is not one."""
    if not all(hasattr(comm, m) for m in ("Get_rank", "Get_size", "allgather")):
        raise TypeError(
            f"{who}: comm must be a communicator with Get_rank(), Get_size() and "
            f"allgather() (mpi4py's MPI.COMM_WORLD, or LocalComm()), got {comm!r}"
        )
    return int(comm.Get_rank()), int(comm.Get_size())


def shard_part(
    path: str | os.PathLike, rank: int, size: int, *, format: str | None = None
) -> Part:
    """The part of a table file that rank ``rank`` of ``size`` reads: CSV
    bytes, Parquet row groups or Feather rows, as
    :func:`fastbp.tables.file_part` plans them (no data is parsed)."""
    return file_part(path, rank, size, format=format)


def read_shard(
    path: str | os.PathLike,
    rank: int,
    size: int,
    *,
    target: str | int | None = None,
    task: str | None = None,
    dtype: DTypeLike = np.float32,
    format: str | None = None,
) -> TablePart:
    """Read only rank ``rank``'s share of a table file (of ``size`` shares).

    Parameters
    ----------
    path : str or path-like
        A plain CSV or TSV, Parquet or Feather file.
    rank, size : int
        This share and the number of shares, 0 <= rank < size.
    target, task, dtype, format : as in :func:`fastbp.tables.read_table`
        ``task`` is only checked here ("regression" refuses text targets);
        :func:`code_target` decides it for the whole file.

    Returns
    -------
    fastbp.tables.TablePart
        ``X`` of shape (n_rows, n_features) and ``dtype``, and the target
        cells, not yet coded. The shares of ranks 0..size-1, in order, are
        the file's rows, each once.

    Raises
    ------
    DataError
        One line naming the file, the line (CSV, of the whole file) or data
        row (Parquet, Feather) and the column of a bad cell.
    """
    return read_part(
        path, shard_part(path, rank, size, format=format),
        target=target, task=task, dtype=dtype, format=format,
    )  # fmt: skip


def run_collectively(comm: Any, fn: Callable[..., T], *args, **kwargs) -> T:
    """fn(*args, **kwargs) on every rank; if it raised on any rank, the same
    error on every rank.

    Each rank runs fn, catching any Exception, then the ranks gather
    (ok, message). If any failed, every rank raises a ValueError (a
    :class:`fastbp.data.DataError` when the first failure was one) whose
    message is ``"rank {r}: "`` followed by the first line of the first
    failing rank's message (an exception other than a ValueError is named by
    its type, a bug's traceback is kept on its own rank as the cause). So a
    rank that finds bad input ends all of them, and none waits for it in a
    later collective. With one process, fn's own exception is raised as it
    is.

    Every rank must call this (it is a collective); fn must not call
    collectives that a failure could skip.

    Returns
    -------
    fn's result on this rank.
    """
    rank, size = _rank_size(comm, "run_collectively")
    if size == 1:
        return fn(*args, **kwargs)
    result, failure = None, None
    try:
        result = fn(*args, **kwargs)
    except Exception as exc:  # told to every rank below
        failure = exc
    reports = comm.allgather(None if failure is None else _report(failure))
    for r, report in enumerate(reports):
        if report is not None:
            is_data, message = report
            error = (DataError if is_data else ValueError)(f"rank {r}: {message}")
            raise error from failure
    return result


def _report(exc: Exception) -> tuple[bool, str]:
    """(is a DataError, first line of the message) of an exception; other
    than a ValueError, the message starts with the exception's type."""
    lines = str(exc).strip().splitlines()
    message = lines[0] if lines else ""
    if not isinstance(exc, ValueError):
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return isinstance(exc, DataError), message


def code_target(
    comm: Any, part: TablePart, task: str | None = None
) -> tuple[NDArray, str, tuple[str, ...] | None]:
    """(y, task, classes) for this rank's rows, coded for the whole file.

    Collective. The task and labels follow :func:`fastbp.data.load_csv`'s
    rules over the whole target column: text anywhere means classification,
    labels sorted as strings; a numeric column with task None is
    classification when all its values are integers with at most
    ``min(MAX_INFERRED_CLASSES, max(2, n_rows // 2))`` distinct values over
    all ranks, labels sorted by value and named as first written in the file.
    A rank sends its distinct labels only when they can matter (at most
    MAX_INFERRED_CLASSES for an inferred task; all of them for
    "classification"; none for "regression").

    Parameters
    ----------
    comm : communicator (Get_rank, Get_size, allgather)
    part : TablePart
        This rank's share (:func:`read_shard`).
    task : {"regression", "classification"} or None (infer)

    Returns
    -------
    y : ndarray
        Regression: (n_rows, 1) float64. Classification: (n_rows,) int64
        class indices into ``classes``, the same on every rank.
    task : str
    classes : tuple of str, or None for regression

    Raises
    ------
    DataError
        On every rank alike: a classification with a single class, no rows
        on any rank.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    rank, _ = _rank_size(comm, "code_target")
    if task not in (None, *TASKS):
        raise ValueError(
            f"code_target: task must be one of {TASKS} or None, got {task!r}"
        )
    values = part.values
    numeric = values is not None
    integers = numeric and bool(np.all(values == np.floor(values)))
    labels = None  # (sorted distinct values, each one's first cell as written)
    if numeric and task != "regression":
        distinct, first = np.unique(values, return_index=True)
        if task == "classification" or (
            integers and len(distinct) <= MAX_INFERRED_CLASSES
        ):
            names = part.texts().take(pa.array(first)).to_pylist()
            labels = (distinct.tolist(), names)
    reports = comm.allgather((part.n_rows, numeric, integers, labels))
    n_rows = sum(n for n, _, _, _ in reports)
    inferred = task is None
    if all(is_numeric for _, is_numeric, _, _ in reports):
        if inferred:
            limit = min(MAX_INFERRED_CLASSES, max(2, n_rows // 2))
            few = all(ints and lab is not None for _, _, ints, lab in reports)
            keys = set().union(*(lab[0] for *_, lab in reports)) if few else ()
            task = "classification" if few and len(keys) <= limit else "regression"
        if task == "regression":
            return values.reshape(-1, 1), task, None
        first_names: dict[float, str] = {}
        for *_, (distinct, names) in reports:  # rank order: file order
            for value, name in zip(distinct, names, strict=True):
                first_names.setdefault(value, name)
        keys = sorted(first_names)
        classes = tuple(first_names[v] for v in keys)
        y = np.searchsorted(np.array(keys, dtype=np.float64), values)
    elif task == "regression":  # read_part refuses text for regression
        raise DataError(
            f"{part.path}, column {part.target_name!r}: a share holds text, but "
            "the regression target must be numeric (read it with task='regression')"
        )
    else:  # text somewhere: every cell is a label, as written
        task = "classification"
        texts = part.texts()
        everyone = comm.allgather(pc.unique(texts).to_pylist())
        classes = tuple(sorted(set().union(*everyone)))
        y = pc.index_in(texts, value_set=pa.array(classes, pa.string()))
        y = y.to_numpy(zero_copy_only=False)
    if not n_rows:
        raise DataError(f"{part.path}: no data rows")
    if inferred and rank == 0:
        warn_many_classes(part.path, part.target_name, n_rows, len(classes))
    if len(classes) < 2:
        raise DataError(
            f"{part.path}, column {part.target_name!r}: only one class "
            f"({classes[0]!r}) in {n_rows} rows; classification needs at least 2"
            + (
                "; for a number to predict, use the regression task"
                if all(is_numeric for _, is_numeric, _, _ in reports)
                else ""
            )
        )
    return np.asarray(y, dtype=np.int64).reshape(-1), task, classes


def shard_standardizer(
    comm: Any, X: NDArray, rows: NDArray | None = None
) -> Standardizer:
    """The standardization statistics of every rank's rows together.

    Collective. What :meth:`fastbp.data.Standardizer.fit` gives for the rows
    of all ranks stacked: per column, in float64, the mean (sum over ranks of
    each rank's sum, divided by the count) and the standard deviation (ddof
    0; the sum of squared deviations from that mean, likewise; 0 becomes 1),
    a column beyond 1e100 scaled by a power of two first, as ``fit`` does.
    Each sum is gathered and added in rank order on every rank, so every rank
    gets the same statistics, bit for bit; with one rank they are ``fit``'s,
    bit for bit.

    Parameters
    ----------
    comm : communicator (Get_rank, Get_size, allgather)
    X : ndarray of shape (n_samples, n_features), float32 or float64
        This rank's rows (any count, 0 included).
    rows : ndarray of bool, shape (n_samples,), optional
        The rows to use (the training rows); all when None.

    Returns
    -------
    Standardizer
        ``mean`` and ``std`` of shape (n_features,), float64.

    Raises
    ------
    ValueError
        On every rank alike, when no rank has a row to use.
    """
    _rank_size(comm, "shard_standardizer")
    X = np.asarray(X)
    if X.ndim != 2:
        raise ValueError(f"shard_standardizer: X must be 2-D, got shape {X.shape}")
    if rows is not None:
        rows = np.asarray(rows)
        if rows.dtype != np.bool_ or rows.shape != (X.shape[0],):
            raise ValueError(
                f"shard_standardizer: rows must be a bool array of shape "
                f"({X.shape[0]},), got {rows.dtype} {rows.shape}"
            )
    n_features = X.shape[1]

    def column(j: int) -> NDArray:
        col = X[:, j] if rows is None else X[rows, j]
        return col.astype(np.float64)

    n = X.shape[0] if rows is None else int(np.count_nonzero(rows))
    big = np.zeros(n_features)
    if n:
        for j in range(n_features):
            big[j] = np.max(np.abs(column(j)))
    counts = comm.allgather((n, big))
    total = sum(c for c, _ in counts)
    if total == 0:
        raise ValueError("shard_standardizer: no rank has a row to use")
    big = np.max([b for _, b in counts], axis=0)
    scale = np.ones(n_features)
    for j in range(n_features):
        if big[j] > SQUARE_SAFE and math.isfinite(big[j]):
            scale[j] = math.ldexp(1.0, math.frexp(big[j])[1] - 1)
    sums = np.zeros(n_features)
    if n:
        for j in range(n_features):
            sums[j] = np.sum(column(j) / scale[j] if scale[j] != 1 else column(j))
    mean = _ordered_sum(comm.allgather(sums)) / total
    squares = np.zeros(n_features)
    if n:
        for j in range(n_features):
            col = column(j) / scale[j] if scale[j] != 1 else column(j)
            d = col - mean[j]
            squares[j] = np.sum(d * d)
    std = np.sqrt(_ordered_sum(comm.allgather(squares)) / total) * scale
    std[std == 0] = 1.0
    return Standardizer(mean * scale, std)


def _ordered_sum(parts: list[NDArray]) -> NDArray:
    """The sum of the gathered vectors, added in rank order (the same bits on
    every rank; one vector is returned as it is)."""
    total = parts[0].copy()
    for part in parts[1:]:
        total += part
    return total


def load_shard(
    path: str | os.PathLike,
    comm: Any,
    *,
    target: str | int | None = None,
    task: str | None = None,
    loss: str | None = None,
    val_fraction: float = 0.0,
    seed: int | None = 0,
    dtype: DTypeLike = np.float32,
    format: str | None = None,
) -> Prepared:
    """This rank's share of a table file, ready for ``fastbp.train``.

    Collective: every rank of ``comm`` calls it with the same arguments. The
    rank reads only its share (:func:`read_shard`); the ranks then agree on
    the target's coding (:func:`code_target`), the validation rows and the
    standardization statistics (:func:`shard_standardizer`), all of the
    whole file; see the module notes.

    Parameters
    ----------
    path : str or path-like
        A plain CSV or TSV, Parquet or Feather file that every rank can read.
    comm : communicator
        mpi4py's ``MPI.COMM_WORLD`` or any object with ``Get_rank()``,
        ``Get_size()`` and ``allgather(obj)``; :class:`LocalComm` for one
        process.
    target, task, dtype, format : as in
        :meth:`fastbp.problem.Problem.from_file`
    loss : "mse", "ce" or None
        As in :meth:`fastbp.problem.Problem.prepare` (None: cross-entropy
        for classification, MSE for regression).
    val_fraction : float in [0, 1)
        About this share of the file's rows is held out, by
        ``fastbp.stream.holdout_mask`` of the row's number in the file and
        ``seed``; each rank holds out its own.
    seed : int or None
        Seeds the validation rows; None draws one on rank 0 for all.

    Returns
    -------
    fastbp.problem.Prepared
        As ``Problem.from_file(...).prepare(...)`` returns for the whole
        file, but with this rank's rows: ``X_train``/``T_train`` and
        ``X_val``/``T_val`` are its share, standardized with the whole
        file's statistics (``scaler``); ``problem`` has the whole file's
        feature names, task and classes, and ``problem.first_row`` the data
        rows before the share. ``metadata()`` and ``save()`` write the same
        model file on every rank. :func:`global_rows` gives the totals.

    Raises
    ------
    DataError
        On every rank, one line: ``"rank {r}: "`` and that rank's message for
        a bad cell in its share (naming the file, the line (CSV) or data row
        (Parquet, Feather) of the whole file, and the column); without the
        prefix for what concerns the whole file (a single class, a rank with
        no rows or no training rows, no data rows at all).
    ValueError, TypeError
        Bad arguments, on every rank alike (loss "ce" for a regression target
        once the target is read).
    """
    rank, size = _rank_size(comm, "load_shard")
    path = os.fspath(path)
    if task not in (None, *TASKS):
        raise ValueError(
            f"load_shard: task must be one of {TASKS} or None, got {task!r}"
        )
    if loss not in (None, *LOSS_NAMES):
        raise ValueError(f"load_shard: loss must be one of {LOSS_NAMES}, got {loss!r}")
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, Real)
        or not 0.0 <= float(val_fraction) < 1.0
    ):
        raise ValueError(
            f"load_shard: val_fraction must be in [0, 1), got {val_fraction!r}"
        )
    dtype = as_dtype(dtype, "load_shard")
    if seed is None:
        drawn = int(np.random.default_rng().integers(1 << 62)) if rank == 0 else None
        seed = comm.allgather(drawn)[0]
    part = run_collectively(
        comm, read_shard, path, rank, size,
        target=target, task=task, dtype=dtype, format=format,
    )  # fmt: skip
    counts = comm.allgather(part.n_rows)
    n_rows, first_row = sum(counts), sum(counts[:rank])
    if n_rows == 0:
        raise DataError(f"{path}: no data rows")
    if 0 in counts:
        unit = {"csv": "lines", "tsv": "lines", "parquet": "row groups"}.get(
            format_of(path, format)[0], "rows"
        )
        rows = f"{n_rows} rows are" if n_rows != 1 else "1 row is"
        raise DataError(
            f"{path}: rank {counts.index(0)} of {size} gets no data rows: the "
            f"file's {rows} shared out as whole {unit}; run fewer ranks"
        )
    y, task, classes = code_target(comm, part, task)
    if loss == "ce" and task != "classification":  # known to every rank alike
        raise ValueError(
            "load_shard: loss 'ce' needs a classification target; use loss 'mse' "
            "for regression"
        )
    held_out = holdout_mask(first_row, part.n_rows, float(val_fraction), seed)
    n_train = comm.allgather(part.n_rows - int(np.count_nonzero(held_out)))
    if 0 in n_train:
        r = n_train.index(0)
        raise DataError(
            f"{path}: val_fraction {val_fraction:g} leaves rank {r} of {size} no "
            f"training rows (of its {counts[r]}); run fewer ranks"
        )
    problem = Problem(
        part.X, y, part.feature_names, part.target_name, task, classes, path,
        True, "ce" if task == "classification" else "mse", first_row,
    )  # fmt: skip
    del part  # its X is the problem's, prepared in place below
    scaler = shard_standardizer(comm, problem.X, rows=~held_out)
    return run_collectively(
        comm, problem.prepare,
        loss=loss, dtype=dtype, copy=False, scaler=scaler, val_rows=held_out,
    )  # fmt: skip


def global_rows(comm: Any, prepared: Prepared) -> tuple[int, int]:
    """(training rows, validation rows) over every rank's shard. Collective."""
    _rank_size(comm, "global_rows")
    mine = (len(prepared.X_train), len(prepared.X_val))
    everyone = comm.allgather(mine)
    return sum(t for t, _ in everyone), sum(v for _, v in everyone)
