"""The model file's description of its data, and serving a trained model.

The one place the model file's ``meta`` schema is written
(:func:`model_metadata`) and read (:func:`check_metadata`): what predicting
needs to read the features (their names; the standardizer; a raw table's
column plan) and to decode the outputs (task, classes, the target's scale).
:class:`Predictor` applies it to arrays, Arrow tables, pandas DataFrames or
whole files, batch by batch.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from numbers import Real

import numpy as np
from numpy.typing import NDArray

from ..io.model import ModelFileError, load_model, save_model
from ..nn.layers import Sequential
from .loading import DataError, Standardizer
from .plan import TablePlan
from .tables import batch_array, format_of, iter_batches, read_columns

__all__ = [
    "Predictor",
    "META_KEYS",
    "check_metadata",
    "model_metadata",
    "save",
    "probabilities",
    "standardized",
]


#: The keys of the model file's ``meta`` that predicting reads; any other key
#: is kept as stored. A key left out takes the value that
#: :func:`check_metadata` gives it.
META_KEYS = (
    "feature_names",
    "target_name",
    "task",
    "classes",
    "standardizer",
    "plan",
    "target_scale",
)


def check_metadata(meta: dict | None, model: Sequential) -> dict:
    """A model file's ``meta`` completed and checked against model.

    Keys left out take their defaults, so a bare model (``meta`` None or {})
    is a regression on features x1, x2, ...: ``feature_names`` [x1, x2, ...],
    ``target_name`` "target", ``task`` "regression", ``classes`` None (for
    classification: at least 2 distinct label strings, one per output, or 2
    for one output), ``standardizer`` None (or ``{"mean": [...], "std":
    [...]}``, one finite value per input, std > 0), ``plan`` None (or a
    column plan, :meth:`fastbp.data.plan.TablePlan.to_json`, whose inputs are
    ``feature_names``), ``target_scale`` None (or ``{"mean": m, "std": s}``,
    s > 0, regression only). NumPy arrays, scalars and tuples become JSON
    lists and numbers. Returns the completed dict; raises ValueError "meta
    ..." naming what does not fit the model.
    """
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
    n_in = model.in_features or 0
    full = {
        "feature_names": [f"x{j + 1}" for j in range(n_in)],
        "target_name": "target",
        "task": "regression",
        "classes": None,
        "standardizer": None,
        "plan": None,
        "target_scale": None,
        **{key: _plain(value) for key, value in meta.items()},
    }
    problem = _meta_problem(full, model)
    if problem:
        raise ValueError(f"meta {problem}")
    return full


def save(path: str | os.PathLike, model: Sequential, meta: dict | None = None) -> None:
    """Write model to a fastbp model file, atomically, with ``meta`` completed
    and checked by :func:`check_metadata` (as :func:`model_metadata` writes
    it, or any part of it; other keys are stored as given). What
    ``fastbp predict`` and :meth:`Predictor.load` read back. Raises
    ValueError for meta that does not fit the model, and as
    :func:`fastbp.io.save_model`."""
    save_model(path, model, meta=check_metadata(meta, model))


def _plain(value: object) -> object:
    """value with NumPy arrays, NumPy scalars and tuples as JSON types."""
    if isinstance(value, np.ndarray | tuple | list):
        return [
            _plain(v)
            for v in (value.tolist() if isinstance(value, np.ndarray) else value)
        ]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _is_number(value: object) -> bool:
    return (
        isinstance(value, Real)
        and not isinstance(value, bool)
        and math.isfinite(float(value))
    )


def _meta_problem(meta: dict, model: Sequential) -> str | None:
    """What is wrong with meta (JSON types, every key of META_KEYS) for
    model, or None."""
    n_in, n_out = model.in_features, model.out_features
    names = meta["feature_names"]
    if not isinstance(names, list) or not all(isinstance(s, str) for s in names):
        return "'feature_names' must be a list of strings"
    if n_in is not None and len(names) != n_in:
        return f"'feature_names' has {len(names)} names, the model has {n_in} inputs"
    if not isinstance(meta["target_name"], str):
        return "'target_name' must be a string"
    task, classes = meta["task"], meta["classes"]
    if task == "regression":
        if classes is not None:
            return "'classes' must be null for task 'regression'"
    elif task == "classification":
        if (
            not isinstance(classes, list)
            or len(classes) < 2
            or not all(isinstance(c, str) for c in classes)
            or len(set(classes)) != len(classes)
        ):
            return "'classes' must be a list of at least 2 distinct strings"
        # One output per class, or one output thresholded at 0.5 for two.
        if (
            n_out is not None
            and len(classes) != n_out
            and (n_out, len(classes)) != (1, 2)
        ):
            return f"'classes' has {len(classes)} labels, the model has {n_out} outputs"
    else:
        return f"'task' must be 'regression' or 'classification', got {task!r}"
    scaler = meta["standardizer"]
    if scaler is not None:
        if not isinstance(scaler, dict) or set(scaler) != {"mean", "std"}:
            return "'standardizer' must be null or an object with 'mean' and 'std'"
        for key in ("mean", "std"):
            values = scaler[key]
            if not isinstance(values, list) or not all(map(_is_number, values)):
                return f"'standardizer' {key!r} must be a list of finite numbers"
            if n_in is not None and len(values) != n_in:
                return (
                    f"'standardizer' {key!r} has {len(values)} values, the model "
                    f"has {n_in} inputs"
                )
        if not all(s > 0 for s in scaler["std"]):
            return "'standardizer' 'std' must be positive"
    return _plan_problem(meta)


def _plan_problem(meta: dict) -> str | None:
    """What is wrong with meta's ``plan`` and ``target_scale``, or None."""
    if meta["plan"] is not None:
        try:
            plan = TablePlan.from_json(meta["plan"])
        except ValueError as exc:
            return str(exc)
        if list(plan.inputs) != meta["feature_names"]:
            return "'plan' gives other inputs than 'feature_names'"
    scale = meta["target_scale"]
    if scale is not None:
        if meta["task"] != "regression":
            return "'target_scale' is for task 'regression' only"
        if (
            not isinstance(scale, dict)
            or set(scale) != {"mean", "std"}
            or not all(map(_is_number, scale.values()))
            or not scale["std"] > 0
        ):
            return "'target_scale' must be an object with finite 'mean' and 'std' > 0"
    return None


