"""Raw tables: read as they are, their target coded, made into a problem
through the column plan (:mod:`fastbp.data.plan`).

:func:`read_raw` reads a whole CSV/TSV (every cell as text: the plan, not the
first block of the file, decides what a column holds), Parquet or Feather
file into a ``pyarrow.Table``. :class:`TargetStats` codes the target column
chunk by chunk (task, labels, rows without a target), the same rules for a
table in memory, streamed or sharded. :func:`raw_problem` makes a
:class:`fastbp.data.problem.Problem` of a raw table: rows without a target
dropped, the training/validation split, the plan of the training rows, and
every row encoded by it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from .loading import MAX_INFERRED_CLASSES, DataError, train_val_split, warn_many_classes
from .plan import (
    NA_VALUES,
    PlanError,
    PlanOptions,
    TableStats,
    infer_plan,
    kind_of,
    labels_of,
    numbers_of,
)
from .stats import Moments

__all__ = ["read_raw", "TargetStats", "RawTable", "raw_problem", "MAX_CLASSES"]

#: A classification target may have at most this many labels.
MAX_CLASSES = 65536


def read_raw(
    path: str,
    fmt: str,
    compression: str | None,
    source,
    columns=None,
    text_columns=(),
    na_values=NA_VALUES,
):
    """The whole file as a ``pyarrow.Table``.

    CSV and TSV are parsed by pyarrow's multithreaded reader with each
    spelling of a missing cell (``na_values``) as a null: a column whose
    every cell is a number (or missing) arrives as numbers, a column of
    true/false as bools, anything else (dates included) as text -- decided
    over the whole file: where a later block holds a cell
    the first block's type cannot take, the column is read again as text.
    ``text_columns`` (the target, forced categories) are always text, so
    that labels keep their spelling ("007"). Parquet and Feather keep their
    own types. ``source(path, compression)`` opens CSV bytes; ``columns``
    reads only those. DataError naming the file when it cannot be read.
    """
    import pyarrow as pa

    try:
        if fmt in ("csv", "tsv"):
            return _read_csv(
                path, fmt, compression, source, columns, text_columns, na_values
            )
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path, columns=columns)
        import pyarrow.ipc as ipc

        with pa.memory_map(path) as stream:
            try:
                table = ipc.open_file(stream).read_all()
            except pa.ArrowInvalid:
                stream.seek(0)
                table = ipc.open_stream(stream).read_all()
        return table.select(columns) if columns else table
    except UnicodeDecodeError:
        raise DataError(f"{path}: {read_problem(UnicodeError('utf-8'), fmt)}") from None
    except OSError as exc:
        from .tables import open_error

        raise open_error(path, exc) from None
    except pa.ArrowException as exc:
        ragged = None
        if "Expected" in str(exc) and "columns" in str(exc):
            from .tables import ragged_line

            ragged = ragged_line(path, fmt)
        raise DataError(
            f"{path}: {read_problem(exc, fmt)}"
            if ragged is None
            else f"{path}, {ragged}"
        ) from None


_CONVERSION = re.compile(r"In CSV column #(\d+): .*CSV conversion error")


def _read_csv(path, fmt, compression, source, columns, text_columns, na_values):
    """read_raw for CSV and TSV: typed by pyarrow, a column read again as
    text wherever a later block contradicts the type its first block gave,
    and dates read as text."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    names = list(_all_text(path, fmt, compression, source))
    types = {name: pa.string() for name in text_columns if name in names}
    parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
    for _ in range(len(names) + 1):
        convert = pacsv.ConvertOptions(
            column_types=types,
            include_columns=columns,
            null_values=list(na_values),
            strings_can_be_null=True,
            quoted_strings_can_be_null=True,
        )
        try:
            with source(path, compression) as stream:
                table = pacsv.read_csv(
                    stream, parse_options=parse, convert_options=convert
                )
            table.column_names  # names not UTF-8 raise here  # noqa: B018
        except pa.ArrowInvalid as exc:
            match = _CONVERSION.search(str(exc))
            if match is None or int(match.group(1)) >= len(names):
                raise
            types[names[int(match.group(1))]] = pa.string()
            continue
        # Dates stay text, read by the plan's own formats as a stream or a
        # shard reads them, so that every way of reading makes one plan.
        dates = [
            field.name
            for field in table.schema
            if pa.types.is_temporal(field.type) and field.name not in types
        ]
        if not dates:
            return table
        types.update({name: pa.string() for name in dates})
    raise DataError(f"{path}: cannot read as {fmt}")  # pragma: no cover


