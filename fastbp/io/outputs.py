"""Writing predictions batch by batch: CSV or Parquet, atomically.

:class:`PredictionWriter` writes a one-column table named ``prediction`` --
class labels (text) or values (float64) -- as batches arrive, so predicting
on a large file needs memory for one batch only. The format follows the
output's extension (``.parquet``/``.pq``, else CSV) unless ``format`` names
it; no path (or ``"-"``) writes CSV to standard output. A file is written through
:func:`fastbp.io.atomic_file`: an error mid-way leaves an existing file as it
was.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import numpy as np

from .._files import atomic_file

__all__ = ["FORMATS", "PredictionWriter", "csv_field", "output_format"]

#: Output formats by file extension; anything else is written as CSV.
FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}


def csv_field(text: str) -> str:
    """text as one CSV field: quoted (quotes doubled) when it holds a comma,
    quote or line break or has surrounding spaces, else as it is."""
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def output_format(path: str | os.PathLike | None, format: str | None = None) -> str:
    """ "csv" or "parquet": format if given, else by path's extension (CSV for
    standard output, None or "-", and for any other extension)."""
    if format is not None:
        if format not in ("csv", "parquet"):
            raise ValueError(
                f"output format must be 'csv' or 'parquet', got {format!r}"
            )
        return format
    if path is None or os.fspath(path) == "-":
        return "csv"
    return FORMATS.get(os.path.splitext(os.fspath(path))[1].lower(), "csv")


class PredictionWriter:
    """Context manager: ``with PredictionWriter(path, kind) as out:
    out.write(batch)``.

    Each row holds, in this order, the columns passed ``before`` the
    prediction (ID columns carried through), ``prediction``, and those
    passed ``after`` it (class probabilities); the first :meth:`write`
    fixes the columns.

    Parameters
    ----------
    path : str, path-like or None
        Output file; ``.parquet``/``.pq`` writes Parquet, anything else CSV.
        None or "-": CSV to standard output.
    kind : {"labels", "values"}
        Labels are written as text (CSV-quoted where needed), values as
        float64 (CSV: ``repr(float)``, which reads back exactly).
    format : {"csv", "parquet"} or None
        Overrides the extension. Parquet to standard output needs a binary
        stdout.

    Notes
    -----
    Memory is one batch: each :meth:`write` encodes its batch and hands it to
    the file (a CSV text block, or one Parquet row group). A file is written
    to a temporary file beside ``path`` and renamed over it when the block
    ends normally; if it raises, the temporary file is removed and an
    existing ``path`` is untouched.
    """

    def __init__(
        self,
        path: str | os.PathLike | None,
        kind: str,
        *,
        format: str | None = None,
    ) -> None:
        if kind not in ("labels", "values"):
            raise ValueError(
                f"PredictionWriter: kind must be 'labels' or 'values', got {kind!r}"
            )
        self.path = None if path is None or os.fspath(path) == "-" else os.fspath(path)
        self.kind = kind
        self.format = output_format(self.path, format)
        self.parquet = self.format == "parquet"
        self.rows = 0
        self._stack = contextlib.ExitStack()
        self._file = None
        self._parquet_writer = None
        self._names: list[str] | None = None

    def __enter__(self) -> PredictionWriter:
        if self.path is None:
            # Text already written through sys.stdout goes out first.
            sys.stdout.flush()
            self._file = getattr(sys.stdout, "buffer", None)
            if self._file is None and self.parquet:
                raise ValueError("Parquet predictions need a binary standard output")
        else:
            self._file = self._stack.enter_context(atomic_file(self.path))
        return self

    def _emit(self, text: str) -> None:
        if self._file is None:  # a text-only stdout (tests' capture)
            sys.stdout.write(text)
        else:
            self._file.write(text.encode("utf-8"))

    def write(
        self,
        predictions: Sequence[str] | np.ndarray,
        *,
        before: dict | None = None,
        after: dict | None = None,
    ) -> None:
        """Append one batch of predictions (labels or values), with the
        columns of ``before`` and ``after`` ({name: pyarrow array or
        sequence}, as long as predictions) beside them."""
        import pyarrow as pa

        if self.kind == "labels":
            main = pa.array([str(label) for label in predictions], pa.string())
        else:
            main = pa.array(np.asarray(predictions, dtype=np.float64).reshape(-1))
        columns = {**(before or {}), "prediction": main, **(after or {})}
        columns = {name: _arrow(values) for name, values in columns.items()}
        if self._names is None:
            self._start(columns)
        if not len(main):
            return
        self.rows += len(main)
        if self._parquet_writer is not None:
            table = pa.table(columns).cast(self._parquet_writer.schema)
            self._parquet_writer.write_table(table)
        else:
            cells = [_csv_cells(values) for values in columns.values()]
            self._emit(
                "".join(",".join(row) + "\n" for row in zip(*cells, strict=True))
            )

    def _start(self, columns: dict) -> None:
        """The header (CSV) or schema (Parquet), from the first batch."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        self._names = list(columns)
        if self.parquet:
            schema = pa.schema([(n, v.type) for n, v in columns.items()])
            self._parquet_writer = pq.ParquetWriter(self._file, schema)
        else:
            self._emit(",".join(csv_field(name) for name in self._names) + "\n")

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None and self._names is None:  # no batch: the header
            self.write([])
        try:
            if self._parquet_writer is not None:
                self._parquet_writer.close()
            if self.path is None and self._file is not None:
                self._file.flush()
        finally:
            self._stack.__exit__(exc_type, exc, tb)
        return False


def _arrow(values):
    import pyarrow as pa

    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks()
    if isinstance(values, pa.Array):
        return values
    return pa.array(values)


def _csv_cells(column) -> list[str]:
    """A column's cells as CSV fields: floats as ``repr`` (which reads back
    exactly), text quoted where needed, missing cells empty."""
    import pyarrow as pa

    values = column.to_pylist()
    if pa.types.is_floating(column.type):
        return ["" if v is None else repr(float(v)) for v in values]
    return ["" if v is None else csv_field(str(v)) for v in values]
