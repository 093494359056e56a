"""Tabular input at C speed: CSV and TSV (plain, gzip, zstd), Parquet and
Arrow/Feather, read with pyarrow's multithreaded readers.

:func:`read_table` turns a file into a :class:`fastbp.data.Dataset` the way
:func:`fastbp.data.load_csv` does (header row, target by name or index,
labels, task inference), but parses in C: the columns go straight into one
C-contiguous array of the training dtype, with no float64 copy of the whole
table. Every promise of ``load_csv`` is kept by construction: the fast path
is accepted only when each feature column came out numeric, complete, finite
and within the dtype's range; otherwise the file is read again by
``load_csv``'s line-by-line scanner, which names the line and column at fault
(or, for a form only it accepts, such as numbers with surrounding spaces,
returns the same result slowly). Parquet and Feather files carry types, so
their errors name the data row (from 1) and column instead.

Formats are chosen by extension (``.csv``, ``.tsv``, ``.csv.gz``,
``.csv.zst``, ``.parquet``/``.pq``, ``.feather``/``.arrow``/``.ipc``) or by
``format=``; ``"-"`` is CSV on standard input.

A file can also be read in contiguous parts (for :mod:`fastbp.data.shard`, one
per MPI rank): :func:`file_part` plans a part from the file's size or
metadata (CSV byte ranges cut at line starts, Parquet row groups, Feather
rows) and :func:`part_table` reads only its rows (every CSV cell as text, for
the column plan).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validate import as_dtype, positive_int
from .loading import (
    DataError,
    Dataset,
    encode_target,
    infer_numeric_task,
    load_csv,
    target_index,
    warn_many_classes,
)

__all__ = [
    "FORMATS",
    "format_of",
    "read_columns",
    "read_table",
    "iter_batches",
    "header_of",
    "batch_array",
    "Part",
    "file_part",
    "count_newlines",
    "line_of_row",
    "with_lines",
    "ragged_line",
    "input_source",
    "part_table",
    "open_error",
]

#: Formats by name, as ``format=`` and ``fastbp train --format`` take them.
FORMATS = ("csv", "tsv", "parquet", "feather")
_BY_EXTENSION = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".feather": "feather",
    ".arrow": "feather",
    ".ipc": "feather",
}
_COMPRESSION = {".gz": "gzip", ".zst": "zstd"}
_STDIN = "-"


def format_of(
    path: str | os.PathLike, format: str | None = None
) -> tuple[str, str | None]:
    """(format, compression) of path: by ``format`` if given, else by its
    extension; compression is "gzip", "zstd" or None (from ``.gz``/``.zst``).

    Raises ValueError for an unknown format or extension, naming the path.
    """
    name = os.fspath(path)
    compression = None
    stem, ext = os.path.splitext(name.lower())
    if ext in _COMPRESSION:
        compression = _COMPRESSION[ext]
        stem, ext = os.path.splitext(stem)
    if format is not None:
        if format not in FORMATS:
            raise ValueError(f"format must be one of {FORMATS}, got {format!r}")
        return format, compression
    if name == _STDIN:
        return "csv", None
    if ext not in _BY_EXTENSION or (compression and ext not in (".csv", ".tsv")):
        raise ValueError(
            f"{name}: unknown file type; expected .csv or .tsv (optionally .gz or "
            ".zst), .parquet or .feather, or give the format"
        )
    return _BY_EXTENSION[ext], compression


def input_source(path: str, compression: str | None):
    """A pyarrow input stream for path (standard input for "-")."""
    import pyarrow as pa

    if path == _STDIN:
        return pa.BufferReader(sys.stdin.buffer.read())
    return pa.input_stream(path, compression=compression)


def open_error(path: str, exc: OSError) -> DataError:
    """The one-line DataError of an OSError reading path."""
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{path}: no such file")
    if isinstance(exc, IsADirectoryError) or os.path.isdir(path):
        return DataError(f"{path}: is a directory, not a data file")
    if exc.strerror is None:  # a read error of the data, not of the file
        return DataError(f"{path}: cannot read ({exc}); is the file whole?")
    return DataError(f"{path}: cannot open ({exc.strerror})")


def _header(path: str, fmt: str, compression: str | None) -> list[str]:
    """The column names, read from the first block only."""
    import pyarrow as pa

    try:
        if fmt in ("csv", "tsv"):
            import pyarrow.csv as pacsv

            parse = pacsv.ParseOptions(delimiter="\t" if fmt == "tsv" else ",")
            with input_source(path, compression) as stream:
                return list(pacsv.open_csv(stream, parse_options=parse).schema.names)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return list(pq.read_schema(path).names)
        return list(next(_batches(path, fmt, None)).schema.names)
    except StopIteration:
        return []
    except OSError as exc:
        raise open_error(path, exc) from None
    except UnicodeDecodeError as exc:  # a header that is not UTF-8
        from .raw import read_problem

        raise DataError(f"{path}: {read_problem(exc, fmt)}") from None
    except pa.ArrowException:
        return []  # the full read (or the slow scanner) reports it


def _fill(out: NDArray, columns: list, names: list[str], offset: int = 0) -> str | None:
    """out[:, k] = columns[k] (pyarrow Arrays of data rows offset+1...); why
    not, as "column 'name': data row i ..." (i from 1), or None when done.

    Only numeric, complete, finite values within out's dtype range pass. The
    columns are cast as they are copied; one pass over the (contiguous) block
    then checks them all, and only a failing block is searched for the cell.
    """
    import pyarrow as pa

    for k, (name, column) in enumerate(zip(names, columns, strict=True)):
        if not (pa.types.is_integer(column.type) or pa.types.is_floating(column.type)):
            return f"column {name!r}: holds {column.type} values, not numbers"
        if column.null_count:
            nulls = column.is_null().to_numpy(zero_copy_only=False)
            row = offset + int(np.argmax(nulls)) + 1
            return f"column {name!r}: data row {row} is empty"
        with np.errstate(over="ignore", invalid="ignore"):
            out[:, k] = column.to_numpy()
    largest = np.finfo(out.dtype).max
    # A value that overflowed the cast is inf; one just above the largest
    # float32 rounds to it, so values at the edge are checked exactly.
    if out.size == 0 or (
        np.isfinite(out).all() and -largest < out.min() and out.max() < largest
    ):
        return None
    for name, column in zip(names, columns, strict=True):
        values = column.to_numpy()
        bad = ~np.isfinite(values) if values.dtype.kind == "f" else None
        if bad is not None and bad.any():
            row = offset + int(np.argmax(bad)) + 1
            return f"column {name!r}: data row {row} is NaN or infinite"
        too_large = np.abs(values) > float(largest)
        if too_large.any():
            row = offset + int(np.argmax(too_large)) + 1
            return (
                f"column {name!r}: data row {row} is too large for {out.dtype} "
                "(use float64)"
            )
    return None


def read_columns(
    path: str | os.PathLike,
    columns: list[str],
    *,
    dtype: DTypeLike = np.float32,
    format: str | None = None,
) -> NDArray:
    """The named numeric columns of a file, in this order, as one C-contiguous
    array of shape (n_rows, len(columns)) and ``dtype``; other columns are
    ignored. Raises DataError naming the file (and, for CSV, the line and
    column; for Parquet/Feather the data row and column) on a missing column
    or a bad value."""
    path = os.fspath(path)
    dtype = np.dtype(dtype)
    fmt, compression = format_of(path, format)
    if path == _STDIN:
        return _from_bytes(
            path, fmt, lambda p: read_columns(p, columns, dtype=dtype, format=fmt)
        )

    def slow_read(p: str) -> NDArray:
        from .loading import load_features

        X = load_features(p, columns, dtype=dtype, delimiter=_delimiter(fmt))
        return np.ascontiguousarray(X, dtype=dtype)

    header = [name.strip() for name in _header(path, fmt, compression)]
    missing = [c for c in columns if c not in header]
    if missing and header:
        raise DataError(
            f"{path}: the model takes {len(columns)} features "
            f"({', '.join(map(repr, columns))}); missing "
            f"{', '.join(map(repr, missing))}"
        )
    try:
        if missing or len(set(header)) != len(header):
            raise _NotFast(f"{path}: cannot read the header")
        numeric = [header.index(c) for c in columns]
        X, _ = _read_columns(path, fmt, compression, header, numeric, (), dtype)
    except _NotFast as exc:
        if fmt in ("csv", "tsv"):
            return _slow(path, fmt, compression, slow_read)
        raise DataError(str(exc)) from None
    return X


def read_table(
    path: str | os.PathLike,
    *,
    target: str | int | None = None,
    task: str | None = None,
    dtype: DTypeLike = np.float32,
    format: str | None = None,
    progress=None,
):
    """Read a table into a :class:`fastbp.data.Dataset` (X of ``dtype``).

    Parameters
    ----------
    path : str or path-like, or "-" for CSV on standard input
    target, task : as in :func:`fastbp.data.load_csv` (the last column and
        an inferred task by default)
    dtype : float32 or float64
        Of the feature array ``Problem.X`` (and of regression targets'
        range check); values too large for it are errors.
    format : one of FORMATS, or None to use the extension
    progress : object with ``update(rows, bytes=...)``, or None
        Told after each record batch the rows converted and the bytes read
        (see :func:`fastbp.progress.progress`).

    Raises
    ------
    DataError
        One line naming the file and the line (CSV; data row for Parquet and
        Feather) and column at fault, as ``load_csv`` describes.
    """
    if task not in (None, "regression", "classification"):
        raise ValueError(
            f"read_table: task must be 'regression', 'classification' or None, "
            f"got {task!r}"
        )
    path = os.fspath(path)
    dtype = as_dtype(dtype, "read_table")
    fmt, compression = format_of(path, format)
    if path == _STDIN:
        return _from_bytes(
            path,
            fmt,
            lambda p: read_table(p, target=target, task=task, dtype=dtype, format=fmt),
        )

    def slow() -> Dataset:
        """load_csv on the (decompressed) file: its exact error, or its result."""
        data = _slow(
            path,
            fmt,
            compression,
            lambda p: load_csv(
                p, target=target, task=task, dtype=dtype, delimiter=_delimiter(fmt)
            ),
        )
        X = np.ascontiguousarray(data.X, dtype=dtype)
        return Dataset(
            X, data.y, data.feature_names, data.target_name, data.task, data.classes,
            path,
        )  # fmt: skip

    header = [name.strip() for name in _header(path, fmt, compression)]
    if len(header) < 2 or len(set(header)) != len(header) or "" in header:
        if fmt in ("csv", "tsv"):
            return slow()
        raise DataError(
            f"{path}: needs at least 2 distinctly named columns, got {header}"
        )
    try:
        t = target_index(target, header, path)
    except DataError:
        if fmt in ("csv", "tsv"):
            return slow()
        raise
    features = [j for j in range(len(header)) if j != t]
    limit = float(np.finfo(dtype).max)
    try:
        X, (cells,) = _read_columns(
            path, fmt, compression, header, features, (t,), dtype, progress
        )
        coded = _numeric_target(cells, task, header[t], path, limit)
        if coded is None:  # text labels, or a cell only the slow rules explain
            coded = encode_target(
                _as_text(cells).to_pylist(), task=task, target_name=header[t],
                path=path, limit=limit,
            )  # fmt: skip
        y, task, classes = coded
    except _NotFast as exc:
        if fmt in ("csv", "tsv"):
            return slow()
        raise DataError(str(exc)) from None
    except DataError:
        if fmt in ("csv", "tsv"):
            return slow()
        raise
    names = tuple(header[j] for j in features)
    return Dataset(X, y, names, header[t], task, classes, path)


class _NotFast(Exception):
    """The fast reader cannot vouch for this file; the message says why."""


def _read_columns(
    path, fmt, compression, header, numeric, text, dtype, progress=None, part=None
):
    """(X, texts): the ``numeric`` columns (indices into header) as one
    C-contiguous (n_rows, len(numeric)) array of dtype, and each ``text``
    column's stripped cells, read record batch by record batch: of the whole
    file, or of a :class:`Part` of it (which may hold no rows; data rows in
    messages then count from the part's ``first_row``).

    Each batch is cast straight into its rows of X: memory beyond X is one
    batch. Parquet and Feather files state their row count, so X is
    allocated once. CSV's count is known only at the end, so X grows: its
    capacity doubles with ``ndarray.resize``, which reallocates in place
    (for large arrays the C library remaps the pages, copying nothing), and
    the rows never written cost no memory; at the end X is cut to the rows
    read. Raises _NotFast naming the column and data row when a value is not
    a usable number.
    """
    import pyarrow as pa

    types = None
    if fmt in ("csv", "tsv"):
        types = {header[j]: pa.float64() for j in numeric}
        types.update({header[j]: pa.string() for j in text})
    names = [header[j] for j in numeric]
    texts, offset, k = [[] for _ in text], 0, len(numeric)
    row0 = (part.first_row or 0) if part is not None else 0
    try:
        n_rows = _row_count(path, fmt, part)
        X = np.empty((n_rows or 0, k), dtype)
        batches = _batches(
            path, fmt, compression, types, progress=progress, part=part,
            column_names=header if part is not None else None,
        )  # fmt: skip
        for batch in batches:
            rows = batch.num_rows
            if offset + rows > X.shape[0]:
                if n_rows is not None:
                    raise _NotFast(f"{path}: more rows than its metadata states")
                X.resize(
                    (max(2 * X.shape[0], offset + rows, 1 << 16), k), refcheck=False
                )
            block = X[offset : offset + rows]
            columns = [batch.column(j) for j in numeric]
            reason = _fill(block, columns, names, row0 + offset)
            del block  # no view may outlive a resize
            if reason:
                raise _NotFast(f"{path}, {reason}")
            for cells, j in zip(texts, text, strict=True):
                cells.append(_stripped_text(batch.column(j), keep_numbers=True))
            offset += rows
    except OSError as exc:
        raise open_error(path, exc) from None
    except pa.ArrowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "error"
        raise _NotFast(f"{path}: cannot read as {fmt} ({first})") from None
    if offset == 0 and part is None:
        raise _NotFast(f"{path}: no data rows")
    if n_rows is None:
        X.resize((offset, k), refcheck=False)
    elif offset != n_rows:
        raise _NotFast(f"{path}: fewer rows than its metadata states")
    # Hand the freed batches back to the system: pyarrow's pool keeps them.
    pa.default_memory_pool().release_unused()
    return X, [
        pa.concat_arrays(cells) if cells else pa.array([], pa.string())
        for cells in texts
    ]


def _row_count(path: str, fmt: str, part: Part | None = None) -> int | None:
    """Rows of a Parquet or Arrow file (or of a part of it), from its
    metadata; None for CSV and Arrow streams."""
    if part is not None and fmt == "feather":
        return part.stop - part.start
    if fmt == "parquet":
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(path).metadata
        if part is not None:
            groups = range(part.start, part.stop)
            return sum(metadata.row_group(i).num_rows for i in groups)
        return metadata.num_rows
    if fmt == "feather":
        import pyarrow as pa
        import pyarrow.ipc as ipc

        with pa.memory_map(path) as source:
            try:
                return ipc.open_file(source).count_rows()
            except pa.ArrowInvalid:
                return None  # an Arrow stream: no footer
    return None


def batch_array(
    batch, columns: list[str], dtype: DTypeLike, offset: int = 0
) -> NDArray:
    """The named columns of a ``pyarrow.RecordBatch`` as one C-contiguous
    (n_rows, len(columns)) array of dtype. Raises DataError naming the
    column and data row (offset + 1 counts from the batch's first row) when a
    value is not a finite number within dtype's range."""
    out = np.empty((batch.num_rows, len(columns)), np.dtype(dtype))
    names = batch.schema.names
    chosen = [batch.column(names.index(name)) for name in columns]
    reason = _fill(out, chosen, list(columns), offset)
    if reason:
        raise DataError(reason)
    return out


def _batches(
    path, fmt, compression, column_types=None, batch_rows=65536, columns=None,
    progress=None, part=None, column_names=None,
):  # fmt: skip
    """Record batches of the file (all columns, or the named ones), read as
    they are consumed; CSV columns typed by column_types (name -> pyarrow
    type) when given. ``progress.update(rows, bytes=...)``, when given, hears
    of each batch: its rows and, for CSV, the bytes of the file read so far.

    With a :class:`Part`, only its rows: its CSV bytes (lines without a
    header, named by ``column_names``, memory-mapped), Parquet row groups or
    Feather rows."""
    import pyarrow as pa

    if part is not None:
        yield from _part_batches(
            path, fmt, part, column_types, batch_rows, columns, column_names
        )
        return
    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(block_size=1 << 20)
        parse = pacsv.ParseOptions(delimiter=_delimiter(fmt))
        convert = pacsv.ConvertOptions(
            include_columns=columns,
            column_types=column_types or {},
            strings_can_be_null=False,
        )
        with input_source(path, compression) as stream:
            reader = pacsv.open_csv(
                stream, read_options=read, parse_options=parse, convert_options=convert
            )
            done = 0
            for batch in reader:
                if progress is not None:
                    position = stream.tell()
                    progress.update(batch.num_rows, bytes=position - done)
                    done = position
                yield batch
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        # Buffered reads, not the whole row group's pages at once; a batch's
        # columns are decoded in parallel.
        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        for batch in parquet.iter_batches(batch_size=batch_rows, columns=columns):
            if progress is not None:
                progress.update(batch.num_rows)
            yield batch
    else:
        import pyarrow.ipc as ipc

        with pa.memory_map(path) as source:
            try:
                reader = ipc.open_file(source)
                batches = (
                    reader.get_batch(i) for i in range(reader.num_record_batches)
                )
            except pa.ArrowInvalid:  # the Arrow stream format
                source.seek(0)
                batches = ipc.open_stream(source)
            for batch in batches:
                if progress is not None:
                    progress.update(batch.num_rows)
                yield batch.select(columns) if columns else batch


def _delimiter(fmt: str) -> str:
    return "\t" if fmt == "tsv" else ","


def _stripped_text(column, keep_numbers: bool = False):
    """The column's cells as a pyarrow string array, surrounding spaces
    stripped (numbers written back as text when the file stores them typed,
    unless keep_numbers). Kept as Arrow data, not Python strings: a few bytes
    a row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not (pa.types.is_string(column.type) or pa.types.is_large_string(column.type)):
        if column.null_count:
            raise _NotFast("the target column has an empty cell")
        if keep_numbers and (
            pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
        ):
            return column
        column = pc.cast(column, pa.string())
    return pc.utf8_trim_whitespace(column)


def _as_text(cells):
    """A pyarrow array as strings (numbers written as pyarrow writes them)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    return cells if pa.types.is_string(cells.type) else pc.cast(cells, pa.string())


def _numeric_target(cells, task, target_name, path, limit):
    """(y, task, classes) for a target column whose every cell is a finite
    number within limit, coded as load_csv codes it, vectorized; None when a
    cell is not such a number (the caller then applies load_csv's rules)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    try:
        values = pc.cast(cells, pa.float64()).to_numpy(zero_copy_only=False)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if not np.all(np.isfinite(values)) or np.abs(values).max() > limit:
        return None
    inferred = task is None
    task = infer_numeric_task(values) if inferred else task
    if task == "regression":
        return values.reshape(-1, 1), task, None
    unique, first, index = np.unique(values, return_index=True, return_inverse=True)
    if len(unique) < 2:
        return None
    # Each class is named by its first cell, as written.
    classes = tuple(_as_text(cells.take(pa.array(first))).to_pylist())
    if inferred:
        warn_many_classes(path, target_name, len(values), len(classes))
    return index.astype(np.int64).reshape(-1), task, classes


def _slow(path: str, fmt: str, compression: str | None, read):
    """read(p) on a plain-text copy of path (decompressed if needed); messages
    name the original path."""
    if compression is None:
        return read(path)
    import pyarrow as pa

    with tempfile.TemporaryDirectory() as folder:
        plain = os.path.join(folder, "data.txt")
        with (
            pa.input_stream(path, compression=compression) as src,
            open(plain, "wb") as dst,
        ):
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        try:
            return read(plain)
        except DataError as exc:
            raise DataError(str(exc).replace(plain, path)) from None


def _from_bytes(path: str, fmt: str, read):
    """Standard input, saved to a temporary file so that a failing fast read
    can be scanned again; messages say <stdin>."""
    with tempfile.TemporaryDirectory() as folder:
        copy = os.path.join(folder, "stdin." + fmt)
        with open(copy, "wb") as f:
            while chunk := sys.stdin.buffer.read(1 << 20):
                f.write(chunk)
        try:
            return read(copy)
        except DataError as exc:
            raise DataError(str(exc).replace(copy, "<stdin>")) from None


def iter_batches(
    path: str | os.PathLike,
    *,
    format: str | None = None,
    columns: list[str] | None = None,
    batch_rows: int = 65536,
    text: bool = False,
    text_columns: list[str] = (),
) -> Iterator:
    """The file as a stream of ``pyarrow.RecordBatch``, read from disk as they
    are consumed.

    Parameters
    ----------
    path : str or path-like, or "-" for CSV on standard input
    format : one of FORMATS, or None to use the extension
    columns : list of str, optional
        Columns to read, in file order; None for all.
    batch_rows : int
        Rows per batch for Parquet; CSV batches are 1 MB blocks of text and
        Arrow files keep the batches they were written with.
    text : bool
        CSV: read every column as text (the column plan reads the cells);
        otherwise the named columns are typed float64.
    text_columns : list of str
        CSV: columns read as text whatever ``text`` says.
    """
    import pyarrow as pa

    path = os.fspath(path)
    fmt, compression = format_of(path, format)
    batch_rows = positive_int(batch_rows, "iter_batches", "batch_rows")
    types = None
    if fmt in ("csv", "tsv"):
        if text:
            names = columns or _header(path, fmt, compression)
            types = {name: pa.string() for name in names}
        else:
            types = {name: pa.float64() for name in columns or ()}
        types.update({name: pa.string() for name in text_columns})
    if columns is not None:
        present = header_of(path, format)
        missing = [c for c in columns if c not in present]
        if missing and present:
            raise DataError(
                f"{path}: no column {', '.join(map(repr, missing))}; columns: "
                f"{', '.join(map(repr, present))}"
            )
    yield from _batches(path, fmt, compression, types, batch_rows, columns)


def header_of(path: str | os.PathLike, format: str | None = None) -> list[str]:
    """The file's column names (the first block's, for CSV), without
    reading its rows; [] when it has none or cannot be read as a table."""
    path = os.fspath(path)
    if path == _STDIN:
        return []
    fmt, compression = format_of(path, format)
    return _header(path, fmt, compression)


def read_arrow(path: str | os.PathLike, *, format: str | None = None):
    """The whole file as a ``pyarrow.Table`` (CSV read by pyarrow's
    multithreaded reader, column types inferred).

    Raises DataError naming the file when it cannot be opened or parsed.
    """
    import pyarrow as pa

    path = os.fspath(path)
    fmt, compression = format_of(path, format)
    try:
        if fmt in ("csv", "tsv"):
            import pyarrow.csv as pacsv

            parse = pacsv.ParseOptions(delimiter=_delimiter(fmt))
            with input_source(path, compression) as stream:
                return pacsv.read_csv(stream, parse_options=parse)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            return pq.read_table(path)
        return pa.Table.from_batches(list(_batches(path, fmt, None)))
    except OSError as exc:
        raise open_error(path, exc) from None
    except pa.ArrowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "error"
        raise DataError(f"{path}: cannot read as {fmt} ({first})") from None


# --- parts of a file, for sharded reading ----------------------------------


@dataclass(frozen=True)
class Part:
    """A contiguous share of a table file's data rows: :func:`file_part`
    plans one, :func:`part_table` reads it.

    Attributes
    ----------
    start, stop : int
        CSV and TSV: bytes [start, stop) of the file, whole lines after the
        header line. Parquet: row groups [start, stop). Feather: data rows
        [start, stop). ``start == stop`` is a part without rows.
    first_row : int or None
        Data rows of the file before the part's first row; None for CSV,
        where only the bytes before the part would tell.
    header_end : int
        CSV and TSV: the byte just after the header line (0 otherwise).
    """

    start: int
    stop: int
    first_row: int | None
    header_end: int = 0


def file_part(
    path: str | os.PathLike, index: int, n_parts: int, *, format: str | None = None
) -> Part:
    """Part ``index`` of ``n_parts`` contiguous parts of a table file, planned
    from the file's size or metadata alone (no data is parsed).

    CSV and TSV: the bytes after the header line are cut into ``n_parts``
    ranges of about equal size, each cut moved forward to the next line start
    (so every line belongs to exactly one part; a part may be empty when a
    line is longer than a part). Parquet: whole row groups, contiguous,
    balanced by row count (each cut at the row-group boundary nearest to its
    share of the rows; with fewer row groups than parts, some parts are
    empty). Feather (an Arrow IPC file, not a stream): rows, cut evenly.

    Raises
    ------
    DataError
        Standard input, a compressed CSV (it cannot be entered in the
        middle), an Arrow stream, or a file that cannot be opened; naming
        the file.
    """
    path = os.fspath(path)
    for value, what in ((index, "index"), (n_parts, "n_parts")):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"file_part: {what} must be an integer, got {value!r}")
    if not 0 <= index < n_parts:
        raise ValueError(f"file_part: index must be in [0, {n_parts}), got {index}")
    fmt, compression = format_of(path, format)
    if path == _STDIN or compression:
        source = "standard input" if path == _STDIN else f"a {compression} file"
        raise DataError(
            f"{path}: {source} cannot be read in parts (each part would have to "
            "read everything before it); give a plain CSV, Parquet or Feather file"
        )
    import pyarrow as pa

    try:
        if fmt in ("csv", "tsv"):
            return _csv_part(path, int(index), int(n_parts))
        if fmt == "parquet":
            return _parquet_part(path, int(index), int(n_parts))
        n_rows = _row_count(path, fmt)
    except OSError as exc:
        raise open_error(path, exc) from None
    except pa.ArrowException as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "error"
        raise DataError(f"{path}: cannot read as {fmt} ({first})") from None
    if n_rows is None:
        raise DataError(
            f"{path}: an Arrow stream has no index of its record batches and "
            "cannot be read in parts; write it as a Feather (Arrow IPC) file"
        )
    start, stop = n_rows * index // n_parts, n_rows * (index + 1) // n_parts
    return Part(start, stop, start)


def _csv_part(path: str, index: int, n_parts: int) -> Part:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        header_end = _header_end(f)
        data = size - header_end

        def cut(k: int) -> int:
            if k == 0:
                return header_end
            if k == n_parts:
                return size
            return _line_start(f, header_end + data * k // n_parts, size)

        return Part(cut(index), cut(index + 1), None, header_end)


def _header_end(f) -> int:
    """The byte after the first line of binary file f holding more than
    blanks (the header; load_csv skips blank lines before it too), or the
    file's size when no line ends after it."""
    f.seek(0)
    base, pending = 0, b""
    while chunk := f.read(1 << 16):
        data = pending + chunk
        start = 0
        while (end := data.find(b"\n", start)) >= 0:
            line = data[start:end]
            if base + start == 0:
                line = line.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte-order mark
            if line.strip():
                return base + end + 1
            start = end + 1
        base, pending = base + start, data[start:]
    return base + len(pending)


def _line_start(f, position: int, size: int) -> int:
    """The first line start at or after ``position`` in binary file f (the
    byte after the first newline at or after position - 1), or size."""
    if position <= 0:
        return 0
    f.seek(position - 1)
    while chunk := f.read(1 << 16):
        end = chunk.find(b"\n")
        if end >= 0:
            return f.tell() - len(chunk) + end + 1
    return size


def _parquet_part(path: str, index: int, n_parts: int) -> Part:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    bounds = [0, *np.cumsum(sizes, dtype=np.int64).tolist()]
    total = bounds[-1]

    def cut(k: int) -> int:
        """The row-group boundary nearest to k / n_parts of the rows (the
        lower one on a tie): non-decreasing in k."""
        if k == 0 or k == n_parts:
            return 0 if k == 0 else len(sizes)
        share = total * k  # compared as bounds[g] * n_parts, exactly
        g = int(np.searchsorted(np.asarray(bounds) * n_parts, share, side="left"))
        if g > 0 and share - bounds[g - 1] * n_parts <= bounds[g] * n_parts - share:
            g -= 1
        return g

    start, stop = cut(index), cut(index + 1)
    return Part(start, stop, bounds[start])


def _part_batches(path, fmt, part, column_types, batch_rows, columns, column_names):
    """The record batches of a part (see _batches)."""
    import pyarrow as pa

    if part.stop <= part.start:
        return
    if fmt in ("csv", "tsv"):
        import pyarrow.csv as pacsv

        read = pacsv.ReadOptions(block_size=1 << 20, column_names=column_names)
        parse = pacsv.ParseOptions(delimiter=_delimiter(fmt))
        convert = pacsv.ConvertOptions(
            include_columns=columns,
            column_types=column_types or {},
            strings_can_be_null=False,
        )
        # The part's bytes, memory-mapped: the pages are read as the parser
        # reaches them and can be dropped again, so no copy of the text stays.
        with pa.memory_map(path) as source:
            source.seek(part.start)
            text = source.read_buffer(part.stop - part.start)
            yield from pacsv.open_csv(
                pa.BufferReader(text),
                read_options=read,
                parse_options=parse,
                convert_options=convert,
            )
    elif fmt == "parquet":
        import pyarrow.parquet as pq

        parquet = pq.ParquetFile(path, pre_buffer=False, buffer_size=1 << 20)
        yield from parquet.iter_batches(
            batch_size=batch_rows,
            row_groups=range(part.start, part.stop),
            columns=columns,
        )
    else:
        import pyarrow.ipc as ipc

        with pa.memory_map(path) as source:
            reader = ipc.open_file(source)
            row = 0
            for i in range(reader.num_record_batches):
                if row >= part.stop:
                    break
                batch = reader.get_batch(i)
                lo = max(part.start - row, 0)
                hi = min(part.stop - row, batch.num_rows)
                row += batch.num_rows
                if lo < hi:
                    batch = batch.slice(lo, hi - lo)
                    yield batch.select(columns) if columns else batch


def count_newlines(path: str | os.PathLike, stop: int, chunk: int = 1 << 24) -> int:
    """The newline bytes in the first ``stop`` bytes of a file, read in
    chunks of ``chunk`` bytes (memory: one chunk)."""
    count = 0
    with open(path, "rb") as f:
        left = stop
        while left > 0 and (data := f.read(min(left, chunk))):
            count += data.count(b"\n")
            left -= len(data)
    return count


def line_of_row(path: str, data_row: int, format: str | None = None) -> int | None:
    """The line (from 1, the header being line 1) where data row ``data_row``
    (from 1) of a CSV or TSV file starts, counting records as pyarrow and
    :mod:`csv` do (quoted line breaks inside a field, blank lines skipped);
    None for other formats, standard input, or a row past the end. Reads
    the file up to that row: for error messages only."""
    if path == _STDIN:
        return None
    fmt, compression = format_of(path, format)
    if fmt not in ("csv", "tsv"):
        return None
    import csv
    import io

    import pyarrow as pa

    with input_source(path, compression) as raw:
        text = io.TextIOWrapper(pa.PythonFile(raw, mode="r"), encoding="utf-8-sig",
                                errors="replace", newline="")  # fmt: skip
        reader = csv.reader(text, delimiter=_delimiter(fmt))
        seen, line = -1, 1  # the header is record 0
        for fields in reader:
            if fields:
                seen += 1
                if seen == data_row:
                    return line
            line = reader.line_num + 1
    return None


def with_lines(message: str, path: str, format: str | None = None) -> str:
    """message with its first "data row N" of the file ``path`` named as
    "line L" when path is a CSV or TSV file (see :func:`line_of_row`)."""
    match = re.search(r"data row (\d+)", message)
    if match is None or not message.startswith(path):
        return message
    try:
        line = line_of_row(path, int(match.group(1)), format)
    except (OSError, ValueError):
        line = None
    if line is None:
        return message
    return message[: match.start()] + f"line {line}" + message[match.end() :]


def ragged_line(path: str, format: str | None = None) -> str | None:
    """For a CSV or TSV file that pyarrow could not parse: "line L: K fields,
    but the header (line 1) has M" for its first record of another length,
    or None."""
    if path == _STDIN:
        return None
    fmt, compression = format_of(path, format)
    if fmt not in ("csv", "tsv"):
        return None
    import csv
    import io

    import pyarrow as pa

    with input_source(path, compression) as raw:
        text = io.TextIOWrapper(pa.PythonFile(raw, mode="r"), encoding="utf-8-sig",
                                errors="replace", newline="")  # fmt: skip
        reader = csv.reader(text, delimiter=_delimiter(fmt))
        width, line = None, 1
        try:
            for fields in reader:
                if fields:
                    if width is None:
                        width, header_line = len(fields), line
                    elif len(fields) != width:
                        return (
                            f"line {line}: {len(fields)} fields, but the header "
                            f"(line {header_line}) has {width}"
                        )
                line = reader.line_num + 1
        except csv.Error as exc:
            return f"line {reader.line_num}: {exc}"
    return None


def part_table(path: str | os.PathLike, part: Part, *, format: str | None = None):
    """The rows of one :class:`Part` of a table file as a ``pyarrow.Table``:
    CSV and TSV with every column as text (as the column plan reads a whole
    file), Parquet and Feather with their types. DataError naming the file
    when it cannot be read."""
    import pyarrow as pa

    path = os.fspath(path)
    fmt, compression = format_of(path, format)
    if fmt in ("csv", "tsv"):
        with open(path, "rb") as f:
            head = f.read(part.header_end)
        try:
            head.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            from .raw import read_problem

            raise DataError(f"{path}: {read_problem(exc, fmt)}") from None
        header = _csv_names(head, _delimiter(fmt))
    else:
        header = _header(path, fmt, compression)
    types = {name: pa.string() for name in header} if fmt in ("csv", "tsv") else None
    try:
        batches = list(
            _batches(path, fmt, compression, types, part=part, column_names=header)
        )
    except OSError as exc:
        raise open_error(path, exc) from None
    except pa.ArrowException as exc:
        from .raw import read_problem

        ragged = ragged_line(path, fmt) if "columns" in str(exc) else None
        if ragged is not None:
            raise DataError(f"{path}, {ragged}") from None
        raise DataError(f"{path}: {read_problem(exc, fmt)}") from None
    if batches:
        return pa.Table.from_batches(batches)
    schema = pa.schema([(name, pa.string()) for name in header]) if types else None
    if schema is None:
        import pyarrow.parquet as pq

        schema = pq.read_schema(path) if fmt == "parquet" else None
    return pa.table({n: pa.array([], schema.field(n).type) for n in schema.names})


def _csv_names(head: bytes, delimiter: str) -> list[str]:
    """The column names of a CSV header (the first line that is not blank in
    the bytes before the data), stripped; a byte-order mark is ignored."""
    import csv
    import io

    text = head.decode("utf-8-sig", errors="replace")
    for fields in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter):
        if any(cell.strip() for cell in fields) or len(fields) > 1:
            return [cell.strip() for cell in fields]
    return []
