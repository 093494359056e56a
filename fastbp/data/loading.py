"""Data for training: the XOR toy set, CSV loading, splits and standardization.

Everything here is plain NumPy and the standard library. A bad CSV file raises
:class:`DataError`, whose message is one line naming the file and the line
(1-based physical line of the file; the header is line 1) and column at fault,
so a command-line user can fix the file without a traceback.
"""

from __future__ import annotations

import csv
import math
import os
import warnings
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._files import open_input
from .stats import Moments

__all__ = [
    "DataError",
    "Dataset",
    "CsvCells",
    "read_csv_cells",
    "Standardizer",
    "MAX_INFERRED_CLASSES",
    "load_csv",
    "load_features",
    "train_val_split",
    "xor",
]

#: With ``task=None``, an integer-valued target column with at most this many
#: distinct values (and at most half as many as there are rows) is read as
#: class labels.
MAX_INFERRED_CLASSES = 20

#: An inferred classification with more than MAX_INFERRED_CLASSES classes and
#: fewer rows per class than this on average (say, a text column of names or
#: ids) warns.
MIN_ROWS_PER_CLASS = 5

TASKS = ("regression", "classification")


class DataError(ValueError):
    """A data file that cannot be used; the message is one line naming the file,
    line and column, e.g. ``iris.csv, line 7, column 'petal_width': 'abc' is
    not a number``."""


def xor(dtype: DTypeLike = np.float32) -> tuple[NDArray, NDArray]:
    """The four XOR points: X of shape (4, 2) and targets T of shape (4, 1).

    X = [[0, 0], [0, 1], [1, 0], [1, 1]], T = [[0], [1], [1], [0]], both
    C-contiguous arrays of ``dtype``.
    """
    X = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=dtype)
    T = np.array([[0], [1], [1], [0]], dtype=dtype)
    return X, T


@dataclass(frozen=True, eq=False)
class Dataset:
    """A table loaded by :func:`load_csv`.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64 (float32 or float64
        from :func:`fastbp.tables.read_table`)
        Feature columns in file order, target column removed.
    y : ndarray
        Regression: shape (n_samples, 1), float64. Classification: shape
        (n_samples,), int64 class indices in 0..n_classes-1.
    feature_names : tuple of str
    target_name : str
    task : {"regression", "classification"}
    classes : tuple of str or None
        Classification: the original labels as written in the file (stripped),
        ``classes[k]`` being the label of class index k; numeric labels are
        sorted by value, others as strings. None for regression.
    path : str
        The file, as given to :func:`load_csv`.
    """

    X: NDArray
    y: NDArray
    feature_names: tuple[str, ...]
    target_name: str
    task: str
    classes: tuple[str, ...] | None
    path: str

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @property
    def n_outputs(self) -> int:
        """Output units a model needs: the number of classes, or 1."""
        return len(self.classes) if self.classes is not None else 1


def parse_number(text: str) -> float | None:
    """float(text), or None when text is not a number ("1_0" is not one): how
    every reader of fastbp decides whether a cell holds a number."""
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _read_rows(path: str, delimiter: str = ",") -> list[tuple[int, list[str]]]:
    """(line number, stripped fields) for each non-blank record of the file."""
    f = open_input(path, DataError, "a CSV file", newline="", encoding="utf-8-sig")
    rows = []
    with f:
        reader = csv.reader(f, delimiter=delimiter, skipinitialspace=True)
        line = 1
        try:
            for fields in reader:
                if any(cell.strip() for cell in fields) or len(fields) > 1:
                    rows.append((line, [cell.strip() for cell in fields]))
                line = reader.line_num + 1
        except csv.Error as exc:
            raise DataError(f"{path}, line {reader.line_num}: {exc}") from None
        except UnicodeDecodeError:
            raise DataError(f"{path}: not UTF-8 text") from None
    return rows


def target_index(target: object, header: list[str], path: str) -> int:
    m = len(header)
    columns = ", ".join(repr(name) for name in header)
    if target is None:
        return m - 1
    if isinstance(target, str):
        if target in header:
            return header.index(target)
        if not target.isdigit():
            raise DataError(
                f"{path}, line 1: target column {target!r} not found; "
                f"available columns: {columns}"
            )
        target = int(target)
    if isinstance(target, bool) or not isinstance(target, Integral):
        raise TypeError(
            f"load_csv: target must be a column name or index, got {target!r}"
        )
    if not -m <= target < m:
        raise DataError(
            f"{path}, line 1: target column index {target} is out of range for "
            f"{m} columns (0..{m - 1}): {columns}"
        )
    return int(target) % m