def model_metadata(
    feature_names, target_name, task, classes, scaler, loss, metric, *,
    plan: TablePlan | None = None, target_scale=None,
) -> dict:  # fmt: skip
    """The model file's ``meta`` object, the one place its schema is written:
    what predicting needs to read the features (names, standardizer; the
    column plan of a raw table) and decode the outputs (task, classes, the
    target's scaling), plus the loss and metric trained with."""
    extra = {}
    if plan is not None:
        extra["plan"] = plan.to_json()
    if target_scale is not None:
        extra["target_scale"] = {"mean": target_scale[0], "std": target_scale[1]}
    return {
        "feature_names": list(feature_names),
        "target_name": target_name,
        "task": task,
        "classes": list(classes) if classes else None,
        "standardizer": None
        if scaler is None
        else {"mean": scaler.mean.tolist(), "std": scaler.std.tolist()},
        "loss": loss,
        "metric": metric,
        **extra,
    }


def probabilities(outputs: NDArray, loss: str | None, n_classes: int) -> NDArray:
    """Class probabilities (n_samples, n_classes) from a classifier's
    outputs: the softmax of cross-entropy logits; for a network trained with
    squared error, its outputs clipped to [0, 1] (one output: P(class 1))
    and each row normalized to sum to 1."""
    outputs = outputs.astype(np.float64)
    if loss == "ce" or (loss is None and outputs.shape[1] == n_classes > 1):
        shifted = outputs - outputs.max(axis=1, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=1, keepdims=True)
    p = np.clip(outputs, 0.0, 1.0)
    if p.shape[1] == 1:
        return np.hstack([1.0 - p, p])
    total = p.sum(axis=1, keepdims=True)
    return np.where(total > 0, p / np.where(total > 0, total, 1.0), 1.0 / n_classes)


