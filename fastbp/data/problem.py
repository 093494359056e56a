"""Problem preparation: from a table to what ``fastbp.train`` takes, and back.

Everything between reading the data and training lives here, once, for the
command line and for the scikit-learn-style estimators alike:

- :class:`Problem`: features, target, task and label encoding, from a CSV
  file (:meth:`Problem.from_csv`), from arrays (:meth:`Problem.from_arrays`)
  or the XOR set (:meth:`Problem.xor`);
- :meth:`Problem.prepare`: target coding for a loss (class indices, one-hot
  or 0/1), the seeded (stratified) train/validation split, standardization
  fitted on the training rows only, and the cast to the training dtype; the
  result, :class:`Prepared`, holds the arrays and knows the metric;
- the model-file schema: :meth:`Prepared.metadata` writes it, :class:`Predictor`
  reads it back to predict and decode labels;
- :func:`training_bytes`: the memory a model would need, checked before
  anything is allocated.

Messages name this library's parameters (``val_fraction``, ``loss``), never
command-line flags.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from numpy.typing import DTypeLike, NDArray

from .._validate import as_dtype
from ..nn.layers import Sequential
from .loading import DataError, Standardizer, train_val_split
from .loading import xor as xor_data
from .plan import TablePlan
from .predictor import META_KEYS, Predictor, check_metadata, model_metadata, save
from .stats import Moments
from .tables import read_table

__all__ = [
    "Problem",
    "Prepared",
    "Predictor",
    "LOSS_NAMES",
    "training_bytes",
    "model_metadata",
    "available_bytes",
    "check_metadata",
    "save",
    "META_KEYS",
]

#: Loss names a problem can be prepared for: "ce" (softmax cross-entropy on
#: class indices) or "mse" (mean squared error on values, one-hot rows or 0/1).
LOSS_NAMES = ("mse", "ce")
TASKS = ("regression", "classification")


@dataclass(frozen=True, eq=False)
class Problem:
    """A supervised learning problem: features, target and what they mean.

    Attributes
    ----------
    X : ndarray of shape (n_samples, n_features), float32 or float64
    y : ndarray
        Regression: (n_samples, 1) float64. Classification: (n_samples,)
        int64 class indices into ``classes``.
    feature_names : tuple of str
    target_name : str
    task : {"regression", "classification"}
    classes : tuple of str or None
        Classification: the labels as written, ``classes[k]`` for index k.
    name : str
        Where the data came from (a path, "xor", "arrays").
    standardize : bool
        Whether features are standardized before training (XOR's 0/1 inputs
        are used as they are).
    default_loss : {"mse", "ce"}
        The loss used when none is asked for: cross-entropy for
        classification, MSE for regression and for XOR (one output unit).
    first_row : int
        Data rows of the file before X's first row: 0, or a shard's offset
        (:func:`fastbp.data.shard.load_shard`), so that messages name the
        whole file's data row.
    data_rows : ndarray of int64, or None
        The file's data row (from 0) of each row of X, when rows were left
        out (a missing target); None when row i is data row first_row + i.
    plan : TablePlan or None
        The column plan X was encoded with (:mod:`fastbp.data.plan`): a raw
        table's roles, fills, levels and the standardization of every input.
        None for a table read as clean numbers (``strict``), arrays and XOR.
    """

    X: NDArray
    y: NDArray
    feature_names: tuple[str, ...]
    target_name: str
    task: str
    classes: tuple[str, ...] | None
    name: str
    standardize: bool = True
    default_loss: str = "mse"
    first_row: int = 0
    plan: TablePlan | None = None
    data_rows: NDArray | None = None

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    @property
    def n_features(self) -> int:
        return self.X.shape[1]

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike,
        *,
        target: str | int | None = None,
        task: str | None = None,
        dtype: DTypeLike = np.float32,
        format: str | None = None,
        progress=None,
    ) -> Problem:
        """Read a CSV, TSV (optionally gzip/zstd), Parquet or Feather file, or
        "-" for CSV on standard input (:func:`fastbp.tables.read_table`):
        target by name or index, task inferred when None, features straight
        into one array of dtype. Raises :class:`fastbp.data.DataError` naming
        the file, line (or data row) and column."""
        data = read_table(
            path, target=target, task=task, dtype=dtype, format=format,
            progress=progress,
        )  # fmt: skip
        return cls.from_dataset(data, dtype=dtype, name=data.path)

    @classmethod
    def from_csv(
        cls,
        path: str | os.PathLike,
        *,
        target: str | int | None = None,
        task: str | None = None,
        dtype: DTypeLike = np.float32,
    ) -> Problem:
        """:meth:`from_file` for a CSV file."""
        return cls.from_file(path, target=target, task=task, dtype=dtype, format="csv")

    @classmethod
    def from_dataset(cls, ds, *, dtype: DTypeLike, name: str) -> Problem:
        """A problem from a :class:`fastbp.data.Dataset` (``load_csv``'s
        result), features cast to dtype."""
        return cls(
            np.ascontiguousarray(ds.X, dtype=dtype),
            ds.y,
            ds.feature_names,
            ds.target_name,
            ds.task,
            ds.classes,
            name,
            True,
            "ce" if ds.task == "classification" else "mse",
        )

    @classmethod
    def xor(cls) -> Problem:
        """The four XOR points, a two-class problem trained with MSE on one
        output and unstandardized 0/1 inputs."""
        X, T = xor_data(np.float64)
        y = T[:, 0].astype(np.int64)
        return cls(
            X, y, ("x1", "x2"), "xor", "classification", ("0", "1"), "xor", False
        )

    @classmethod
    def from_arrays(
        cls,
        X: object,
        y: object,
        *,
        task: str | None = None,
        feature_names: list[str] | None = None,
        target_name: str = "target",
    ) -> Problem:
        """A problem from array-likes X, shape (n_samples, n_features), and y,
        shape (n_samples,) (or (n_samples, 1) for regression).

        task None: classification when y holds integers, booleans or text,
        regression for floats. Class labels are sorted (numbers by value) and
        kept as strings in ``classes``.
        """
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[0] == 0:
            raise ValueError(
                f"Problem.from_arrays: X must have shape (n_samples, n_features) "
                f"with n_samples >= 1, got {X.shape}"
            )
        if not np.all(np.isfinite(X)):
            raise ValueError("Problem.from_arrays: X contains NaN or infinity")
        y = np.asarray(y)
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.shape != (X.shape[0],):
            raise ValueError(
                f"Problem.from_arrays: y must have shape ({X.shape[0]},), got {y.shape}"
            )
        if task is None:
            task = "regression" if y.dtype.kind == "f" else "classification"
        if task not in TASKS:
            raise ValueError(
                f"Problem.from_arrays: task must be one of {TASKS} or None, got "
                f"{task!r}"
            )
        names = feature_names or [f"x{j + 1}" for j in range(X.shape[1])]
        if len(names) != X.shape[1]:
            raise ValueError(
                f"Problem.from_arrays: {len(names)} feature_names for "
                f"{X.shape[1]} columns"
            )
        if task == "regression":
            values = y.astype(np.float64).reshape(-1, 1)
            if not np.all(np.isfinite(values)):
                raise ValueError("Problem.from_arrays: y contains NaN or infinity")
            return cls(
                X, values, tuple(names), target_name, task, None, "arrays", True, "mse"
            )
        classes, index = np.unique(y, return_inverse=True)
        if len(classes) < 2:
            raise ValueError(
                "Problem.from_arrays: classification needs at least 2 classes, "
                f"y has {len(classes)}"
            )
        return cls(
            X,
            index.astype(np.int64),
            tuple(names),
            target_name,
            task,
            tuple(str(c) for c in classes),
            "arrays",
            True,
            "ce",
        )

    def prepare(
        self,
        *,
        loss: str | None = None,
        val_fraction: float = 0.0,
        seed: int | None = 0,
        dtype: DTypeLike = np.float32,
        copy: bool = True,
        scaler: Standardizer | None = None,
        val_rows: NDArray | None = None,
        scale_target: bool = False,
        target_scale: tuple[float, float] | None = None,
    ) -> Prepared:
        """Arrays ready for ``fastbp.train``.

        Parameters
        ----------
        loss : "mse", "ce" or None (``default_loss``)
            "ce" needs a classification problem and gives int64 class indices;
            "mse" gives values (regression), 0/1 in one column (two classes)
            or one-hot rows (more).
        val_fraction : float in [0, 1)
            Share of rows held out for validation (stratified by class for
            classification); see :func:`fastbp.data.train_val_split`.
        seed : int or None
            Seeds the split.
        dtype : float32 or float64
            Of the feature arrays and float targets.
        copy : bool
            True leaves the problem's X as it is. False reuses its memory for
            the training rows (when X already has ``dtype``): they are moved
            to the front of X and standardized there, so the peak is X plus
            the validation rows, not two X; the problem's X is then spent
            (``fastbp train`` does this). Both give the same arrays.
        scaler : Standardizer, optional
            Fitted statistics to standardize with (when ``standardize``)
            instead of fitting them here: a shard's problem gets the whole
            file's (:func:`fastbp.shard.load_shard`).
        val_rows : ndarray of bool, shape (n_samples,), optional
            The validation rows, instead of the seeded split (``val_fraction``
            and ``seed`` are then not used).
        scale_target : bool
            Regression: train on (y - mean) / std of the training rows'
            targets, so that the loss and learning rate behave alike whatever
            the target's units; ``Prepared.target_scale`` holds (mean, std),
            and predictions and reported losses are put back in the target's
            units.
        target_scale : (mean, std), optional
            Regression: the scale to train with, instead of the training
            rows' (a shard gets every rank's).

        The standardizer (when ``standardize``) is fitted on the training
        rows only, so validation rows do not leak into it.
        """
        loss = self._check_loss(loss)
        dtype = as_dtype(dtype, "prepare")
        train_idx, val_idx = self._split(val_fraction, seed, val_rows)
        scaler = self._scaler(scaler, train_idx)
        with np.errstate(over="ignore"):  # reported by _check_squares
            targets, n_outputs, metric = self._targets(loss, dtype)
        if self.task == "regression":
            self._check_squares(targets, None, dtype, "target")
        X_val = self._rows(val_idx, scaler, dtype)  # before rows move in place
        if copy or self.X.dtype != dtype or not self.X.flags.writeable:
            X_train = self._rows(train_idx, scaler, dtype)
        else:
            X_train = _compact(self.X, train_idx)
            with np.errstate(over="ignore"):
                if scaler:
                    scaler.transform_(X_train)
            self._check_squares(X_train, train_idx, dtype, "features")
        T_train = np.ascontiguousarray(targets[train_idx])
        T_val = np.ascontiguousarray(targets[val_idx])
        if target_scale is None and scale_target and self.task == "regression":
            target_scale = _target_moments(T_train)
        if target_scale is not None:
            mean, std = target_scale
            T_train = ((T_train - mean) / std).astype(dtype)
            T_val = ((T_val - mean) / std).astype(dtype)
        return Prepared(
            problem=self,
            loss=loss,
            metric=metric,
            n_outputs=n_outputs,
            scaler=scaler,
            X_train=X_train,
            T_train=T_train,
            X_val=X_val,
            T_val=T_val,
            dtype=dtype,
            target_scale=target_scale,
        )

    def _check_loss(self, loss: str | None) -> str:
        """The loss name to prepare for (ValueError for one that does not fit
        the task)."""
        loss = self.default_loss if loss is None else loss
        if loss not in LOSS_NAMES:
            raise ValueError(f"prepare: loss must be one of {LOSS_NAMES}, got {loss!r}")
        if loss == "ce" and self.task != "classification":
            raise ValueError(
                "prepare: loss 'ce' needs a classification target; use loss 'mse' "
                "for regression"
            )
        return loss

    def _split(self, val_fraction, seed, val_rows) -> tuple[NDArray, NDArray]:
        """(training rows, validation rows) as int64 indices: the seeded split
        (stratified by class), or the given bool mask."""
        if val_rows is None:
            stratify = self.y if self.task == "classification" else None
            return train_val_split(
                self.n_samples, val_fraction, seed, stratify=stratify
            )
        val_rows = np.asarray(val_rows)
        if val_rows.dtype != np.bool_ or val_rows.shape != (self.n_samples,):
            raise ValueError(
                f"prepare: val_rows must be a bool array of shape "
                f"({self.n_samples},), got {val_rows.dtype} {val_rows.shape}"
            )
        return (
            np.flatnonzero(~val_rows).astype(np.int64),
            np.flatnonzero(val_rows).astype(np.int64),
        )

    def _scaler(self, scaler, train_idx: NDArray) -> Standardizer | None:
        """The standardizer to apply: the given one, the plan's, or one
        fitted on the training rows (None when not standardizing)."""
        if scaler is None and self.plan is not None:
            scaler = Standardizer(*self.plan.standardizer())
        if scaler is not None and (
            not isinstance(scaler, Standardizer)
            or scaler.mean is None
            or scaler.mean.shape != (self.n_features,)
        ):
            raise ValueError(
                f"prepare: scaler must be a fitted Standardizer of "
                f"{self.n_features} features, got {scaler!r}"
            )
        if not self.standardize:
            return None
        if scaler is None:
            every = len(train_idx) == self.n_samples
            scaler = Standardizer().fit(self.X, rows=None if every else train_idx)
        return scaler

    def _rows(self, idx: NDArray, scaler, dtype) -> NDArray:
        """Rows idx of X, standardized and rounded once into dtype: one
        gather, standardized in place (the peak is X plus the gathered
        rows). A value out of the dtype's range becomes inf and is reported."""
        part = self.X[idx]
        with np.errstate(over="ignore"):
            part = scaler.transform_(part) if scaler else part
            part = np.asarray(part, dtype=dtype)
        self._check_squares(part, idx, dtype, "features")
        return part

    def _check_squares(
        self, A: NDArray, idx: NDArray | None, dtype: np.dtype, kind: str
    ) -> None:
        """DataError naming the first entry of A whose square overflows dtype:
        the squared error or the first layer's sums would be infinite, and
        training would report a divergence that no learning rate fixes.

        A is ``kind`` "features" (rows idx of X, as trained on) or "target"
        (the coded regression targets, every row).
        """
        limit = np.sqrt(np.finfo(dtype).max)
        bad = ~(np.abs(A) <= limit)
        if not bad.any():
            return
        i, j = np.unravel_index(np.argmax(bad), bad.shape)
        row = int(i if idx is None else idx[i])
        column = self.target_name if kind == "target" else self.feature_names[j]
        where = (
            f"row {row}, column {column!r}"
            if self.name in ("arrays", "xor")
            else f"{self.name}, data row {self._data_row(row) + 1}, column {column!r}"
        )
        advice = "use float64 or scale" if dtype == np.float32 else "scale"
        if kind == "target":
            raise DataError(
                f"{where}: the target {float(self.y.flat[row]):g} is too large "
                f"for {dtype} arithmetic (its square, the squared error, "
                f"overflows); {advice} the target down"
            )
        value = f"{float(self.X[row, j]):g}"
        if self.standardize:
            value += (
                ", standardized with the training rows' mean and std, is "
                f"{float(A[i, j]):.3g} and"
            )
        raise DataError(
            f"{where}: {value} is too large for {dtype} arithmetic (its square "
            f"overflows); {advice} the column down, or drop the row"
        )

    def _data_row(self, row: int) -> int:
        """The file's data row (from 0) of row ``row`` of X."""
        if self.data_rows is not None:
            return int(self.data_rows[row])
        return self.first_row + row

    def _targets(self, loss: str, dtype: np.dtype) -> tuple[NDArray, int, str]:
        """(training targets, output units, metric) for the loss."""
        if self.task == "regression":
            return self.y.reshape(-1, 1).astype(dtype), 1, "r2"
        n_classes = len(self.classes)
        if loss == "ce":
            return self.y, n_classes, "accuracy"
        if n_classes == 2:  # one output, target 0/1, thresholded at 0.5
            return self.y.astype(dtype).reshape(-1, 1), 1, "binary_accuracy"
        return np.eye(n_classes, dtype=dtype)[self.y], n_classes, "accuracy"