def _labels(cells: list[str], numeric: bool) -> tuple[NDArray, tuple[str, ...]]:
    """Class indices (int64) and label names: numbers sorted by value (named as
    first written), anything else sorted as strings."""
    if numeric:
        names: dict[float, str] = {}
        for cell in cells:
            names.setdefault(float(cell), cell)
        keys = sorted(names)
        index = {value: k for k, value in enumerate(keys)}
        y = np.array([index[float(cell)] for cell in cells], dtype=np.int64)
        return y, tuple(names[value] for value in keys)
    labels = sorted(set(cells))
    index = {label: k for k, label in enumerate(labels)}
    return np.array([index[c] for c in cells], dtype=np.int64), tuple(labels)


def load_csv(
    path: str | os.PathLike,
    *,
    target: str | int | None = None,
    task: str | None = None,
    dtype: DTypeLike = np.float64,
    delimiter: str = ",",
) -> Dataset:
    """Read a CSV file with a header row into a :class:`Dataset`.

    Parameters
    ----------
    path : str or path-like
        A UTF-8 CSV file (a byte-order mark is ignored). The first row names
        the columns; fields are parsed with the :mod:`csv` module, so quoted
        fields may hold commas. Surrounding spaces are stripped and blank lines
        skipped.
    target : str, int or None
        The target column: a header name, or a 0-based index (negative counts
        from the end; a string of digits that is not a header name is an
        index). None (default): the last column.
    task : {"regression", "classification"} or None
        None infers it: classification when the target column holds any
        non-numeric value, or when all its values are integers with at most
        ``min(MAX_INFERRED_CLASSES, max(2, n_samples // 2))`` distinct values;
        regression otherwise. An inferred classification with more than
        ``MAX_INFERRED_CLASSES`` classes and fewer than ``MIN_ROWS_PER_CLASS``
        rows per class on average warns (a ``UserWarning``): such a column is
        rarely a label.
    dtype : float32 or float64
        The dtype the numbers will be trained in: a finite value too large
        for it is an error naming its line and column. The arrays returned
        are float64 either way.
    delimiter : str
        "," (CSV, the default) or "\\t" (TSV).

    Returns
    -------
    Dataset
        Every other column is a feature and must be numeric.

    Raises
    ------
    DataError
        Missing or unreadable file, empty file, header without data rows,
        fewer than 2 columns, empty or duplicate column names, a row with the
        wrong number of fields, an empty, non-numeric, NaN or infinite feature
        value (and target value for regression), a value too large for dtype,
        an unknown target column, or a classification target with a single
        class. The message names the file, line and column.
    ValueError
        ``task`` is not one of the values above.
    """
    if task not in (None, *TASKS):
        raise ValueError(
            f"load_csv: task must be 'regression', 'classification' or None, "
            f"got {task!r}"
        )
    data = read_csv_cells(
        path, target=target, task=task, dtype=dtype, delimiter=delimiter
    )
    path, cells, target_numbers = data.path, data.cells, data.numbers
    numeric = all(v is not None for v in target_numbers)
    inferred = task is None
    if inferred:
        task = _infer_task(target_numbers, numeric)
    feature_names, target_name, X = data.feature_names, data.target_name, data.X
    n = X.shape[0]
    if task == "regression":  # numeric: read_csv_cells checked it
        y = np.array(target_numbers, dtype=np.float64).reshape(-1, 1)
        return Dataset(X, y, feature_names, target_name, task, None, path)
    y, classes = _labels(cells, numeric)
    if inferred:
        warn_many_classes(path, target_name, n, len(classes))
    if len(classes) < 2:
        raise DataError(
            f"{path}, column {target_name!r}: only one class ({classes[0]!r}) in "
            f"{n} rows; classification needs at least 2"
            + ("; for a number to predict, use the regression task" if numeric else "")
        )
    return Dataset(X, y, feature_names, target_name, task, classes, path)