def read_problem(exc: Exception, fmt: str) -> str:
    """What a pyarrow read error means, in a few words and with what to do."""
    first = (str(exc).strip().splitlines() or ["error"])[0]
    if "UTF8" in first or "utf-8" in first.lower():
        return (
            "not UTF-8 text (a header or cell in another encoding, such as "
            "Latin-1; save the file as UTF-8)"
        )
    if "Expected" in first and "columns" in first:
        return f"a row has another number of fields than the header ({first})"
    return f"cannot read as {fmt} ({first})"


def _all_text(path, fmt, compression, source) -> dict:
    """Every CSV column typed as text, by the names of the header line."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
    with source(path, compression) as stream:
        names = pacsv.open_csv(stream, parse_options=parse).schema.names
    return {name: pa.string() for name in names}


def check_header(names: list[str], path: str) -> None:
    """DataError unless the columns have distinct names (one unnamed first
    column, pandas' index, is allowed) and there are at least two."""
    if len(names) < 2:
        raise DataError(
            f"{path}: needs at least 2 columns (features and a target), got "
            f"{len(names)}: {names}"
        )
    seen = set()
    for j, name in enumerate(names):
        if name == "" and j > 0:
            raise DataError(
                f"{path}, line 1, column {j + 1}: empty column name (only the "
                "first column, pandas' index, may be unnamed)"
            )
        if name in seen:
            raise DataError(f"{path}, line 1: column name {name!r} appears twice")
        seen.add(name)


def target_name_of(target, names: list[str], path: str) -> str:
    """The target column's name: by name, by 0-based index, or the last."""
    if target is None:
        return names[-1]
    if isinstance(target, str) and target in names:
        return target
    if isinstance(target, str) and target.isdigit():
        target = int(target)
    if isinstance(target, int) and not isinstance(target, bool):
        if -len(names) <= target < len(names):
            return names[target]
        raise DataError(
            f"{path}, line 1: target column index {target} is out of range for "
            f"{len(names)} columns (0..{len(names) - 1})"
        )
    raise DataError(
        f"{path}, line 1: target column {target!r} not found; available "
        f"columns: {', '.join(map(repr, names))}"
    )


class TargetStats:
    """The target column's task and labels, learned chunk by chunk: what
    :func:`fastbp.data.load_csv` infers from a whole column, mergeable.

    Missing cells (the plan's spellings) are counted and left out. The task:
    "classification" when any cell is text, or (task None) when the numbers
    are integers with at most ``min(MAX_INFERRED_CLASSES, max(2, n // 2))``
    distinct values; else "regression". Labels are sorted as strings (text)
    or by value (numbers, each named as first written).
    """

    def __init__(self, task: str | None, name: str, where: str, na_values, dtype):
        self.task, self.name, self.where = task, name, where
        self.na_values, self.dtype = tuple(na_values), np.dtype(dtype)
        self.limit = float(np.finfo(self.dtype).max)
        self.rows = self.missing = 0
        self.numeric, self.integers, self.overflow = True, True, False
        self.first_text: tuple[int, str] | None = None
        self.numbers: dict[float, tuple[int, str]] = {}  # value -> (row, text)
        self.texts: set[str] = set()
        self.moments = Moments(1)  # of the training rows' numbers

    def add(self, column, first_row: int, train: NDArray | None = None) -> NDArray:
        """Take a chunk of the column whose first row is the table's row
        ``first_row`` (0-based); ``train`` marks the training rows, whose
        numbers give the target's scale (all rows when None). Returns the
        rows that have a target (bool)."""
        import pyarrow as pa
        import pyarrow.compute as pc

        n = len(column)
        values, usable = numbers_of(column, self.na_values)
        if kind_of(column.type) == "number":
            # Typed numbers: missing is null or NaN, and no cell is text, so
            # only the first row of each class needs its text (below).
            cells, missing = None, np.isnan(values)
        else:
            cells = labels_of(column, self.na_values)
            missing = pc.equal(cells, "(missing)").to_numpy(zero_copy_only=False)
        self.rows += n
        self.missing += int(missing.sum())
        infinite = np.isinf(values)  # a number, but no target: missing
        if infinite.any():
            missing |= infinite
            self.missing += int(infinite.sum())
        too_large = usable & (np.abs(np.where(usable, values, 0)) > self.limit)
        if too_large.any():
            i = int(np.argmax(too_large))
            raise DataError(
                f"{self.where}, data row {first_row + i + 1}: {values[i]:g} is too "
                f"large for {self.dtype} (use float64)"
            )
        text = ~missing & ~usable
        if text.any() and self.first_text is None:
            i = int(np.argmax(text))
            self.first_text = (first_row + i + 1, cells[i].as_py())
        self.numeric &= not text.any()
        present = ~missing
        if not self.numeric:
            if self.task != "regression":
                unique = pc.unique(pc.filter(cells, pa.array(present)))
                self.texts.update(unique.to_pylist())
                self.overflow |= len(self.texts) > MAX_CLASSES
            return present
        good = values[present]
        self.integers &= bool(np.all(good == np.floor(good)))
        scaled = present if train is None else present & train
        self.moments.add(values[scaled].astype(self.dtype))
        if self.task == "regression" or self.overflow:
            return present
        unique, first = np.unique(good, return_index=True)
        new = [k for k, v in enumerate(unique.tolist()) if v not in self.numbers]
        if len(self.numbers) + len(new) > MAX_CLASSES:
            self.overflow = True
            return present
        if new:
            where = np.flatnonzero(present)[first[new]]
            rows = pa.array(where)
            names = (
                labels_of(column.take(rows), self.na_values) if cells is None
                else cells.take(rows)
            ).to_pylist()  # fmt: skip
            for k, row, text in zip(new, where.tolist(), names, strict=True):
                self.numbers[float(unique[k])] = (first_row + row, text)
        return present

    def merge(self, other: TargetStats) -> None:
        """Add a later chunk's (or rank's, in rank order) statistics."""
        self.rows += other.rows
        self.missing += other.missing
        if self.first_text is None:
            self.first_text = other.first_text
        self.numeric &= other.numeric
        self.integers &= other.integers
        self.overflow |= other.overflow
        self.texts |= other.texts
        self.moments.merge(other.moments)
        for value, (row, text) in other.numbers.items():
            if value not in self.numbers or row < self.numbers[value][0]:
                self.numbers[value] = (row, text)

    def scale(self) -> tuple[float, float]:
        """(mean, std) of the training rows' numeric targets (std 1 for a
        constant target): regression trains on (y - mean) / std."""
        mean, std = self.moments.mean_std()
        return float(mean[0]), float(std[0])

    def finish(self) -> tuple[str, tuple[str, ...] | None, NDArray | None]:
        """(task, classes, class values (numbers) or None): DataError for a
        text regression target, one class, too many labels."""
        n = self.rows - self.missing
        if n == 0:
            raise DataError(f"{self.where}: every target cell is missing")
        task, inferred = self.task, self.task is None
        if inferred:
            limit = min(MAX_INFERRED_CLASSES, max(2, n // 2))
            small = not self.overflow and len(self.numbers) <= limit
            if not self.numeric:
                task = "classification"
            else:
                task = "classification" if self.integers and small else "regression"
        if task == "regression":
            if not self.numeric:
                row, text = self.first_text
                raise DataError(
                    f"{self.where}, data row {row}: {text!r} is not a number (the "
                    "regression target must be numeric)"
                )
            return task, None, None
        if self.overflow:
            raise DataError(
                f"{self.where}: more than {MAX_CLASSES} distinct labels; too many "
                "classes (for a number to predict, use the regression task)"
            )
        if self.numeric:
            keys = sorted(self.numbers)
            classes = tuple(self.numbers[v][1] for v in keys)
            values = np.array(keys, dtype=np.float64)
        else:
            texts = {text for _, text in self.numbers.values()} | self.texts
            classes, values = tuple(sorted(texts)), None
        if inferred:
            warn_many_classes(self.where, self.name, n, len(classes))
        if len(classes) < 2:
            raise DataError(
                f"{self.where}: only one class ({classes[0]!r}) in {n} rows; "
                "classification needs at least 2"
            )
        return task, classes, values


def code_target(column, task, classes, class_values, na_values):
    """(y, present): the column coded for the task (regression: (n, 1)
    float64; classification: (n,) int64 indices into classes, -1 where
    missing) and a bool mask of the rows that have a target. Unknown labels
    are coded -1 and not present."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if task == "regression":
        values, usable = numbers_of(column, na_values)
        return values.reshape(-1, 1), usable
    if class_values is not None:
        values, usable = numbers_of(column, na_values)
        index = np.searchsorted(class_values, np.where(usable, values, 0))
        index = np.minimum(index, len(class_values) - 1)
        ok = usable & (class_values[index] == values)
        return np.where(ok, index, -1).astype(np.int64), ok
    cells = labels_of(column, na_values)
    index = pc.index_in(cells, value_set=pa.array(list(classes), pa.string()))
    index = pc.fill_null(index, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return index, index >= 0


def _stdin_once(path: str):
    """The opener of a file's bytes; standard input ("-") is read once and
    served from memory, so that the header and the rows can both be read."""
    from .tables import input_source

    if path != "-":
        return input_source
    import sys

    import pyarrow as pa

    data = sys.stdin.buffer.read()
    return lambda _path, _compression: pa.BufferReader(data)


@dataclass(frozen=True, eq=False)
class RawTable:
    """A table read as it is: ``table`` (pyarrow), the target's name, and
    where the data came from."""

    table: object
    target_name: str
    name: str
    options: PlanOptions | None = None

    @classmethod
    def read(
        cls, path, *, target=None, format=None, options: PlanOptions | None = None
    ) -> RawTable:
        """Read a file (see :func:`read_raw`; the target and the columns
        ``options`` forces categorical read as text) and find its target
        column."""
        from .tables import format_of, header_of

        path = os.fspath(path)
        options = options or PlanOptions()
        fmt, compression = format_of(path, format)
        source = _stdin_once(path)
        names = header_of(path, format) if path != "-" else []
        text = (
            [target_name_of(target, names, path), *options.categorical] if names else []
        )
        table = read_raw(
            path, fmt, compression, source, text_columns=text,
            na_values=options.na_values,
        )  # fmt: skip
        names = list(table.column_names)
        check_header(names, path)
        if table.num_rows == 0:
            raise DataError(f"{path}, line 1: header only, no data rows")
        return cls(table, target_name_of(target, names, path), path, options)

    @staticmethod
    def read_columns(path, columns, *, format=None, plan=None):
        """The named columns of a file as a ``pyarrow.Table`` read as in
        :func:`read_raw` (the plan's categorical and text-date columns as
        text; DataError naming any column it lacks)."""
        from .tables import format_of, header_of

        path = os.fspath(path)
        fmt, compression = format_of(path, format)
        present = header_of(path, format)
        missing = [c for c in columns if c not in present]
        if missing and present:
            raise DataError(
                f"{path}: no column {', '.join(map(repr, missing))}; columns: "
                f"{', '.join(map(repr, present))}"
            )
        text = plan.text_columns() if plan is not None else ()
        na = plan.na_values if plan is not None else NA_VALUES
        return read_raw(
            path, fmt, compression, _stdin_once(path), columns=list(columns),
            text_columns=text, na_values=na,
        )  # fmt: skip

    @property
    def feature_names(self) -> list[str]:
        return [n for n in self.table.column_names if n != self.target_name]


def raw_problem(
    raw: RawTable,
    *,
    task: str | None = None,
    dtype=np.float32,
    options: PlanOptions | None = None,
    val_fraction: float = 0.0,
    seed: int | None = 0,
    val_rows: NDArray | None = None,
):
    """(Problem, validation rows, rows dropped for a missing target) of a raw
    table: the target coded, its missing rows dropped, the split (stratified
    by class; or ``val_rows``, a bool mask over every row of the table, such
    as the stream's :func:`fastbp.data.stream.holdout_mask`), the plan of the
    training rows and every row encoded by it (unstandardized;
    ``Problem.plan`` holds the plan)."""
    from .problem import Problem

    path, table = raw.name, raw.table
    options = options or raw.options or PlanOptions()
    options.check_names(raw.table.column_names, raw.target_name, path)
    dtype = np.dtype(dtype)
    where = f"{path}, column {raw.target_name!r}"
    stats = TargetStats(task, raw.target_name, where, options.na_values, dtype)
    column = table.column(raw.target_name)
    stats.add(column, 0)
    task, classes, class_values = stats.finish()
    y, present = code_target(column, task, classes, class_values, options.na_values)
    kept = np.flatnonzero(present)
    y = y[kept]
    held = np.zeros(table.num_rows, dtype=bool)  # over every row of the file
    if val_rows is not None:
        held[:] = np.asarray(val_rows, dtype=bool)
    else:
        stratify = y if task == "classification" else None
        _, val_idx = train_val_split(len(y), val_fraction, seed, stratify=stratify)
        held[kept[val_idx]] = True
    features = table.drop_columns([raw.target_name])
    table_stats = TableStats(features.schema, dtype, options, seed=seed or 0)
    try:
        table_stats.add(features, present & ~held, 0)
        plan = infer_plan(table_stats, options, where=path)
    except PlanError as exc:
        message = str(exc)
        raise DataError(
            message if message.startswith(path) else f"{path}, {message}"
        ) from None
    dropped = len(present) - len(kept)
    data_rows = None
    if dropped:
        import pyarrow as pa

        features = features.filter(pa.array(present))
        data_rows = kept
    val_rows = held[kept]
    X = plan.encode(features, dtype)
    problem = Problem(
        X, y, plan.inputs, raw.target_name, task, classes, path, True,
        "ce" if task == "classification" else "mse", plan=plan, data_rows=data_rows,
    )  # fmt: skip
    return problem, val_rows, dropped
