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

import copy
import os
from collections.abc import Callable
from numbers import Real
from typing import Any, TypeVar

import numpy as np
from numpy.typing import DTypeLike

from .._validate import as_dtype
from .loading import DataError
from .plan import PlanError, PlanOptions, TableStats, infer_plan
from .problem import LOSS_NAMES, TASKS, Prepared, Problem
from .raw import TargetStats, check_header, code_target, target_name_of
from .stream import holdout_mask
from .tables import Part, file_part, format_of, part_table, with_lines

__all__ = [
    "LocalComm",
    "shard_part",
    "run_collectively",
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


def _add_stats(stats, features, train, first_row, path) -> None:
    """stats.add of this rank's training rows; a value too large for the
    dtype is a DataError naming the file."""
    try:
        stats.add(features, train, first_row)
    except PlanError as exc:
        raise DataError(f"{path}, {exc}") from None


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
    options: PlanOptions | None = None,
    scale_target: bool = False,
) -> Prepared:
    """This rank's share of a table file, ready for ``fastbp.train``.

    Collective: every rank of ``comm`` calls it with the same arguments. The
    rank reads only its share (:func:`fastbp.data.tables.part_table`); the
    ranks then merge their statistics (:class:`fastbp.data.raw.TargetStats`
    of the target, :class:`fastbp.data.plan.TableStats` of the training
    rows) in rank order, so every rank makes the same column plan, the one
    a single process makes of the whole file (to float64 rounding); see the
    module notes.

    Parameters
    ----------
    path : str or path-like
        A plain CSV or TSV, Parquet or Feather file that every rank can read.
    comm : communicator
        mpi4py's ``MPI.COMM_WORLD`` or any object with ``Get_rank()``,
        ``Get_size()`` and ``allgather(obj)``; :class:`LocalComm` for one
        process.
    target, task, dtype, format : as in :func:`fastbp.data.raw.raw_problem`
    loss : "mse", "ce" or None
        As in :meth:`fastbp.data.problem.Problem.prepare` (None: cross-entropy
        for classification, MSE for regression).
    val_fraction : float in [0, 1)
        About this share of the file's rows is held out, by
        ``fastbp.data.stream.holdout_mask`` of the row's number in the file
        and ``seed``; each rank holds out its own.
    seed : int or None
        Seeds the validation rows; None draws one on rank 0 for all.
    options : PlanOptions or None
        What the user says about the columns; ``options.strict``: clean
        numbers only, a missing or non-numeric cell is an error naming its
        line (CSV) or data row and column.
    scale_target : bool
        Regression: train on (y - mean) / std of every rank's training
        targets.

    Returns
    -------
    fastbp.data.problem.Prepared
        As the whole file's preparation, but with this rank's rows:
        ``X_train``/``T_train`` and ``X_val``/``T_val`` are its share,
        encoded and standardized by the shared plan; ``problem`` has the
        plan, task and classes, and ``problem.first_row`` the data rows
        before the share. ``metadata()`` and ``save()`` write the same model
        file on every rank. :func:`global_rows` gives the totals.

    Raises
    ------
    DataError
        On every rank, one line: ``"rank {r}: "`` and that rank's message for
        a bad cell in its share (with ``strict``: naming the file, the line
        (CSV) or data row of the whole file, and the column); without the
        prefix for what concerns the whole file (a single class, a rank with
        no rows or no training rows, no data rows at all).
    ValueError, TypeError
        Bad arguments, on every rank alike.
    """
    rank, size = _rank_size(comm, "load_shard")
    path = os.fspath(path)
    _check_arguments(task, loss, val_fraction)
    dtype = as_dtype(dtype, "load_shard")
    options = options or PlanOptions()
    if seed is None:
        drawn = int(np.random.default_rng().integers(1 << 62)) if rank == 0 else None
        seed = comm.allgather(drawn)[0]
    part = file_part(path, rank, size, format=format)
    table = run_collectively(comm, part_table, path, part, format=format)
    counts = comm.allgather(table.num_rows)
    first_row = sum(counts[:rank])
    _check_counts(path, format, size, counts)
    names = list(table.column_names)
    check_header(names, path)
    target_name = target_name_of(target, names, path)
    options.check_names(names, target_name, path)
    features = table.drop_columns([target_name])
    if options.strict:
        run_collectively(comm, _strict_part, features, first_row, path, format, options)
    held_out = holdout_mask(first_row, table.num_rows, float(val_fraction), seed)
    where = f"{path}, column {target_name!r}"
    labels = TargetStats(task, target_name, where, options.na_values, dtype)
    column = table.column(target_name)
    present = run_collectively(comm, labels.add, column, first_row, ~held_out)
    labels = _merged(comm, labels)
    task, classes, values = labels.finish()
    if loss == "ce" and task != "classification":  # known to every rank alike
        raise ValueError(
            "load_shard: loss 'ce' needs a classification target; use loss 'mse' "
            "for regression"
        )
    y, present = code_target(column, task, classes, values, options.na_values)
    train = present & ~held_out
    n_train = comm.allgather(int(train.sum()))
    if 0 in n_train:
        r = n_train.index(0)
        raise DataError(
            f"{path}: val_fraction {val_fraction:g} leaves rank {r} of {size} no "
            f"training rows (of its {counts[r]}); run fewer ranks"
        )
    stats = TableStats(features.schema, dtype, options, seed=seed)
    run_collectively(comm, _add_stats, stats, features, train, first_row, path)
    try:
        plan = infer_plan(_merged(comm, stats), options, where=path)
    except PlanError as exc:
        raise DataError(str(exc)) from None
    import pyarrow as pa

    keep = pa.array(present)
    rows = np.flatnonzero(present)
    problem = Problem(
        plan.encode(features.filter(keep), dtype), y[present], plan.inputs,
        target_name, task, classes, path, True,
        "ce" if task == "classification" else "mse", first_row, plan=plan,
        data_rows=rows + first_row,
    )  # fmt: skip
    scale = labels.scale() if scale_target and task == "regression" else None
    return run_collectively(
        comm, problem.prepare, loss=loss, dtype=dtype, copy=False,
        val_rows=held_out[present], target_scale=scale,
    )  # fmt: skip


def _check_arguments(task, loss, val_fraction) -> None:
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


def _check_counts(path, format, size, counts) -> None:
    """DataError, on every rank, for a file without rows or a rank without
    a share."""
    n_rows = sum(counts)
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


def _merged(comm, stats):
    """Every rank's statistics merged in rank order (the same on every rank;
    into a copy, since a communicator may hand out the objects themselves)."""
    everyone = comm.allgather(stats)
    merged = copy.deepcopy(everyone[0])
    for other in everyone[1:]:
        merged.merge(other)
    return merged


def _strict_part(features, first_row: int, path: str, format, options) -> None:
    """--strict on a share: DataError naming the line (CSV) or data row and
    column of its first missing or non-numeric cell."""
    from .stream import strict_cells

    try:
        strict_cells(features, features.column_names, first_row, path, options)
    except DataError as exc:
        raise DataError(with_lines(str(exc), path, format)) from None


def global_rows(comm: Any, prepared: Prepared) -> tuple[int, int]:
    """(training rows, validation rows) over every rank's shard. Collective."""
    _rank_size(comm, "global_rows")
    mine = (len(prepared.X_train), len(prepared.X_val))
    everyone = comm.allgather(mine)
    return sum(t for t, _ in everyone), sum(v for _, v in everyone)