@dataclass(frozen=True, eq=False)
class CsvCells:
    """A CSV file's cells as :func:`read_csv_cells` reads them, the target
    checked but not yet coded (task and labels are :func:`load_csv`'s work).

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float64
        Feature columns in file order, target column removed.
    cells : list of str, length n_samples
        The target cells, stripped, as written.
    numbers : list of float or None, length n_samples
        Each target cell as a number, None for text.
    lines : list of int, length n_samples
        Each data row's line in the file (1-based; the header is line 1).
    feature_names : tuple of str
    target_name : str
    path : str
    """

    X: NDArray
    cells: list[str]
    numbers: list[float | None]
    lines: list[int]
    feature_names: tuple[str, ...]
    target_name: str
    path: str


def read_csv_cells(
    path: str | os.PathLike,
    *,
    target: str | int | None = None,
    task: str | None = None,
    dtype: DTypeLike = np.float64,
    delimiter: str = ",",
) -> CsvCells:
    """Read a CSV file with a header row as :func:`load_csv` reads it, with
    every check on a cell, but without coding the target.

    Parameters are :func:`load_csv`'s; ``task`` matters only as "regression",
    which makes a text target cell an error naming its line.

    Returns
    -------
    CsvCells

    Raises
    ------
    DataError
        As :func:`load_csv`, except for the checks that need the whole target
        column (a single class).
    """
    path = os.fspath(path)
    limit = _largest(dtype, "load_csv")
    rows = _read_table(path, delimiter=delimiter)
    header_line, header = rows[0]
    m = len(header)
    t = target_index(target, header, path)
    target_name = header[t]
    features = [j for j in range(m) if j != t]

    n = len(rows) - 1
    X = np.empty((n, m - 1), dtype=np.float64)
    cells: list[str] = []
    target_numbers: list[float | None] = []
    for i, (line, fields) in enumerate(rows[1:]):
        for k, j in enumerate(features):
            X[i, k] = _cell_number(fields[j], line, header[j], path, limit)
        cell = fields[t]
        value = _cell_number(cell, line, target_name, path, limit, text_ok=True)
        cells.append(cell)
        target_numbers.append(value)
    if task == "regression" and None in target_numbers:
        i = target_numbers.index(None)
        raise DataError(
            f"{path}, line {rows[i + 1][0]}, column {target_name!r}: "
            f"{cells[i]!r} is not a number (the regression target must be "
            "numeric)"
        )
    return CsvCells(
        X,
        cells,
        target_numbers,
        [line for line, _ in rows[1:]],
        tuple(header[j] for j in features),
        target_name,
        path,
    )


def warn_many_classes(path: str, target_name: str, n: int, n_classes: int) -> None:
    """UserWarning when an inferred label column looks like names or ids."""
    if n_classes > MAX_INFERRED_CLASSES and n < MIN_ROWS_PER_CLASS * n_classes:
        warnings.warn(
            f"{path}: target column {target_name!r} was read as class labels with "
            f"{n_classes} classes for {n} rows ({n / n_classes:.1f} rows per "
            "class); if it is not a label, choose another target or pass "
            "task='regression'",
            UserWarning,
            stacklevel=3,
        )


def encode_target(
    cells: list[str],
    *,
    task: str | None,
    target_name: str,
    path: str,
    limit: float = math.inf,
) -> tuple[NDArray, str, tuple[str, ...] | None]:
    """(y, task, classes) from a target column's stripped text cells, coded
    as :func:`load_csv` codes them (task inference, label order and names).

    For readers that have no line numbers: a bad cell is a DataError naming
    the column and its data row (from 1).
    """
    numbers = []
    for i, cell in enumerate(cells):
        where = f"{path}, column {target_name!r}, data row {i + 1}"
        if not cell:
            raise DataError(f"{where}: missing value")
        value = parse_number(cell)
        if value is not None and not (math.isfinite(value) and abs(value) <= limit):
            raise DataError(f"{where}: {cell!r} is not finite or too large")
        numbers.append(value)
    numeric = all(v is not None for v in numbers)
    inferred = task is None
    if inferred:
        task = _infer_task(numbers, numeric)
    if task == "regression":
        if not numeric:
            i = numbers.index(None)
            raise DataError(
                f"{path}, column {target_name!r}, data row {i + 1}: {cells[i]!r} is "
                "not a number (the regression target must be numeric)"
            )
        return np.array(numbers, dtype=np.float64).reshape(-1, 1), task, None
    y, classes = _labels(list(cells), numeric)
    if inferred:
        warn_many_classes(path, target_name, len(cells), len(classes))
    if len(classes) < 2:
        raise DataError(
            f"{path}, column {target_name!r}: only one class ({classes[0]!r}); "
            "classification needs at least 2"
        )
    return y, task, classes


