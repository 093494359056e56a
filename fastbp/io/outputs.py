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

    def __enter__(self) -> PredictionWriter:
        if self.path is None:
            # Text already written through sys.stdout goes out first.
            sys.stdout.flush()
            self._file = getattr(sys.stdout, "buffer", None)
            if self._file is None and self.parquet:
                raise ValueError("Parquet predictions need a binary standard output")
        else:
            self._file = self._stack.enter_context(atomic_file(self.path))
        if self.parquet:
            import pyarrow as pa
            import pyarrow.parquet as pq

            kind = pa.string() if self.kind == "labels" else pa.float64()
            schema = pa.schema([("prediction", kind)])
            self._parquet_writer = pq.ParquetWriter(self._file, schema)
        else:
            self._emit("prediction\n")
        return self

    def _emit(self, text: str) -> None:
        if self._file is None:  # a text-only stdout (tests' capture)
            sys.stdout.write(text)
        else:
            self._file.write(text.encode("utf-8"))

    def write(self, predictions: Sequence[str] | np.ndarray) -> None:
        """Append one batch of predictions (labels or values)."""
        if self.kind == "labels":
            items = [str(label) for label in predictions]
        else:
            # tolist() gives Python floats, whose repr reads back exactly
            # (about 1.3 s per million values, as repr(float(v)) was).
            items = np.asarray(predictions, dtype=np.float64).reshape(-1).tolist()
        if not items:
            return
        self.rows += len(items)
        if self._parquet_writer is not None:
            import pyarrow as pa

            kind = pa.string() if self.kind == "labels" else pa.float64()
            column = pa.array(items, kind)
            self._parquet_writer.write_table(pa.table({"prediction": column}))
        else:
            encode = csv_field if self.kind == "labels" else repr
            self._emit("\n".join(map(encode, items)) + "\n")

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self._parquet_writer is not None:
                self._parquet_writer.close()
            if self.path is None and self._file is not None:
                self._file.flush()
        finally:
            self._stack.__exit__(exc_type, exc, tb)
        return False