def _target_moments(T: NDArray) -> tuple[float, float]:
    """(mean, std) of a regression target's training values (in the training
    dtype), float64; std 1 for a constant target. The statistic of
    :class:`fastbp.data.raw.TargetStats.scale`, for one chunk."""
    moments = Moments(1)
    moments.add(T.reshape(-1, 1))
    mean, std = moments.mean_std()
    return float(mean[0]), float(std[0])


def _compact(X: NDArray, idx: NDArray, chunk: int = 1 << 15) -> NDArray:
    """X[idx] for sorted idx, built in place in X's first len(idx) rows and
    returned as a view of them. Row i comes from row idx[i] >= i, so each
    chunk reads rows not yet overwritten; the extra memory is one chunk."""
    n = len(idx)
    if n == len(X):  # sorted distinct indices of every row: X itself
        return X
    for s in range(0, n, chunk):
        e = min(s + chunk, n)
        X[s:e] = X[idx[s:e]]
    return X[:n]


@dataclass(frozen=True, eq=False)
class Prepared:
    """A :class:`Problem` made ready for one training run.

    ``X_train``/``T_train`` and ``X_val``/``T_val`` (possibly empty) are
    C-contiguous arrays of ``dtype`` (targets: int64 class indices for loss
    "ce"); ``n_outputs`` is the width of the model's last layer; ``metric``
    the metric ``fastbp.train`` reports; ``scaler`` the standardizer fitted on
    the training rows, or None.
    """

    problem: Problem
    loss: str
    metric: str
    n_outputs: int
    scaler: Standardizer | None
    X_train: NDArray
    T_train: NDArray
    X_val: NDArray
    T_val: NDArray
    dtype: np.dtype
    #: Regression trained on scaled targets: (mean, std) of the training
    #: rows' targets (prediction = output * std + mean), else None.
    target_scale: tuple[float, float] | None = None

    @property
    def loss_scale(self) -> float:
        """What a loss on the scaled targets is multiplied by to be in the
        target's units (std**2 for squared error; 1 without scaling)."""
        return 1.0 if self.target_scale is None else self.target_scale[1] ** 2

    @property
    def validation(self) -> tuple[NDArray, NDArray] | None:
        """(X_val, T_val), or None when no rows were held out."""
        return (self.X_val, self.T_val) if len(self.X_val) else None

    def metadata(self) -> dict:
        """The model file's ``meta`` object (see :func:`model_metadata`)."""
        p = self.problem
        return model_metadata(
            p.feature_names, p.target_name, p.task, p.classes, self.scaler,
            self.loss, self.metric, plan=p.plan, target_scale=self.target_scale,
        )  # fmt: skip

    def save(
        self, path: str | os.PathLike, model: Sequential, extra: dict | None = None
    ) -> None:
        """Write model and :meth:`metadata` (with the keys of ``extra``, such
        as the training settings ``fastbp train`` records) to a fastbp model
        file, atomically (see :func:`fastbp.io.save_model`)."""
        save(path, model, {**self.metadata(), **(extra or {})})

    def predictor(self, model: Sequential) -> Predictor:
        """The model trained on this preparation, as a :class:`Predictor`
        (what :meth:`save` then :meth:`Predictor.load` would give)."""
        return Predictor.from_metadata(model, self.metadata())


def training_bytes(
    widths: list[int], batch_size: int, dtype: DTypeLike, n_state: int = 1
) -> int:
    """Estimated peak memory, in bytes, of training an MLP of these widths.

    Counts the parameters (values, gradients, the copy made while packing
    them into one buffer, ``n_state`` optimizer state vectors, one temporary
    vector and the float64 draw of the initial weights) and the per-batch
    activations and gradients. Measured peak RSS less the interpreter's, 2-30M-1
    float32, one epoch (2026-11-25): SGD 4118 MiB (layer path; fused 2816),
    Adam 5033 MiB (layer path, the temporary; fused 3285); this gives 4578
    and 5035 MiB.
    """
    itemsize = np.dtype(dtype).itemsize
    n_params = sum((a + 1) * b for a, b in zip(widths[:-1], widths[1:], strict=True))
    per_param = itemsize * (4 + n_state) + 8
    per_row = itemsize * 3 * sum(widths)
    return n_params * per_param + batch_size * per_row


def available_bytes() -> int | None:
    """Memory the system can still give this process (Linux MemAvailable),
    or None where that cannot be read."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None