@dataclass(frozen=True, eq=False)
class Predictor:
    """A trained model with what it needs to read its data and name outputs.

    Build it with :meth:`load` from a model file, or with
    :meth:`fastbp.data.problem.Prepared.predictor` right after training.
    :meth:`predict` and :meth:`predict_proba` take the columns a user has: a
    pandas DataFrame, a pyarrow Table or a dict of columns by name (the raw
    columns, for a model with a column plan), or an array of numbers
    (n_samples, n_features) in the order of ``feature_names``;
    :meth:`batches` and :meth:`predict_file` read a data file. Each applies
    the plan (fills, one-hot, date parts), standardizes as in training and
    decodes the outputs (labels, or values in the target's units).
    """

    model: Sequential
    feature_names: tuple[str, ...]
    target_name: str
    task: str
    classes: tuple[str, ...] | None
    scaler: Standardizer | None
    plan: TablePlan | None = None
    target_scale: tuple[float, float] | None = None
    loss: str | None = None
    meta: dict | None = None

    @classmethod
    def load(cls, path: str | os.PathLike) -> Predictor:
        """Read a model file (:func:`fastbp.io.load_model`: ModelFileError
        naming the file on any problem)."""
        model, meta = load_model(path)
        try:
            return cls.from_metadata(model, meta)
        except ValueError as exc:
            raise ModelFileError(f"{os.fspath(path)}: {exc}") from None

    @classmethod
    def from_metadata(cls, model: Sequential, meta: dict | None) -> Predictor:
        """A predictor from a model and its model-file ``meta`` object, as
        :func:`model_metadata` writes it, completed and checked by
        :func:`check_metadata` (ValueError if it does not fit the model)."""
        meta = check_metadata(meta, model)
        scaler, scale = meta["standardizer"], meta["target_scale"]
        return cls(
            model,
            tuple(meta["feature_names"]),
            meta["target_name"],
            meta["task"],
            tuple(meta["classes"]) if meta["classes"] is not None else None,
            Standardizer(**scaler) if scaler is not None else None,
            TablePlan.from_json(meta["plan"]) if meta["plan"] is not None else None,
            (scale["mean"], scale["std"]) if scale is not None else None,
            meta.get("loss"),
            meta,
        )

    @property
    def columns(self) -> tuple[str, ...]:
        """The data columns the model reads, by name."""
        return self.plan.raw_columns if self.plan is not None else self.feature_names

    # --- model inputs -----------------------------------------------------------

    def inputs(self, data: object, where: str = "X") -> NDArray:
        """The standardized model inputs of ``data`` (see the class notes),
        (n_samples, n_inputs) in the model's dtype."""
        table = as_table(data)
        if table is not None:
            return self._table_inputs(table, where, 0)
        X = np.array(data, dtype=np.float64)  # a copy: standardized in place
        n = len(self.columns)
        if X.ndim != 2 or X.shape[1] != n:
            raise ValueError(
                f"Predictor: X must have shape (n_samples, {n}) for the columns "
                f"{', '.join(self.columns)}; got {X.shape}"
            )
        if self.plan is not None:
            if not all(c.role == "numeric" for c in self.plan.used):
                raise TypeError(
                    "Predictor: this model reads text, bool or date columns; pass "
                    "a pandas DataFrame, a pyarrow Table or a dict of columns"
                )
            import pyarrow as pa

            table = pa.table({name: X[:, j] for j, name in enumerate(self.columns)})
            return self._table_inputs(table, where, 0)
        if not np.all(np.isfinite(X)):
            raise ValueError("Predictor.predict: X contains NaN or infinity")
        return self._standardized(X, where, len(X))

    def _check_columns(self, path: str, format: str | None) -> None:
        """DataError naming the columns the file lacks (read from its
        header only)."""
        from .tables import header_of

        present = header_of(path, format) if path != "-" else []
        missing = [c for c in self.columns if c not in present]
        if present and missing:
            raise DataError(
                f"{path}: the model takes {len(self.columns)} features "
                f"({', '.join(map(repr, self.columns))}); missing "
                f"{', '.join(map(repr, missing))}"
            )

    def _table_inputs(self, table, where: str, offset: int) -> NDArray:
        """Inputs of the named columns of an Arrow table (or batch)."""
        missing = [c for c in self.columns if c not in table.column_names]
        if missing:
            raise DataError(
                f"{where}: the model reads the columns "
                f"{', '.join(map(repr, self.columns))}; missing "
                f"{', '.join(map(repr, missing))}"
            )
        if self.plan is not None:
            X = self.plan.encode(table, np.float64)
        else:
            X = batch_array(table, list(self.columns), np.float64, offset)
        return self._standardized(X, where, offset + len(X))

    def _standardized(self, X: NDArray, where: str, offset: int) -> NDArray:
        """Float64 inputs standardized and rounded once into the model's
        dtype (as in training); values too large for it are DataErrors."""
        return standardized(
            X, self.scaler, self.model.dtype, self.feature_names, where, offset
        )

    # --- outputs ----------------------------------------------------------------

    def outputs(self, inputs: NDArray) -> NDArray:
        """The network's outputs for standardized inputs (:meth:`inputs`), as
        :meth:`fastbp.nn.Sequential.serve` computes them: a small batch in
        NumPy, so that serving a few rows loads no compiled kernel."""
        return self.model.serve(inputs)

    def decode(self, outputs: NDArray) -> list[str] | NDArray:
        """Model outputs (n_samples, n_outputs) as predictions: class labels
        (the largest output, or one output thresholded at 0.5) or values in
        the target's units."""
        if self.task == "regression":
            values = outputs[:, 0].astype(np.float64)
            if self.target_scale is not None:
                mean, std = self.target_scale
                values = values * std + mean
            return values
        if outputs.shape[1] == 1:
            index = (outputs[:, 0] > 0.5).astype(np.int64)
        else:
            index = np.argmax(outputs, axis=1)
        return [self.classes[i] for i in index]

    def proba(self, outputs: NDArray) -> NDArray:
        """Class probabilities of model outputs, (n_samples, n_classes) in the
        order of ``classes`` (see :func:`probabilities`)."""
        if self.task != "classification":
            raise ValueError("probabilities need a classification model")
        return probabilities(outputs, self.loss, len(self.classes))

    def predict(self, data: object) -> list[str] | NDArray:
        """Decoded predictions (:meth:`decode`) for the rows of ``data``."""
        return self.decode(self.outputs(self.inputs(data)))

    def predict_proba(self, data: object) -> NDArray:
        """Class probabilities (:meth:`proba`) for the rows of ``data``."""
        return self.proba(self.outputs(self.inputs(data)))

    # --- files ------------------------------------------------------------------

    def features(self, path: str | os.PathLike, format: str | None = None) -> NDArray:
        """The model inputs of every row of a data file (any format
        :func:`fastbp.data.tables.read_columns` reads), standardized, in the
        model's dtype: shape (n_samples, n_inputs)."""
        path = os.fspath(path)
        if self.plan is not None:
            from .raw import RawTable

            table = RawTable.read_columns(
                path, self.columns, format=format, plan=self.plan
            )
            return self._table_inputs(table, path, 0)
        # Read in float64 and round once, after standardizing, as training did
        # with the statistics it stored.
        X = read_columns(path, list(self.columns), dtype=np.float64, format=format)
        return self._standardized(X, path, len(X))

    def predict_file(
        self, path: str | os.PathLike, format: str | None = None
    ) -> list[str] | NDArray:
        """Decoded predictions for every row of a data file."""
        return self.decode(self.outputs(self.features(path, format)))

    def batches(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        *,
        carry: tuple[str, ...] = (),
        batch_rows: int = 65536,
    ) -> Iterator[tuple[NDArray, dict]]:
        """(model outputs, {column: pyarrow.Array}) for each batch of rows of a
        data file, read from disk as they are consumed: memory for one batch,
        whatever the file's size. The dict holds the columns named in
        ``carry`` that the file has (ID columns to pass through, the target
        to score against). A bad value in a model without a plan raises
        DataError naming the column and data row (for CSV, the line, found
        by a second, slow scan)."""
        path = os.fspath(path)
        names = list(self.columns)
        extra = [c for c in dict.fromkeys(carry) if c not in names]
        self._check_columns(path, format)
        offset = 0
        try:
            for batch in iter_batches(
                path, format=format, columns=names + extra, batch_rows=batch_rows,
                text=self.plan is not None, text_columns=extra,
            ):  # fmt: skip
                outputs = self.outputs(self._table_inputs(batch, path, offset))
                offset += batch.num_rows
                yield outputs, {c: batch.column(c) for c in carry}
            if offset == 0:
                raise DataError(f"{path}, line 1: header only, no data rows")
        except Exception as exc:
            import pyarrow as pa

            if not isinstance(exc, DataError | OSError | pa.ArrowException):
                raise
            if offset or path == "-" or self.plan is not None:
                raise _read_error(exc, path, format) from None
            # Nothing written yet: the whole-file reader gives the exact,
            # line-numbered error (missing file, bad cell...).
            self.features(path, format)
            raise _read_error(exc, path, format) from None

    def predict_batches(
        self,
        path: str | os.PathLike,
        format: str | None = None,
        batch_rows: int = 65536,
    ) -> Iterator[list[str] | NDArray]:
        """Decoded predictions for a data file, one batch of rows at a time
        (see :meth:`batches`)."""
        for outputs, _ in self.batches(path, format, batch_rows=batch_rows):
            yield self.decode(outputs)