def _read_table(
    path: str, min_columns: int = 2, delimiter: str = ","
) -> list[tuple[int, list[str]]]:
    """The file's records as by _read_rows, checked: a valid header first, at
    least one data row, every row as long as the header."""
    rows = _read_rows(path, delimiter)
    if not rows:
        raise DataError(f"{path}: file is empty; expected a header row and data rows")
    header_line, header = rows[0]
    _check_header(header, header_line, path, min_columns)
    if len(rows) == 1:
        raise DataError(f"{path}, line {header_line}: header only, no data rows")
    for line, fields in rows[1:]:
        if len(fields) != len(header):
            raise DataError(
                f"{path}, line {line}: {len(fields)} fields, but the header "
                f"(line {header_line}) has {len(header)}"
            )
    return rows


def load_features(
    path: str | os.PathLike,
    feature_names: list[str],
    dtype: DTypeLike = np.float64,
    delimiter: str = ",",
) -> NDArray:
    """The named feature columns of a CSV file, for prediction.

    Parameters
    ----------
    path : str or path-like
        A CSV file with a header row, read as :func:`load_csv` reads it.
    feature_names : list of str
        Columns to take, in this order (a model's training features); other
        columns, such as the target, are ignored.
    dtype : float32 or float64
        As in :func:`load_csv`: a value too large for it is an error.

    Returns
    -------
    ndarray of shape (n_samples, len(feature_names)), float64

    Raises
    ------
    DataError
        As :func:`load_csv`, and when a named column is missing (the message
        lists them and the file's columns).
    """
    path = os.fspath(path)
    limit = _largest(dtype, "load_features")
    rows = _read_table(path, min_columns=1, delimiter=delimiter)
    header_line, header = rows[0]
    missing = [name for name in feature_names if name not in header]
    if missing:
        raise DataError(
            f"{path}, line {header_line}: the model takes {len(feature_names)} "
            f"features ({', '.join(map(repr, feature_names))}); missing "
            f"{', '.join(map(repr, missing))}"
        )
    columns = [header.index(name) for name in feature_names]
    X = np.empty((len(rows) - 1, len(columns)), dtype=np.float64)
    for i, (line, fields) in enumerate(rows[1:]):
        for k, j in enumerate(columns):
            X[i, k] = _cell_number(fields[j], line, header[j], path, limit)
    return X


def _check_header(header: list[str], line: int, path: str, min_columns: int) -> None:
    if len(header) < min_columns:
        raise DataError(
            f"{path}, line {line}: only {len(header)} column "
            f"({', '.join(map(repr, header))}); need at least one feature column "
            "and a target column"
        )
    seen: dict[str, int] = {}
    for j, name in enumerate(header):
        if not name:
            raise DataError(f"{path}, line {line}, column {j + 1}: empty column name")
        if name in seen:
            raise DataError(
                f"{path}, line {line}: duplicate column name {name!r} (columns "
                f"{seen[name] + 1} and {j + 1})"
            )
        seen[name] = j


def _largest(dtype: DTypeLike, who: str) -> float:
    """The largest finite value of a float32 or float64 dtype."""
    dt = np.dtype(dtype)
    if dt not in (np.float32, np.float64):
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dt}")
    return float(np.finfo(dt).max)


