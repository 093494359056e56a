"""Writing predictions batch by batch: CSV or Parquet, atomically.

:class:`PredictionWriter` writes a one-column table named ``prediction`` --
class labels (text) or values (float64) -- as batches arrive, so predicting
on a large file needs memory for one batch only. The format follows the
output's extension (``.parquet``/``.pq``, else CSV); no path (or ``"-"``)
writes CSV to standard output. A file is written through
:func:`fastbp.io.atomic_file`: an error mid-way leaves an existing file as it
was.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Sequence

import numpy as np

from .io import atomic_file

__all__ = ["PredictionWriter", "csv_field"]


def csv_field(text: str) -> str:
    """text as one CSV field: quoted (quotes doubled) when it holds a comma,
    quote or line break or has surrounding spaces, else as it is."""
    if any(c in text for c in ',"\n\r') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


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
    """

    def __init__(self, path: str | os.PathLike | None, kind: str) -> None:
        if kind not in ("labels", "values"):
            raise ValueError(
                f"PredictionWriter: kind must be 'labels' or 'values', got {kind!r}"
            )
        self.path = None if path in (None, "-") else os.fspath(path)
        self.kind = kind
        ext = os.path.splitext(self.path or "")[1].lower()
        self.parquet = ext in (".parquet", ".pq")
        self._stack = contextlib.ExitStack()
        self._file = None
        self._parquet_writer = None

    def __enter__(self) -> PredictionWriter:
        if self.path is None:
            self._file = sys.stdout.buffer if hasattr(sys.stdout, "buffer") else None
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
        if self._parquet_writer is not None:
            import pyarrow as pa

            column = (
                pa.array(list(predictions), pa.string())
                if self.kind == "labels"
                else pa.array(np.asarray(predictions, dtype=np.float64))
            )
            self._parquet_writer.write_table(pa.table({"prediction": column}))
            return
        if self.kind == "labels":
            lines = [csv_field(str(label)) for label in predictions]
        else:
            lines = [repr(float(v)) for v in predictions]
        if lines:
            self._emit("\n".join(lines) + "\n")

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if self._parquet_writer is not None:
                self._parquet_writer.close()
            if self.path is None and self._file is not None:
                self._file.flush()
        finally:
            self._stack.__exit__(exc_type, exc, tb)
        return False