def standardized(
    X: NDArray,
    scaler: Standardizer | None,
    dtype,
    names,
    where: str = "X",
    offset: int | None = None,
) -> NDArray:
    """Float64 model inputs X (n_samples, n_inputs), standardized by scaler
    (in place) and rounded once into dtype: what a model is fed. A value too
    large for dtype is a DataError naming its data row (counted from
    ``offset - len(X)``, the rows read before X) and ``names[column]``."""
    dtype = np.dtype(dtype)
    offset = len(X) if offset is None else offset
    too_large = np.abs(X) > np.finfo(dtype).max
    if too_large.any():
        row, col = np.unravel_index(np.argmax(too_large), X.shape)
        raise DataError(
            f"{where}, data row {offset - len(X) + row + 1}, column "
            f"{names[col]!r}: {X[row, col]:g} is too large for the model's {dtype}"
        )
    if scaler is not None:
        X = scaler.transform_(X)
    return np.ascontiguousarray(X, dtype=dtype)


def _read_error(exc: Exception, path: str, format: str | None) -> Exception:
    """A reader's error as one DataError line naming the file."""
    if isinstance(exc, DataError):
        text = str(exc)
        return exc if text.startswith(path) else DataError(f"{path}, {text}")
    if isinstance(exc, FileNotFoundError):
        return DataError(f"{path}: no such file")
    from .raw import read_problem
    from .tables import ragged_line

    fmt = format_of(path, format)[0] if path != "-" else "csv"
    ragged = ragged_line(path, format) if "columns" in str(exc) else None
    if ragged is not None:
        return DataError(f"{path}, {ragged}")
    return DataError(f"{path}: {read_problem(exc, fmt)}")