def _cell_number(
    cell: str,
    line: int,
    column: str,
    path: str,
    limit: float = math.inf,
    *,
    text_ok: bool = False,
) -> float | None:
    """The finite number in cell; DataError if it is empty, NaN or infinite,
    larger in magnitude than limit, or not a number (None instead when
    text_ok)."""
    where = f"{path}, line {line}, column {column!r}"
    if not cell:
        raise DataError(f"{where}: missing value")
    value = parse_number(cell)
    if value is None:
        if text_ok:
            return None
        raise DataError(f"{where}: {cell!r} is not a number")
    if not math.isfinite(value):
        if _written_non_finite(cell):
            raise DataError(
                f"{where}: {cell!r} is not a finite number (NaN or infinity)"
            )
        raise DataError(f"{where}: {cell!r} is too large for float64")
    if abs(value) > limit:
        raise DataError(
            f"{where}: {cell!r} is too large for float32 (largest {limit:.3g}); "
            "use float64"
        )
    return value


def _written_non_finite(cell: str) -> bool:
    """True when the text itself says NaN or infinity (not an overflow)."""
    text = cell.strip().lower().lstrip("+-")
    return text in ("nan", "inf", "infinity")


def _infer_task(numbers: list[float | None], numeric: bool) -> str:
    if not numeric:
        return "classification"
    return infer_numeric_task(np.array(numbers, dtype=np.float64))


def infer_numeric_task(values: NDArray) -> str:
    """The task ``load_csv`` infers for a numeric target column: classification
    when every value is an integer and there are at most
    ``min(MAX_INFERRED_CLASSES, max(2, n // 2))`` distinct values."""
    if not np.all(values == np.floor(values)):
        return "regression"
    limit = min(MAX_INFERRED_CLASSES, max(2, len(values) // 2))
    return "classification" if len(np.unique(values)) <= limit else "regression"


def train_val_split(
    n: int,
    val_fraction: float,
    seed: int | None,
    *,
    stratify: NDArray | None = None,
) -> tuple[NDArray, NDArray]:
    """Seeded split of row indices 0..n-1 into training and validation sets.

    Parameters
    ----------
    n : int
        Number of rows, at least 1.
    val_fraction : float in [0, 1)
        Share of rows for validation, ``round(val_fraction * n)`` rows, but at
        least 1 and at most n - 1 when val_fraction > 0. 0 keeps every row for
        training.
    seed : int or None
        Seed of ``numpy.random.default_rng``; the same seed gives the same split.
    stratify : ndarray of shape (n,), int, optional
        Class indices: each class then gets its share of validation rows
        (largest remainder), so class proportions match on both sides.

    Returns
    -------
    train_idx, val_idx : ndarray of int64, sorted
        Disjoint, together 0..n-1. ``val_idx`` is empty when val_fraction is 0.

    Raises
    ------
    ValueError
        val_fraction outside [0, 1), n < 1,
        or a split that leaves no training row (n = 1 with val_fraction > 0).
    """
    if (
        isinstance(val_fraction, bool)
        or not isinstance(val_fraction, Real)
        or not 0.0 <= float(val_fraction) < 1.0
    ):
        raise ValueError(
            f"train_val_split: val_fraction must be in [0, 1), got {val_fraction!r}"
        )
    if isinstance(n, bool) or not isinstance(n, Integral) or n < 1:
        raise ValueError(f"train_val_split: n must be a positive integer, got {n!r}")
    n = int(n)
    frac = float(val_fraction)
    if frac == 0.0:
        return np.arange(n, dtype=np.int64), np.empty(0, dtype=np.int64)
    if n < 2:
        raise ValueError(
            f"train_val_split: val_fraction {val_fraction:g} leaves no training "
            "rows: the data has "
            f"only {n} row"
        )
    n_val = min(max(round(frac * n), 1), n - 1)
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    if stratify is None:
        val = perm[:n_val]
    else:
        labels = np.asarray(stratify)
        if labels.shape != (n,):
            raise ValueError(
                f"train_val_split: stratify has shape {labels.shape}, expected ({n},)"
            )
        val = _stratified(perm, labels[perm], n_val)
    mask = np.zeros(n, dtype=bool)
    mask[val] = True
    return np.flatnonzero(~mask).astype(np.int64), np.flatnonzero(mask).astype(np.int64)


def _stratified(perm: NDArray, labels: NDArray, n_val: int) -> NDArray:
    """The first quota rows of each class in perm order; quotas proportional to
    class sizes (largest remainder), summing to n_val."""
    classes, counts = np.unique(labels, return_counts=True)
    exact = counts * (n_val / len(labels))
    quota = np.floor(exact).astype(np.int64)
    short = n_val - int(quota.sum())
    # Stable order: ties in the remainder go to the class listed first.
    quota[np.argsort(-(exact - quota), kind="stable")[:short]] += 1
    picks = [perm[labels == c][:q] for c, q in zip(classes, quota, strict=True)]
    return np.concatenate(picks)


#: Rows a Standardizer converts to float64 at a time.
_BLOCK_ROWS = 1 << 14


class Standardizer:
    """Per-feature z-scores: (X - mean) / std, with statistics from training rows.

    A column with zero standard deviation (constant) gets std 1, so it maps to
    0 instead of dividing by zero.

    Parameters
    ----------
    mean, std : array-like of shape (n_features,), optional
        Statistics to reuse (for example from a saved model); otherwise call
        :meth:`fit`.

    Attributes
    ----------
    mean, std : ndarray of shape (n_features,), float64, or None before fit
    """

    def __init__(self, mean: object = None, std: object = None) -> None:
        self.mean: NDArray | None = None
        self.std: NDArray | None = None
        if (mean is None) != (std is None):
            raise ValueError("Standardizer: give both mean and std, or neither")
        if mean is not None:
            m = np.array(mean, dtype=np.float64)
            s = np.array(std, dtype=np.float64)
            if m.ndim != 1 or s.shape != m.shape:
                raise ValueError(
                    f"Standardizer: mean and std must be 1-D of equal length, got "
                    f"shapes {m.shape} and {s.shape}"
                )
            if not (
                np.all(np.isfinite(m)) and np.all(np.isfinite(s)) and np.all(s > 0)
            ):
                raise ValueError(
                    "Standardizer: mean must be finite and std finite and positive"
                )
            self.mean, self.std = m, s

    def __repr__(self) -> str:
        n = "unfitted" if self.mean is None else f"n_features={self.mean.size}"
        return f"Standardizer({n})"

    def fit(self, X: NDArray, rows: NDArray | None = None) -> Standardizer:
        """Store the column means and standard deviations (ddof=0) of X, shape
        (n_samples, n_features), over ``rows`` (indices; all rows when None,
        at least one); returns self.

        Computed one column at a time in float64 by
        :class:`fastbp.data.stats.Moments` (the statistic streamed and
        sharded reading merge), so the memory needed beyond X is one column,
        whatever X's dtype. A column holding values beyond 1e100 (whose
        summed squares could overflow float64) is divided by a power of two
        first and the results multiplied back: exact, and finite.
        """
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[0] == 0 or (rows is not None and len(rows) == 0):
            raise ValueError(
                f"Standardizer.fit: X has shape {X.shape}, expected (n_samples, "
                "n_features) with n_samples >= 1"
            )
        mean, std = np.empty(X.shape[1]), np.empty(X.shape[1])
        for j in range(X.shape[1]):
            moments = Moments(1)
            moments.add((X[:, j] if rows is None else X[rows, j]).reshape(-1, 1))
            m, s = moments.mean_std()
            mean[j], std[j] = m[0], s[0]
        self.mean, self.std = mean, std
        return self

    def transform_(self, X: NDArray) -> NDArray:
        """(X - mean) / std in place, X a float array (n_samples, n_features);
        returns X. The arithmetic is float64, rounded once into X's dtype,
        a block of rows at a time."""
        self._check_fitted(X)
        for s in range(0, X.shape[0], _BLOCK_ROWS):
            block = X[s : s + _BLOCK_ROWS]
            block[...] = (block.astype(np.float64) - self.mean) / self.std
        return X

    def _check_fitted(self, X: NDArray) -> None:
        if self.mean is None or self.std is None:
            raise RuntimeError("Standardizer.transform: call fit() first")
        if X.ndim != 2 or X.shape[1] != self.mean.size:
            raise ValueError(
                f"Standardizer.transform: X has shape {X.shape}, expected "
                f"(n_samples, {self.mean.size})"
            )

    def transform(self, X: NDArray, dtype: DTypeLike = np.float64) -> NDArray:
        """(X - mean) / std as a new C-contiguous array of dtype, shape of X."""
        X = np.asarray(X, dtype=np.float64)
        self._check_fitted(X)
        return np.ascontiguousarray((X - self.mean) / self.std, dtype=dtype)