def as_table(data: object):
    """data as a pyarrow Table when it is a table of named columns (pyarrow
    Table or RecordBatch, pandas DataFrame, dict of columns), else None.

    A pandas DataFrame is converted as ``pyarrow.Table.from_pandas`` does
    (its index left out); a column of mixed Python objects that Arrow cannot
    type (numbers and text, say) becomes the text of its cells, as a CSV
    file's cells are read, missing values (None, NaN, NA, NaT) staying
    missing."""
    import sys

    if isinstance(data, dict) and not hasattr(data, "tocsr"):  # not a dok_matrix
        import pyarrow as pa

        return pa.table({str(k): arrow_column(v) for k, v in data.items()})
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    if pa is not None and isinstance(data, pa.Table):
        return data
    pd = sys.modules.get("pandas")
    if pd is not None and isinstance(data, pd.DataFrame):
        import pyarrow as pa

        try:
            return pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            # One column at a time, so that only the mixed ones become text.
            return pa.table(
                [arrow_column(data.iloc[:, j]) for j in range(data.shape[1])],
                names=[str(name) for name in data.columns],
            )
    return None


def arrow_column(values: object):
    """One column as a pyarrow Array: Arrow arrays kept, others typed by
    ``pyarrow.array`` (NaN as null), and cells Arrow cannot type together
    read as their text (see :func:`as_table`)."""
    import pyarrow as pa

    if isinstance(values, pa.Array | pa.ChunkedArray):
        return values
    if not isinstance(values, list):
        values = np.asarray(values) if not hasattr(values, "dtype") else values
    try:
        return pa.array(values, from_pandas=True)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return pa.array([_cell_text(v) for v in values], pa.string())


def _cell_text(value: object) -> str | None:
    """A cell's text, or None for a missing one (None, NaN, pandas NA/NaT)."""
    if value is None or type(value).__name__ in ("NAType", "NaTType"):
        return None
    if isinstance(value, float | np.floating) and np.isnan(value):
        return None
    return str(value)
