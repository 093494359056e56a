"""scikit-learn estimators: :class:`MLPClassifier` and :class:`MLPRegressor`,
and :class:`TableEncoder`, the column plan of ``fastbp train`` for raw tables.

The networks are drop-in replacements for scikit-learn's
``sklearn.neural_network.MLPClassifier`` and ``MLPRegressor``: the same
parameters with the same names, meanings and defaults, the same fitted
attributes and methods, trained by fastbp's fused kernel (no Python per
mini-batch step). Two extra parameters: ``dtype``
("float32", the default, or "float64") and ``n_threads`` (a cap on the
threads training uses). Needs scikit-learn: ``pip install 'fastbp[sklearn]'``.

What follows scikit-learn exactly: Glorot-uniform initialization drawn from
``random_state`` (the same draws as scikit-learn's), the loss (half squared
error; softmax cross-entropy; sigmoid cross-entropy for two classes and
multi-label targets), ``alpha`` as its L2 penalty ``0.5 * alpha * sum ||W||^2
/ (batch weight)`` on weights only, ``sample_weight`` as a weighted mean,
``batch_size="auto"`` = min(200, n), the three learning-rate schedules (SGD
only), the stopping rule (``tol``, ``n_iter_no_change``, ``early_stopping``
on a stratified ``validation_fraction`` with the best weights restored) and
L-BFGS through ``scipy.optimize.minimize(method="L-BFGS-B")``.

Where it differs, on purpose:

- Adam and SGD have PyTorch's update rules (:class:`fastbp.Adam`,
  :class:`fastbp.SGD`). Adam's epsilon is added to the bias-corrected
  sqrt(v) (scikit-learn adds it before the correction); SGD momentum is the
  same update as scikit-learn's at a constant rate.
- Shuffling draws from a generator seeded from ``random_state``, so the
  batches differ from scikit-learn's; fits are reproducible for an integer
  ``random_state``.
- ``learning_rate`` also takes "step" (divide by 10 every third of
  ``max_iter``) and "cosine" decay; ``activation`` also "leaky_relu" and
  "gelu"; ``class_weight`` ("balanced" or a dict) on the classifier.
- For several regression outputs ``loss_`` is the half squared error summed
  over outputs (the loss whose gradient scikit-learn follows); scikit-learn
  reports its mean over outputs.
- Sparse inputs are accepted and made dense.

:class:`TableEncoder` turns raw columns (text categories, missing cells,
bools, dates, in a pandas DataFrame or an Arrow table) into the standardized
inputs of a network as ``fastbp train`` does, so ``Pipeline(TableEncoder(),
MLPClassifier())`` learns from a raw table as the command line does.

``save(path)`` writes fastbp's pickle-free ``.npz`` model file, which
``fastbp predict`` serves; ``load(path)`` reads one written by ``save`` or by
``fastbp train`` (its standardization, and the column plan of a raw table,
are applied in ``predict``: a raw-table model reads raw DataFrames and Arrow
tables). :func:`save` writes a ``Pipeline(TableEncoder(), MLPClassifier())``
as one such file.

:func:`register_onnx` teaches skl2onnx the three estimators, so that
``skl2onnx.to_onnx`` converts them, alone or in a Pipeline (``pip install
'fastbp[onnx]'``); :func:`onnx_inputs` lists a column plan's inputs.
"""

from __future__ import annotations

import contextlib
import math
import os
import warnings
from numbers import Integral, Real

import numpy as np
from numpy.typing import NDArray
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    TransformerMixin,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import LabelBinarizer
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import type_of_target, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .nn.layers import GELU, LeakyReLU, Linear, ReLU, Sequential, Sigmoid, Tanh
from .nn.losses import BinaryCrossEntropyLoss, CrossEntropyLoss, SquaredErrorLoss
from .nn.optim import SGD, Adam
from .training.api import train
from .training.checks import cast_checked
from .training.fullbatch import lbfgs, loss_and_gradient
from .training.result import DivergenceError
from .training.schedules import SCHEDULES, EarlyStopping, schedule

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "TableEncoder",
    "save",
    "register_onnx",
    "onnx_inputs",
]

#: scikit-learn's activation names -> fastbp layer classes (None: identity).
ACTIVATIONS = {
    "identity": None,
    "logistic": Sigmoid,
    "tanh": Tanh,
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "gelu": GELU,
}
SOLVERS = ("lbfgs", "sgd", "adam")


def _check_params(est) -> None:
    """ValueError/TypeError naming the first parameter out of its range."""
    name = type(est).__name__

    def fail(param, expected):
        raise ValueError(
            f"{name}: {param} must be {expected}, got {getattr(est, param)!r}"
        )

    def number(param, low, high=math.inf, low_open=False, integer=False):
        v = getattr(est, param)
        kinds = Integral if integer else Real
        if isinstance(v, bool) or not isinstance(v, kinds) or math.isnan(v):
            fail(param, "an integer" if integer else "a number")
        if v < low or (low_open and v == low) or v > high:
            lo = "(" if low_open else "["
            fail(param, f"in {lo}{low}, {high}]")

    sizes = est.hidden_layer_sizes
    sizes = list(sizes) if np.iterable(sizes) else [sizes]
    if not all(isinstance(s, Integral) and not isinstance(s, bool) for s in sizes):
        fail("hidden_layer_sizes", "a tuple of positive integers")
    if any(s <= 0 for s in sizes):
        fail("hidden_layer_sizes", "a tuple of positive integers")
    for flag in ("shuffle", "warm_start", "nesterovs_momentum", "early_stopping"):
        if not isinstance(getattr(est, flag), bool | np.bool_):
            fail(flag, "True or False")
    if est.activation not in ACTIVATIONS:
        fail("activation", f"one of {sorted(ACTIVATIONS)}")
    if est.solver not in SOLVERS:
        fail("solver", f"one of {list(SOLVERS)}")
    if est.learning_rate not in SCHEDULES:
        fail("learning_rate", f"one of {list(SCHEDULES)}")
    if est.batch_size != "auto":
        number("batch_size", 1, integer=True)
    number("alpha", 0.0)
    number("learning_rate_init", 0.0, low_open=True)
    number("power_t", 0.0)
    number("max_iter", 1, integer=True)
    number("tol", 0.0)
    number("momentum", 0.0, 1.0)
    number("validation_fraction", 0.0, 1.0, low_open=True)
    if est.validation_fraction >= 1:
        fail("validation_fraction", "in (0, 1)")
    for beta in ("beta_1", "beta_2"):
        number(beta, 0.0, 1.0)
        if getattr(est, beta) >= 1:
            fail(beta, "in [0, 1)")
    number("epsilon", 0.0, low_open=True)
    if est.n_iter_no_change != math.inf:
        number("n_iter_no_change", 1, integer=True)
    number("max_fun", 1, integer=True)
    if est.dtype not in ("float32", "float64", np.float32, np.float64):
        fail("dtype", "'float32' or 'float64'")
    if est.n_threads is not None:
        number("n_threads", 1, integer=True)


class _BaseMLP(BaseEstimator):
    """What both estimators share: parameters, fitting, the network."""

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dtype="float32",
        n_threads=None,
    ):
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.solver = solver
        self.alpha = alpha
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.learning_rate_init = learning_rate_init
        self.power_t = power_t
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.random_state = random_state
        self.tol = tol
        self.verbose = verbose
        self.warm_start = warm_start
        self.momentum = momentum
        self.nesterovs_momentum = nesterovs_momentum
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.n_iter_no_change = n_iter_no_change
        self.max_fun = max_fun
        self.dtype = dtype
        self.n_threads = n_threads

    # --- the network -----------------------------------------------------

    def _network(self, extra_sigmoid: bool = False) -> Sequential:
        """A fastbp Sequential holding copies of coefs_ and intercepts_."""
        dtype = np.dtype(self.dtype)
        act = ACTIVATIONS[self.activation]
        layers = []
        last = len(self.coefs_) - 1
        for i, (W, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            layer = Linear(*W.shape, dtype=dtype)
            layer.weight.data[...] = W
            layer.bias.data[...] = b
            layers.append(layer)
            if i < last and act is not None:
                layers.append(act())
        if extra_sigmoid:
            layers.append(Sigmoid())
        return Sequential(*layers)

    def _store(self, model: Sequential) -> None:
        """coefs_ and intercepts_ from model's Linear layers (copies)."""
        linears = [layer for layer in model.layers if isinstance(layer, Linear)]
        self.coefs_ = [layer.weight.data.copy() for layer in linears]
        self.intercepts_ = [layer.bias.data.copy() for layer in linears]

    def _init_coefs(self, layer_units, rs) -> None:
        """scikit-learn's Glorot-uniform initialization, the same draws."""
        factor = 2.0 if self.activation == "logistic" else 6.0
        dtype = np.dtype(self.dtype)
        self.coefs_, self.intercepts_ = [], []
        for fan_in, fan_out in zip(layer_units[:-1], layer_units[1:], strict=True):
            bound = np.sqrt(factor / (fan_in + fan_out))
            self.coefs_.append(
                rs.uniform(-bound, bound, (fan_in, fan_out)).astype(dtype)
            )
            self.intercepts_.append(rs.uniform(-bound, bound, fan_out).astype(dtype))

    def _decision(self, X) -> NDArray:
        """The network's output (logits for a classifier) for the rows of X."""
        inputs = self._inputs(X)  # first: NotFittedError before any use
        return self._network().serve(inputs)

    def _inputs(self, X) -> NDArray:
        """The network's inputs for X, in dtype: X validated, or, for a model
        loaded from a ``fastbp train`` file, read and standardized as
        ``fastbp predict`` reads its data (through the file's column plan for
        a raw table: X is then a DataFrame, an Arrow table or a dict of the
        raw columns)."""
        check_is_fitted(self, "coefs_")
        if getattr(self, "_plan", None) is not None:
            from .data.predictor import Predictor, as_table

            name = type(self).__name__
            table = as_table(X)
            if table is None:  # numbers in the order of feature_names_in_
                warnings.warn(
                    f"X does not have valid feature names, but {name} was fitted "
                    "with feature names",
                    UserWarning,
                    stacklevel=4,
                )
            served = Predictor.from_metadata(self._network(), self._meta())
            return served.inputs(X if table is None else table, where=f"{name}.predict")
        X = _dense(
            validate_data(
                self,
                X,
                accept_sparse=["csr", "csc"],
                dtype=(np.float64, np.float32),
                reset=False,
            )
        )
        scaler = getattr(self, "_standardizer", None)
        name, dtype = type(self).__name__, np.dtype(self.dtype)
        if scaler is None:
            return cast_checked(X, dtype, f"{name}.predict", "X")
        # As fastbp predict: in float64, rounded once into dtype.
        mean, std = scaler
        inputs = (X.astype(np.float64) - mean) / std
        return cast_checked(inputs, dtype, f"{name}.predict", "standardized X")

    # --- fitting ---------------------------------------------------------

    def _fit(self, X, y, sample_weight, incremental: bool):
        _check_params(self)
        sizes = self.hidden_layer_sizes
        sizes = list(sizes) if np.iterable(sizes) else [sizes]
        first_pass = not hasattr(self, "coefs_") or (
            not self.warm_start and not incremental
        )
        if not first_pass and self._from_file():
            raise ValueError(
                f"{type(self).__name__}: a model loaded from a fastbp train file "
                "(with its column plan, standardization or target scale) cannot "
                "continue training (warm_start, partial_fit); fit a new one"
            )
        X, Y = self._validate_input(X, y, incremental, reset=first_pass)
        X = cast_checked(_dense(X), np.dtype(self.dtype), type(self).__name__, "X")
        n, n_features = X.shape
        weights = self._weights(sample_weight, Y)
        rs = check_random_state(self.random_state)
        layer_units = [n_features, *sizes, self._n_outputs(Y)]
        if first_pass:
            self._standardizer = self._plan = self._target_scale = None
            self._target_name = None
            self.n_outputs_ = layer_units[-1]
            self.n_layers_ = len(layer_units)
            self.out_activation_ = self._out_activation()
            self.n_iter_ = 0
            self.t_ = 0
            self._init_coefs(layer_units, rs)
            self._optimizer_state = None
            if self.solver != "lbfgs":
                self.loss_curve_ = []
                if self.early_stopping:
                    self.validation_scores_ = []
                    self.best_validation_score_ = -np.inf
                    self.best_loss_ = None
                else:
                    self.validation_scores_ = None
                    self.best_validation_score_ = None
                    self.best_loss_ = np.inf
        elif [w.shape for w in self.coefs_] != list(
            zip(layer_units[:-1], layer_units[1:], strict=True)
        ):
            raise ValueError(
                f"{type(self).__name__}: the network of the previous fit has "
                f"layer sizes {[w.shape[0] for w in self.coefs_]} + "
                f"[{self.coefs_[-1].shape[1]}]; warm_start needs {layer_units}"
            )
        if self.solver == "lbfgs":
            self._fit_lbfgs(X, Y, weights)
        else:
            self._fit_stochastic(X, Y, weights, rs, incremental)
        return self

    def _weights(self, sample_weight, Y) -> NDArray | None:
        """sample_weight checked, as a float64 (n,) array (a scalar spread
        over the n rows of the coded targets Y), or None."""
        n = len(Y)
        if sample_weight is None:
            return None
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.ndim == 0:
            w = np.full(n, float(w))
        if w.shape != (n,):
            raise ValueError(f"sample_weight.shape == {w.shape}, expected ({n},)")
        if not np.all(np.isfinite(w)) or w.min() < 0:
            raise ValueError("sample_weight must be finite and non-negative")
        if w.sum() <= 0:
            raise ValueError("sample_weight must not be all zero")
        return w

    def _loss(self):
        return {
            "identity": SquaredErrorLoss,
            "softmax": CrossEntropyLoss,
            "logistic": BinaryCrossEntropyLoss,
        }[self.out_activation_]()

    def _fit_stochastic(self, X, Y, weights, rs, incremental):
        """SGD or Adam: ``max_iter`` epochs of fastbp.train (one for
        partial_fit), scikit-learn's validation split, schedule and stopping
        rule, then its fitted attributes."""
        if self.early_stopping and incremental:
            raise ValueError("partial_fit does not support early_stopping=True")
        model = self._network()
        opt = self._optimizer(model, incremental)
        X, Y, weights, val = self._validation_split(X, Y, weights, rs)
        epochs = 1 if incremental else self.max_iter
        with _non_finite_as_value_error(type(self).__name__):
            result = train(
                model,
                self._loss(),
                opt,
                X,
                Y,
                epochs=epochs,
                batch_size=self._batch_size(X.shape[0]),
                shuffle=bool(self.shuffle),
                seed=int(rs.randint(np.iinfo(np.int32).max)),
                val=val,
                metric=self._metric(),
                fuse=True,
                threads=self.n_threads,
                callback=self._report if self.verbose else None,
                sample_weight=weights,
                l2=float(self.alpha),
                lr_schedule=self._lr_schedule(opt, incremental, epochs),
                early_stopping=None if incremental else self._stopping(),
            )
        self._store(model)
        self._optimizer_state = (opt.state.copy(), opt.step_count)
        self._record(result, X.shape[0], incremental)

    def _validation_split(self, X, Y, weights, rs):
        """(X, Y, weights, val): with early_stopping, validation_fraction of
        the rows (stratified for a classifier) set aside as val = (X, Y)."""
        if not self.early_stopping:
            return X, Y, weights, None
        parts = train_test_split(
            X,
            Y,
            *([] if weights is None else [weights]),
            random_state=rs,
            test_size=self.validation_fraction,
            stratify=Y if self._stratify() else None,
        )
        X, X_val, Y, Y_val = parts[:4]
        if X_val.shape[0] < 2:
            raise ValueError(
                "The validation set is too small. Increase "
                "'validation_fraction' or the size of your dataset."
            )
        return X, Y, (parts[4] if weights is not None else None), (X_val, Y_val)

    def _batch_size(self, n: int) -> int:
        """min(200, n) for "auto", else batch_size clipped to [1, n] with
        scikit-learn's warning."""
        if self.batch_size == "auto":
            return min(200, n)
        if self.batch_size > n:
            warnings.warn(
                "Got `batch_size` less than 1 or larger than sample size. "
                "It is going to be clipped",
                stacklevel=4,
            )
        return int(np.clip(self.batch_size, 1, n))

    def _lr_schedule(self, opt, incremental: bool, epochs: int):
        """SGD's learning_rate schedule for a whole fit; for partial_fit
        with "invscaling", the rate of the samples seen so far, set on opt."""
        if self.solver != "sgd":
            return None
        if incremental:
            if self.learning_rate == "invscaling":
                # From the samples seen in earlier calls, as scikit-learn.
                opt.lr = self.learning_rate_init / (self.t_ + 1) ** self.power_t
            return None
        return schedule(self.learning_rate, epochs=epochs, power_t=self.power_t)

    def _stopping(self) -> EarlyStopping:
        """scikit-learn's rule: n_iter_no_change epochs without a tol gain in
        the validation score (early_stopping) or the training loss."""
        return EarlyStopping(
            patience=self.n_iter_no_change,
            tol=self.tol,
            monitor="val_metric" if self.early_stopping else "train_loss",
            restore_best=bool(self.early_stopping),
        )

    def _record(self, result, n: int, incremental: bool) -> None:
        """The fitted attributes scikit-learn keeps of a run of n rows."""
        self.n_iter_ = result.epochs  # per call, as scikit-learn counts
        self.t_ += n * result.epochs
        self.loss_curve_.extend(result.loss)
        self.loss_ = result.final_loss
        if self.early_stopping:
            self.validation_scores_.extend(result.val_metric)
            self.best_validation_score_ = max(
                self.best_validation_score_, max(result.val_metric)
            )
        else:
            self.best_loss_ = min(self.best_loss_, min(result.loss))
        if (
            not incremental
            and result.stop_reason is None
            and result.epochs == self.max_iter
        ):
            warnings.warn(
                f"Stochastic Optimizer: Maximum iterations ({self.max_iter}) "
                "reached and the optimization hasn't converged yet.",
                ConvergenceWarning,
                stacklevel=4,
            )
        if self.verbose and result.stop_reason:
            print(f"{result.stop_reason}. Stopping.")

    def _report(self, epoch: int, result) -> None:
        print(f"Iteration {self.n_iter_ + epoch}, loss = {result.loss[-1]:.8f}")
        if result.val_metric:
            print(f"Validation score: {result.val_metric[-1]:f}")

    def _optimizer(self, model: Sequential, incremental: bool):
        params = model.parameters()
        if self.solver == "sgd":
            opt = SGD(
                params,
                lr=self.learning_rate_init,
                momentum=self.momentum,
                nesterov=bool(self.nesterovs_momentum) and self.momentum > 0,
            )
        else:
            opt = Adam(
                params,
                lr=self.learning_rate_init,
                betas=(self.beta_1, self.beta_2),
                eps=self.epsilon,
            )
        saved = getattr(self, "_optimizer_state", None)
        if incremental and saved is not None and saved[0].shape == opt.state.shape:
            opt.state[...] = saved[0]
            opt.step_count = saved[1]
        return opt

    def _fit_lbfgs(self, X, Y, weights):
        model = self._network()
        with _non_finite_as_value_error(type(self).__name__):
            result = self._run_lbfgs(model, X, Y, weights)
        self._store(model)
        if result.stop_reason is not None:
            warnings.warn(
                f"lbfgs failed to converge after {result.epochs} iteration(s): "
                f"{result.stop_reason}. Increase max_iter or scale the data.",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.n_iter_ = result.epochs
        self.loss_ = float(
            loss_and_gradient(
                model, self._loss(), X, Y, sample_weight=weights, l2=float(self.alpha)
            )[0]
        )
        self.loss_curve_ = result.loss

    def _run_lbfgs(self, model, X, Y, weights):
        return lbfgs(
            model,
            self._loss(),
            X,
            Y,
            max_iter=self.max_iter,
            max_fun=self.max_fun,
            tol=self.tol,
            sample_weight=weights,
            l2=float(self.alpha),
            threads=self.n_threads,
        )

    # --- model files -----------------------------------------------------

    def save(self, path: str | os.PathLike, *, target_name: str | None = None) -> None:
        """Write the fitted network to a fastbp ``.npz`` model file (atomic,
        pickle-free) that ``fastbp predict`` serves. Supports one target:
        regression with one output, or a classifier of one label column. A
        model loaded from a file keeps its column plan, standardization,
        target scale and target name. ``target_name`` names the target in
        the file (the header of ``fastbp predict``'s output; "target" by
        default). To store a Pipeline with a :class:`TableEncoder`, see
        :func:`save`."""
        self._write(path, self._meta(target_name=target_name))

    def _write(self, path, meta: dict) -> None:
        from ._files import unwritable_reason
        from .data.predictor import save

        reason = unwritable_reason(os.fspath(path))
        if reason:
            raise ValueError(f"{type(self).__name__}.save: {reason}")

        extra_sigmoid = self.out_activation_ == "logistic"
        save(path, self._network(extra_sigmoid), meta)

    def _from_file(self) -> bool:
        """Whether a loaded file's preprocessing applies in predict."""
        return any(
            getattr(self, key, None) is not None
            for key in ("_plan", "_standardizer", "_target_scale")
        )

    def _meta(self, encoder=None, target_name: str | None = None) -> dict:
        """The model file's ``meta`` of this network (see
        :func:`fastbp.data.predictor.model_metadata`), with the column plan
        and standardization of a fitted TableEncoder in front of it."""
        check_is_fitted(self, "coefs_")
        meta = self._file_meta()
        plan = getattr(self, "_plan", None)
        scaler = getattr(self, "_standardizer", None)
        if encoder is not None:
            plan, scaler = encoder.plan_, encoder.plan_.standardizer()
        if plan is not None:
            meta["plan"] = plan.to_json()
            meta["feature_names"] = list(plan.inputs)
        else:
            names = getattr(self, "feature_names_in_", None)
            if names is not None:
                meta["feature_names"] = [str(s) for s in names]
            else:  # load must not take the default x1, x2, ... for names
                meta["feature_names_given"] = False
        if scaler is not None:
            meta["standardizer"] = {"mean": scaler[0], "std": scaler[1]}
        scale = getattr(self, "_target_scale", None)
        if scale is not None:
            meta["target_scale"] = {"mean": scale[0], "std": scale[1]}
        target_name = target_name or getattr(self, "_target_name", None)
        if target_name is not None:
            if not isinstance(target_name, str):
                raise TypeError(
                    f"save: target_name must be a string, got {target_name!r}"
                )
            meta["target_name"] = target_name
        return meta

    @classmethod
    def load(cls, path: str | os.PathLike):
        """A fitted estimator from a fastbp model file (written by ``save``
        or by ``fastbp train``); ``predict`` applies the file's
        standardization. Raises fastbp.io.ModelFileError naming the file."""
        from .data.problem import Predictor
        from .io.model import ModelFileError

        predictor = Predictor.load(path)
        try:
            return cls._from_predictor(predictor, _meta_of(path))
        except ValueError as exc:
            raise ModelFileError(f"{os.fspath(path)}: {exc}") from None

    @classmethod
    def _from_predictor(cls, predictor, meta: dict):
        layers = list(predictor.model.layers)
        sigmoid_out = bool(layers) and isinstance(layers[-1], Sigmoid)
        if sigmoid_out:
            layers = layers[:-1]
        linears = [layer for layer in layers if isinstance(layer, Linear)]
        acts = {type(layer) for layer in layers if not isinstance(layer, Linear)}
        if len(acts) > 1 or not linears or not isinstance(layers[-1], Linear):
            raise ValueError("not an MLP of Linear layers with one hidden activation")
        names = {v: k for k, v in ACTIVATIONS.items() if v is not None}
        activation = names[acts.pop()] if acts else "identity"
        est = cls(
            hidden_layer_sizes=tuple(w.weight.data.shape[1] for w in linears[:-1]),
            activation=activation,
            dtype=str(predictor.model.dtype),
        )
        est._store(Sequential(*[_copy_linear(layer) for layer in linears]))
        est.n_features_in_ = est.coefs_[0].shape[0]
        est.n_layers_ = len(linears) + 1
        est.n_outputs_ = est.coefs_[-1].shape[1]
        est.n_iter_ = 0
        est.t_ = 0
        est._plan = predictor.plan
        if predictor.plan is not None:  # predict reads the raw columns
            est.feature_names_in_ = np.asarray(predictor.plan.raw_columns, object)
            est.n_features_in_ = len(est.feature_names_in_)
        else:
            # Columns are matched by name whenever the file names them (a
            # fastbp train file always does, x1, x2, ... included); only a
            # network fitted on unnamed columns matches them by position.
            if "feature_names" in meta and meta.get("feature_names_given", True):
                est.feature_names_in_ = np.asarray(
                    predictor.feature_names, dtype=object
                )
        est._standardizer = (
            None
            if predictor.scaler is None
            else (
                predictor.scaler.mean.astype(np.float64),
                predictor.scaler.std.astype(np.float64),
            )
        )
        est._target_scale = predictor.target_scale
        est._target_name = predictor.target_name
        est._adopt(predictor, meta, sigmoid_out)
        return est


@contextlib.contextmanager
def _non_finite_as_value_error(name: str):
    """fastbp's DivergenceError as the ValueError scikit-learn raises."""
    try:
        yield
    except DivergenceError as exc:
        raise ValueError(
            f"{name}: {exc}. Solver produced non-finite parameter weights: "
            "scale the inputs or lower learning_rate_init"
        ) from None


def _stochastic(est) -> bool:
    """partial_fit exists for solver "sgd" and "adam" (as in scikit-learn)."""
    if est.solver not in ("sgd", "adam"):
        raise AttributeError(
            f"partial_fit is only available for stochastic optimizers. "
            f"{est.solver!r} is not stochastic."
        )
    return True


def _copy_linear(layer: Linear) -> Linear:
    copy = Linear(layer.in_features, layer.out_features, dtype=layer.dtype)
    copy.weight.data[...] = layer.weight.data
    copy.bias.data[...] = layer.bias.data
    return copy


def _meta_of(path) -> dict:
    from .io.model import load_model

    return load_model(path)[1] or {}


def _dense(X):
    return X.toarray() if hasattr(X, "toarray") else X


def _softmax(z: NDArray) -> NDArray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _sigmoid(z: NDArray) -> NDArray:
    out = np.empty_like(z)
    pos = z >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-z[pos]))
    e = np.exp(z[~pos])
    out[~pos] = e / (1.0 + e)
    return out


class MLPClassifier(ClassifierMixin, _BaseMLP):
    """Multi-layer perceptron classifier trained by fastbp's fused kernel.

    scikit-learn's ``MLPClassifier`` (same parameters, attributes and
    methods; see the module docstring for the few differences), plus
    ``class_weight``: None, "balanced" (n_samples / (n_classes *
    bincount(y))) or a dict {class: weight}, multiplied into
    ``sample_weight``; ``dtype`` and ``n_threads``.

    Output: softmax over the classes for multiclass targets, one sigmoid
    output for two classes, one sigmoid per label for multi-label targets
    (an indicator matrix).
    """

    def __init__(
        self,
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        class_weight=None,
        dtype="float32",
        n_threads=None,
    ):
        params = dict(locals())  # every parameter, by name, as scikit-learn wants
        del params["self"], params["class_weight"]
        _BaseMLP.__init__(self, **params)
        self.class_weight = class_weight

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.classifier_tags.multi_label = True
        return tags

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and labels y
        (n_samples,) or an indicator matrix (n_samples, n_labels); returns
        self."""
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None, classes=None):
        """One epoch over (X, y), continuing from the current weights and
        optimizer state; ``classes`` (all the labels) is required on the
        first call. Not available with solver="lbfgs"."""
        if not hasattr(self, "classes_"):
            if classes is None:
                raise ValueError(
                    "classes must be passed on the first call to partial_fit."
                )
            self._binarizer = LabelBinarizer()
            if type_of_target(y).startswith("multilabel"):
                self._binarizer.fit(y)
            else:
                self._binarizer.fit(classes)
            self.classes_ = self._binarizer.classes_
        elif classes is not None and not np.array_equal(
            self.classes_, unique_labels(classes)
        ):
            raise ValueError(
                f"`classes={list(classes)}` is not the same as on the first "
                f"call to partial_fit, which was {list(self.classes_)}"
            )
        return self._fit(X, y, sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        if not hasattr(self, "classes_") or (not self.warm_start and not incremental):
            self._binarizer = LabelBinarizer()
            self._binarizer.fit(y)
            self.classes_ = self._binarizer.classes_
        else:
            classes = unique_labels(y)
            if self.warm_start and set(classes) != set(self.classes_):
                raise ValueError(
                    "warm_start can only be used where `y` has the same classes "
                    f"as in the previous call to fit. Previously got "
                    f"{self.classes_}, `y` has {classes}"
                )
            if len(np.setdiff1d(classes, self.classes_)):
                raise ValueError(
                    f"`y` has classes not in `self.classes_`. `self.classes_` has "
                    f"{self.classes_}. 'y' has {classes}."
                )
        indicator = self._binarizer.transform(y)
        if self._binarizer.y_type_ == "multiclass":
            return X, np.argmax(indicator, axis=1).astype(np.int64)
        return X, indicator.astype(self.dtype)

    def _n_outputs(self, Y) -> int:
        if self._binarizer.y_type_ == "multiclass":
            return len(self.classes_)
        return Y.shape[1]

    def _out_activation(self) -> str:
        return "softmax" if self._binarizer.y_type_ == "multiclass" else "logistic"

    def _stratify(self) -> bool:
        # As scikit-learn: only a single binary output is stratified.
        return self.n_outputs_ == 1

    def _metric(self) -> str:
        return "accuracy" if self.out_activation_ == "softmax" else "logit_accuracy"

    def _weights(self, sample_weight, Y):
        """sample_weight times class_weight's weight of each row's class,
        read from the coded targets Y (class indices, or one 0/1 column for
        two classes)."""
        weights = super()._weights(sample_weight, Y)
        if self.class_weight is None:
            return weights
        if self._binarizer.y_type_.startswith("multilabel"):
            raise ValueError("class_weight is not supported for multi-label targets")
        cw = self.class_weight
        if not (isinstance(cw, dict) or (isinstance(cw, str) and cw == "balanced")):
            raise ValueError(
                f"class_weight must be None, 'balanced' or a dict, got "
                f"{self.class_weight!r}"
            )
        index = Y if Y.ndim == 1 else Y[:, 0].astype(np.int64)
        per_class = compute_class_weight(
            self.class_weight, classes=self.classes_, y=self.classes_[index]
        )
        cw = per_class[index]
        return cw if weights is None else weights * cw

    def _adopt(self, predictor, meta, sigmoid_out) -> None:
        if predictor.task != "classification":
            raise ValueError("a regression model; load it with MLPRegressor")
        if meta.get("loss") == "mse":
            raise ValueError(
                "a classifier trained with --loss mse has no probabilities; "
                "use fastbp.problem.Predictor"
            )
        values = meta.get("class_values") or list(predictor.classes)
        self.classes_ = np.asarray(values)
        self._binarizer = LabelBinarizer().fit(self.classes_)
        self.out_activation_ = "logistic" if self.n_outputs_ == 1 else "softmax"
        if sigmoid_out != (self.n_outputs_ == 1):
            raise ValueError("the output layer does not match the classes")

    def _file_meta(self) -> dict:
        if self._binarizer.y_type_.startswith("multilabel"):
            raise ValueError(
                "save: a fastbp model file holds one target; this classifier "
                "was fitted on multi-label targets"
            )
        values = self.classes_.tolist()
        return {
            "task": "classification",
            "classes": [str(c) for c in values],
            "class_values": values,
            "loss": "ce" if self.out_activation_ == "softmax" else "binary_ce",
            "metric": "accuracy",
        }

    def predict_proba(self, X) -> NDArray:
        """Class probabilities (n_samples, n_classes); for multi-label targets
        each label's probability (n_samples, n_labels)."""
        z = self._decision(X).astype(np.float64)
        if self.out_activation_ == "softmax":
            return _softmax(z)
        p = _sigmoid(z)
        if self.n_outputs_ == 1:
            return np.hstack([1.0 - p, p])
        return p

    def predict_log_proba(self, X) -> NDArray:
        """log(predict_proba(X))."""
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> NDArray:
        """Predicted labels (n_samples,), or an indicator matrix for
        multi-label targets."""
        proba = self.predict_proba(X)
        if self.n_outputs_ == 1:
            proba = proba[:, 1]
        return self._binarizer.inverse_transform(proba)


class MLPRegressor(RegressorMixin, _BaseMLP):
    """Multi-layer perceptron regressor trained by fastbp's fused kernel.

    scikit-learn's ``MLPRegressor`` (same parameters, attributes and
    methods; see the module docstring for the few differences), with the
    loss "squared_error" only, plus ``dtype`` and ``n_threads``.
    """

    def __init__(
        self,
        loss="squared_error",
        hidden_layer_sizes=(100,),
        activation="relu",
        *,
        solver="adam",
        alpha=0.0001,
        batch_size="auto",
        learning_rate="constant",
        learning_rate_init=0.001,
        power_t=0.5,
        max_iter=200,
        shuffle=True,
        random_state=None,
        tol=1e-4,
        verbose=False,
        warm_start=False,
        momentum=0.9,
        nesterovs_momentum=True,
        early_stopping=False,
        validation_fraction=0.1,
        beta_1=0.9,
        beta_2=0.999,
        epsilon=1e-8,
        n_iter_no_change=10,
        max_fun=15000,
        dtype="float32",
        n_threads=None,
    ):
        params = dict(locals())  # every parameter, by name, as scikit-learn wants
        del params["self"], params["loss"]
        _BaseMLP.__init__(self, **params)
        self.loss = loss

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        return tags

    def fit(self, X, y, sample_weight=None):
        """Fit the model to X (n_samples, n_features) and targets y
        (n_samples,) or (n_samples, n_outputs); returns self."""
        if self.loss != "squared_error":
            raise ValueError(
                f"MLPRegressor: loss must be 'squared_error', got {self.loss!r}"
            )
        return self._fit(X, y, sample_weight, incremental=False)

    @available_if(_stochastic)
    def partial_fit(self, X, y, sample_weight=None):
        """One epoch over (X, y), continuing from the current weights and
        optimizer state. Not available with solver="lbfgs"."""
        return self._fit(X, y, sample_weight, incremental=True)

    def _validate_input(self, X, y, incremental, reset):
        X, y = validate_data(
            self,
            X,
            y,
            accept_sparse=["csr", "csc"],
            multi_output=True,
            y_numeric=True,
            dtype=(np.float64, np.float32),
            reset=reset,
        )
        y = cast_checked(y, np.dtype(self.dtype), type(self).__name__, "y")
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return X, y.reshape(len(y), -1)

    def _n_outputs(self, Y) -> int:
        return Y.shape[1]

    def _out_activation(self) -> str:
        return "identity"

    def _stratify(self) -> bool:
        return False

    def _metric(self) -> str:
        return "r2"

    def _adopt(self, predictor, meta, sigmoid_out) -> None:
        if predictor.task != "regression" or sigmoid_out:
            raise ValueError("a classification model; load it with MLPClassifier")
        self.out_activation_ = "identity"

    def _file_meta(self) -> dict:
        if self.n_outputs_ != 1:
            raise ValueError(
                f"save: a fastbp model file holds one target; this regressor "
                f"has {self.n_outputs_} outputs"
            )
        return {"task": "regression", "loss": "squared_error", "metric": "r2"}

    def predict(self, X) -> NDArray:
        """Predicted values (n_samples,), or (n_samples, n_outputs) for
        several outputs."""
        y = self._decision(X)
        scale = getattr(self, "_target_scale", None)
        if scale is not None:  # a fastbp train model of a scaled target
            y = y.astype(np.float64) * scale[1] + scale[0]
        return y.ravel() if y.shape[1] == 1 else y


# --- raw tables: the column plan as a transformer ----------------------------


def _column_names(est, param: str, what="column name") -> tuple[str, ...] | None:
    """A names parameter (None, one column name, or a list of them) as a
    tuple; TypeError naming the parameter otherwise. ``what`` says what a
    name is, in the message."""
    value = getattr(est, param)
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    try:
        names = tuple(value)
    except TypeError:
        names = None
    if names is None or not all(isinstance(n, str) for n in names):
        raise TypeError(
            f"{type(est).__name__}: {param} must be None, a {what} or a list of "
            f"them (strings), got {value!r}"
        )
    return names


#: The CLI's spellings in plan messages, as TableEncoder's parameters.
_OPTION_WORDS = {
    "--features": "features=",
    "--numeric": "numeric=",
    "--categorical": "categorical=",
    "--drop": "drop=",
}


def _parameter_words(text: str) -> str:
    for option, param in _OPTION_WORDS.items():
        text = text.replace(option, param)
    return text


class TableEncoder(TransformerMixin, BaseEstimator):
    """The column plan of ``fastbp train`` as a scikit-learn transformer.

    ``fit`` reads the columns of the training rows (a pandas DataFrame, a
    pyarrow Table or RecordBatch, a dict of columns, or an array) and gives
    each a role, exactly as ``fastbp train --data FILE`` does for the
    feature columns of a raw table (:mod:`fastbp.data.plan`): numeric
    (median fill, plus a 0/1 missing input where the training rows had
    missing cells), boolean, categorical (one-hot of the ``max_categories``
    most frequent levels, then one "(other)" input that also takes levels
    never seen), datetime (year, month, day of year, day of week, hour where
    times vary); identifiers (a pandas index column, a row counter, an ID
    column) and free text are left out. Each input is then standardized with
    the mean and standard deviation of the training rows (one-hot and
    missing inputs stay 0/1). ``transform`` gives those standardized inputs:
    what ``fastbp predict`` feeds a network trained on them, and, for
    float64, what ``fastbp train`` fed it (in float32, ``fastbp train``
    rounds each raw number to float32 before standardizing, so its inputs
    may differ from these in the last bit).

    Missing cells are an empty cell, one of ``na_values``, a null, None, NaN
    or an infinity; new rows never fail: a missing cell takes its fill, an
    unseen level goes to "(other)".

    Parameters
    ----------
    categorical, numeric : str or list of str, optional
        Columns given that role whatever their cells.
    drop : str or list of str, optional
        Columns left out.
    features : str or list of str, optional
        The only columns used; None: every column.
    na_values : list of str, optional
        The spellings of a missing cell in text columns (an empty cell is
        always one), replacing the default ``fastbp.data.plan.NA_VALUES``:
        "", "NA", "N/A", "NaN", "nan", "null", "NULL", "None", "n/a", "#N/A".
    max_categories : int, default=20
        Levels one-hot coded per categorical column (the most frequent);
        the rest share the "(other)" input.
    dtype : {"float32", "float64"}, default="float32"
        The dtype of ``transform``'s output, and the one the training rows'
        statistics are taken in (as ``fastbp train --dtype``).

    Attributes
    ----------
    plan_ : fastbp.data.plan.TablePlan
        Every column's role, fill, levels and standardization
        (``plan_.summary()`` says it in one line; ``plan_.to_json()`` is what
        a model file stores).
    n_features_in_ : int
        Columns seen in ``fit``.
    feature_names_in_ : ndarray of str, shape (n_features_in_,)
        Their names, when ``fit`` saw string column names.

    Notes
    -----
    A NumPy array's columns are named x0, x1, ... (or ``feature_names_in_``)
    and read as numbers, NaN missing; an array of Python objects is read
    column by column as a DataFrame's object columns are. Medians are exact
    up to 2**16 values per column and sampled beyond (with the row hash of
    ``fastbp train``'s default ``--seed 0``).

    Examples
    --------
    >>> import pandas as pd
    >>> from fastbp.sklearn import TableEncoder
    >>> df = pd.DataFrame({"size": [1.0, None, 3.0], "color": ["red", "blue", "red"]})
    >>> enc = TableEncoder().fit(df)
    >>> list(enc.get_feature_names_out())
    ['size', 'size_missing', 'color=red', 'color=blue', 'color=(other)']
    >>> enc.transform(df).shape
    (3, 5)
    """

    def __init__(
        self,
        *,
        categorical=None,
        numeric=None,
        drop=None,
        features=None,
        na_values=None,
        max_categories=20,
        dtype="float32",
    ):
        self.categorical = categorical
        self.numeric = numeric
        self.drop = drop
        self.features = features
        self.na_values = na_values
        self.max_categories = max_categories
        self.dtype = dtype

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # missing cells are filled
        tags.input_tags.categorical = True
        tags.input_tags.string = True
        if self.dtype in ("float32", "float64", np.float32, np.float64):
            tags.transformer_tags.preserves_dtype = [np.dtype(self.dtype).name]
        return tags

    def _options(self):
        """The parameters, checked, as PlanOptions."""
        from .data.plan import NA_VALUES, PlanError, PlanOptions

        name = type(self).__name__
        names = {
            p: _column_names(self, p)
            for p in ("categorical", "numeric", "drop", "features")
        }
        na_values = NA_VALUES
        if self.na_values is not None:
            spellings = _column_names(self, "na_values", "missing-cell spelling")
            na_values = tuple(dict.fromkeys(["", *(s.strip() for s in spellings)]))
        k = self.max_categories
        if isinstance(k, bool) or not isinstance(k, Integral):
            raise TypeError(f"{name}: max_categories must be an integer, got {k!r}")
        if k < 1:
            raise ValueError(f"{name}: max_categories must be >= 1, got {k!r}")
        if self.dtype not in ("float32", "float64", np.float32, np.float64):
            raise ValueError(
                f"{name}: dtype must be 'float32' or 'float64', got {self.dtype!r}"
            )
        try:
            return PlanOptions(
                categorical=names["categorical"] or (),
                numeric=names["numeric"] or (),
                drop=names["drop"] or (),
                features=names["features"],
                na_values=na_values,
                max_categories=int(k),
            )
        except PlanError as exc:
            raise ValueError(f"{name}: {_parameter_words(str(exc))}") from None

    def fit(self, X, y=None):
        """Make the column plan of the rows of X.

        Parameters
        ----------
        X : pandas DataFrame, pyarrow Table or RecordBatch, dict of columns, \
or array-like of shape (n_samples, n_features)
            The training rows.
        y : ignored

        Returns
        -------
        self
        """
        from .data.plan import PlanError, TableStats, infer_plan

        options = self._options()
        table = self._table(X, reset=True)
        name = type(self).__name__
        try:
            options.check_names(table.column_names, None, name)
            stats = TableStats(table.schema, np.dtype(self.dtype), options, seed=0)
            stats.add(table, np.ones(table.num_rows, dtype=bool), 0)
            plan = infer_plan(stats, options, where=name)
        except PlanError as exc:
            raise ValueError(_parameter_words(str(exc))) from None
        self.plan_ = _sklearn_reasons(plan)
        return self

    def transform(self, X):
        """The standardized model inputs of the rows of X.

        Parameters
        ----------
        X : pandas DataFrame, pyarrow Table or RecordBatch, dict of columns, \
or array-like of shape (n_samples, n_features_in_)
            The columns seen in ``fit``, in the same order.

        Returns
        -------
        ndarray of shape (n_samples, n_inputs), of ``dtype``
            One column per name of :meth:`get_feature_names_out`.
        """
        from .data.loading import Standardizer
        from .data.predictor import standardized

        check_is_fitted(self, "plan_")
        table = self._table(X, reset=False)
        plan = self.plan_
        inputs = plan.encode(table, np.float64)
        return standardized(
            inputs,
            Standardizer(*plan.standardizer()),
            self.dtype,
            plan.inputs,
            where=f"{type(self).__name__}.transform",
        )

    def get_feature_names_out(self, input_features=None):
        """The names of ``transform``'s columns: for a column c, "c" (a
        number, boolean), "c_missing" (its missing indicator), "c=level" and
        "c=(other)" (one-hot), "c:year" ... (date parts).

        Parameters
        ----------
        input_features : array-like of str, optional
            The input columns' names, if they are other than those seen in
            ``fit`` (without string names there, x0, x1, ...), to name the
            outputs by; must equal ``feature_names_in_`` when that is set.

        Returns
        -------
        ndarray of str objects, shape (n_inputs,)
        """
        check_is_fitted(self, "plan_")
        names = self._names()
        if input_features is not None:
            given = [str(s) for s in np.asarray(input_features, dtype=object)]
            fitted = getattr(self, "feature_names_in_", None)
            if fitted is not None and given != names:
                raise ValueError("input_features is not equal to feature_names_in_")
            if len(given) != self.n_features_in_:
                raise ValueError(
                    f"input_features should have length equal to number of "
                    f"features ({self.n_features_in_}), got {len(given)}"
                )
            names = given
        plan = self.plan_
        if list(names) == [c.name for c in plan.columns]:
            return np.asarray(plan.inputs, dtype=object)
        # Named by the columns' new names: each input's column-name prefix
        # replaced (then made distinct again, as the plan makes them).
        from .data.plan import unique_names

        taken, out = set(), []
        for column, new in zip(plan.columns, names, strict=True):
            renamed = [new + s[len(column.name) :] for s in column.inputs]
            out.extend(unique_names(renamed, taken))
        return np.asarray(out, dtype=object)

    def _names(self) -> list[str]:
        """The columns' names in the plan: feature_names_in_, or x0, x1..."""
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            return [str(s) for s in names]
        return [f"x{j}" for j in range(self.n_features_in_)]

    def _table(self, X, reset: bool):
        """X as a pyarrow Table whose columns carry the plan's names, its
        features checked against fit's (validate_data)."""
        import pyarrow as pa

        from .data.predictor import arrow_column, as_table

        name = type(self).__name__
        table = as_table(X)
        if table is not None:
            if isinstance(X, dict | pa.RecordBatch):
                X = table  # a dict or batch: its names are the Table's
            validate_data(self, X, reset=reset, skip_check_array=True)
            if reset and table.num_rows == 0:
                raise ValueError(f"{name}: X has 0 rows; fit needs at least 1")
            if table.num_columns == 0:
                raise ValueError(f"{name}: X has 0 columns; at least 1 is required")
            return table.rename_columns(self._names())
        X = validate_data(self, X, reset=reset, dtype=None, ensure_all_finite=False)
        names = self._names()
        if X.dtype.kind in "biuf":
            X = X.astype(np.float64, copy=False)
            return pa.table([X[:, j] for j in range(X.shape[1])], names=names)
        if X.dtype.kind == "c":
            raise ValueError(
                f"{name}: X holds complex numbers; no column plan reads them"
            )
        return pa.table([arrow_column(X[:, j]) for j in range(X.shape[1])], names=names)


def _sklearn_reasons(plan):
    """plan with its columns' reasons in TableEncoder's parameter words."""
    from dataclasses import replace

    columns = tuple(
        replace(c, reason=_parameter_words(c.reason)) if "--" in c.reason else c
        for c in plan.columns
    )
    return replace(plan, columns=columns)


def save(estimator, path: str | os.PathLike, *, target_name: str | None = None):
    """Write a fitted estimator as one fastbp model file, which ``fastbp
    predict`` and :class:`fastbp.data.predictor.Predictor` serve and
    ``MLPClassifier.load`` / ``MLPRegressor.load`` read back.

    Parameters
    ----------
    estimator : MLPClassifier, MLPRegressor, or Pipeline
        A fitted network, or a fitted ``sklearn.pipeline.Pipeline`` of a
        :class:`TableEncoder` followed by one (steps that are None or
        "passthrough" are skipped). The file then holds the encoder's column
        plan and standardization with the network, so that ``fastbp predict
        --model FILE --data RAW.csv`` reads the raw columns as the pipeline
        does and gives the pipeline's ``predict`` (class labels as text).
    path : str or os.PathLike
        The ``.npz`` file to write (atomically).
    target_name : str, optional
        The target's name in the file (the header of ``fastbp predict``'s
        output); default "target", or the name a loaded model had.

    Raises
    ------
    TypeError
        estimator is not one of these.
    ValueError
        A step other than a TableEncoder before the network, a network that
        does not fit the encoder's outputs, an encoder in float32 before a
        float64 network (the file cannot round as the pipeline does), and
        what :meth:`MLPClassifier.save` refuses.
    """
    from sklearn.pipeline import Pipeline

    encoder = None
    if isinstance(estimator, Pipeline):
        steps = [
            (name, step)
            for name, step in estimator.steps
            if step is not None
            and not (isinstance(step, str) and step == "passthrough")
        ]
        if not steps:
            raise ValueError("save: the pipeline has no steps")
        *before, (last_name, network) = steps
        for k, (name, step) in enumerate(before):
            if k > 0 or not isinstance(step, TableEncoder):
                raise ValueError(
                    f"save: pipeline step {name!r} ({type(step).__name__}) cannot "
                    "be stored in a fastbp model file; only one TableEncoder may "
                    "come before the network"
                )
        encoder = before[0][1] if before else None
    else:
        last_name, network = "estimator", estimator
    if not isinstance(network, _BaseMLP):
        raise TypeError(
            "save: estimator must be a fastbp MLPClassifier or MLPRegressor, or a "
            f"Pipeline ending in one; got {type(network).__name__}"
            + (f" as step {last_name!r}" if isinstance(estimator, Pipeline) else "")
        )
    check_is_fitted(network, "coefs_")
    if encoder is None:
        network.save(path, target_name=target_name)
        return
    check_is_fitted(encoder, "plan_")
    if network._from_file():
        raise ValueError(
            "save: the network after the TableEncoder was loaded from a fastbp "
            "train file with its own preprocessing; fit it on the encoder's output"
        )
    inputs = list(encoder.plan_.inputs)
    if network.n_features_in_ != len(inputs):
        raise ValueError(
            f"save: the network takes {network.n_features_in_} inputs, the "
            f"TableEncoder gives {len(inputs)}"
        )
    names = getattr(network, "feature_names_in_", None)
    if names is not None and list(names) != inputs:
        raise ValueError(
            "save: the network was fitted on other columns than the "
            "TableEncoder's get_feature_names_out()"
        )
    if np.dtype(encoder.dtype).itemsize < np.dtype(network.dtype).itemsize:
        raise ValueError(
            f"save: the TableEncoder's dtype {encoder.dtype!r} rounds the inputs "
            f"of a {network.dtype} network, which fastbp predict would not do; "
            "give both the same dtype"
        )
    network._write(path, network._meta(encoder, target_name=target_name))


# --- ONNX: skl2onnx converters -----------------------------------------------


def register_onnx() -> None:
    """Register ONNX converters for :class:`MLPClassifier`,
    :class:`MLPRegressor` and :class:`TableEncoder` with skl2onnx
    (``update_registered_converter``), so that ``skl2onnx.to_onnx`` converts
    them, alone or in a scikit-learn Pipeline (a whole
    ``Pipeline(TableEncoder(), MLPClassifier())`` too). Call it once, before
    converting; calling it again changes nothing. Needs skl2onnx: ``pip
    install 'fastbp[onnx]'``.

    The graph is the one of :mod:`fastbp.io.onnx` (the input cast to the
    estimator's dtype, standardized first for a model loaded from a
    ``fastbp train`` file; the network in that dtype) with skl2onnx's
    outputs, in the input's float type (float64 for a DoubleTensorType
    input, else float32):

    - MLPClassifier: ``label`` (N,), int64 for integer (or boolean) classes,
      else their text; ``probabilities`` (N, n_classes), ``predict_proba``'s.
      skl2onnx's option ``zipmap`` (default True) turns the probabilities into
      its list of dicts ``output_probability``; pass ``options={"zipmap":
      False}`` for the tensor. Multi-label classifiers are not converted.
    - MLPRegressor: ``variable`` (N, n_outputs) (in the target's units for
      a ``fastbp train`` model of a scaled target).
    - TableEncoder: ``variable`` (N, n_inputs) in its dtype, ``transform``'s
      numbers, by :func:`fastbp.io.onnx.emit_plan` (the plan graph of
      ``fastbp export``). Its inputs are the columns the plan reads, by name,
      each (N, 1): a DoubleTensorType for a numeric column (NaN missing),
      a StringTensorType for the others (text as in a CSV file: dates as
      ISO text, bools "true"/"false"); :func:`onnx_inputs` lists them. A
      plan of numeric columns only also takes one (N, n_columns) matrix.

    A network loaded from a ``fastbp train`` file of a raw table (which has
    a column plan) takes the same inputs as a TableEncoder of its plan.
    """
    try:
        from skl2onnx import update_registered_converter
    except ImportError:
        raise ImportError(
            "register_onnx needs skl2onnx: pip install 'fastbp[onnx]'"
        ) from None
    update_registered_converter(
        MLPClassifier,
        "FastbpMLPClassifier",
        _onnx_classifier_shapes,
        _onnx_convert,
        # "nocl" is declared (a Pipeline's parser asks for it), as in
        # skl2onnx's own converters; True is refused.
        options={"zipmap": [True, False, "columns"], "nocl": [True, False]},
    )
    update_registered_converter(
        MLPRegressor, "FastbpMLPRegressor", _onnx_regressor_shapes, _onnx_convert
    )
    update_registered_converter(
        TableEncoder, "FastbpTableEncoder", _onnx_encoder_shapes, _onnx_encode
    )


def onnx_inputs(estimator) -> list[tuple[str, object]]:
    """skl2onnx's ``initial_types`` for a fitted :class:`TableEncoder`, a
    Pipeline that starts with one, or a network loaded with a column plan:
    one (name, type) per column the plan reads, (N, 1), DoubleTensorType
    for a numeric column and StringTensorType for the others (see
    :func:`register_onnx`). ValueError for anything else."""
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType
    from sklearn.pipeline import Pipeline

    first = estimator.steps[0][1] if isinstance(estimator, Pipeline) else estimator
    plan = _plan_of(first)
    if plan is None:
        raise ValueError(
            f"onnx_inputs: {type(first).__name__} has no column plan (a fitted "
            "TableEncoder, or a network loaded from a fastbp train raw-table file)"
        )
    return [
        (
            c.name,
            (DoubleTensorType if c.role == "numeric" else StringTensorType)([None, 1]),
        )
        for c in plan.used
    ]


def _plan_of(est):
    """The column plan an estimator reads its inputs through, or None."""
    if isinstance(est, TableEncoder):
        check_is_fitted(est, "plan_")
        return est.plan_
    return getattr(est, "_plan", None)


def _emit_plan_inputs(g, plan, inputs, who: str) -> str:
    """The plan's model inputs, float64 (N, n_inputs) unstandardized, from
    skl2onnx's input variables: one per column the plan reads (by name), or
    one matrix of them when every one is numeric. ValueError otherwise."""
    from onnx import TensorProto

    from .io.onnx import emit_plan, plan_columns

    meta = {"plan": plan.to_json(), "feature_names": list(plan.inputs)}
    try:
        columns = [c for c in plan_columns(meta, g.opset) if c["inputs"]]
    except ValueError as exc:
        raise ValueError(f"{who}: {str(exc).removeprefix('export_onnx: ')}") from None
    names = [c["name"] for c in columns]
    by_name = {v.raw_name: v for v in inputs}
    numeric = all(c["role"] == "numeric" for c in columns)
    if len(inputs) == 1 and numeric and (len(names) > 1 or names[0] not in by_name):
        x = g.op("Cast", [inputs[0].full_name], to=TensorProto.DOUBLE)
        if len(names) == 1:
            values = [x]
        else:
            sizes = g.const(np.ones(len(names), np.int64), "split")
            values = g.op("Split", [x, sizes], axis=1, outputs=len(names))
    else:
        missing = [n for n in names if n not in by_name]
        if missing:
            raise ValueError(
                f"{who}: the ONNX inputs must be the columns the plan reads, "
                f"{names} (fastbp.sklearn.onnx_inputs), or, when all are numeric, "
                f"one matrix of them; missing {missing}"
            )
        values = []
        for c in columns:
            value = by_name[c["name"]].full_name
            if c["role"] == "numeric":
                value = g.op("Cast", [value], to=TensorProto.DOUBLE)
            values.append(value)
    return emit_plan(g, columns, values, plan.na_values)


def _onnx_encoder_shapes(operator) -> None:
    """skl2onnx shape calculator: variable (N, n_inputs) in the dtype."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    est = operator.raw_operator
    check_is_fitted(est, "plan_")
    kind = DoubleTensorType if np.dtype(est.dtype) == np.float64 else FloatTensorType
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = kind(shape=[n, len(est.plan_.inputs)])


def _onnx_encode(scope, operator, container) -> None:
    """skl2onnx converter of TableEncoder: the plan, standardized in float64,
    rounded into the dtype."""
    est = operator.raw_operator
    g = _SklOnnxGraph(scope, container)
    x = _emit_plan_inputs(g, est.plan_, operator.inputs, "TableEncoder")
    mean, std = est.plan_.standardizer()
    x = g.op("Sub", [x, g.const(mean, "mean")])
    x = g.op("Div", [x, g.const(std, "std")])
    g.op(
        "Cast",
        [x],
        to=_onnx_type(est.dtype),
        outputs=[operator.outputs[0].full_name],
    )


def _onnx_float(operator):
    """(skl2onnx tensor type, NumPy dtype) of the outputs: the input's float
    type, float32 for an integer or boolean input."""
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    if isinstance(operator.inputs[0].type, DoubleTensorType):
        return DoubleTensorType, np.dtype(np.float64)
    return FloatTensorType, np.dtype(np.float32)


def _onnx_input_count(operator) -> None:
    """ValueError unless one input, or a plan's columns (a network loaded
    with a column plan)."""
    est = operator.raw_operator
    if len(operator.inputs) != 1 and getattr(est, "_plan", None) is None:
        raise ValueError(
            f"{type(est).__name__}: the ONNX converter takes one input, got "
            f"{len(operator.inputs)}"
        )


def _onnx_classifier_shapes(operator) -> None:
    """skl2onnx shape calculator: label (N,), probabilities (N, n_classes)."""
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType
    from skl2onnx.common.utils import check_input_and_output_numbers

    from .io.onnx import onnx_labels

    check_input_and_output_numbers(
        operator, input_count_range=[1, None], output_count_range=2
    )
    est = operator.raw_operator
    check_is_fitted(est, "coefs_")
    _onnx_input_count(operator)
    if est._binarizer.y_type_.startswith("multilabel"):
        raise ValueError(
            "MLPClassifier: a multi-label classifier has no ONNX converter"
        )
    if operator.scope_inst.get_options(est, dict(nocl=False))["nocl"]:
        raise NotImplementedError(
            "MLPClassifier: option 'nocl' is not implemented by the ONNX converter"
        )
    n = operator.inputs[0].get_first_dimension()
    labels = onnx_labels(est.classes_.tolist())
    kind = Int64TensorType if labels.dtype == np.int64 else StringTensorType
    operator.outputs[0].type = kind(shape=[n])
    operator.outputs[1].type = _onnx_float(operator)[0](shape=[n, len(labels)])


def _onnx_regressor_shapes(operator) -> None:
    """skl2onnx shape calculator: variable (N, n_outputs)."""
    from skl2onnx.common.utils import check_input_and_output_numbers

    check_input_and_output_numbers(
        operator, input_count_range=[1, None], output_count_range=1
    )
    est = operator.raw_operator
    check_is_fitted(est, "coefs_")
    _onnx_input_count(operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _onnx_float(operator)[0](shape=[n, est.n_outputs_])


def _onnx_convert(scope, operator, container) -> None:
    """skl2onnx converter of both estimators (see :func:`register_onnx`)."""
    from onnx import TensorProto

    from .io.onnx import emit_classifier, emit_network, flat_layers, onnx_labels

    est = operator.raw_operator
    g = _SklOnnxGraph(scope, container)
    dtype = np.dtype(est.dtype)
    out_dtype = _onnx_float(operator)[1]
    x = operator.inputs[0].full_name
    plan = getattr(est, "_plan", None)
    if plan is not None:  # the raw columns, as fastbp predict reads them
        x = _emit_plan_inputs(g, plan, operator.inputs, type(est).__name__)
    scaler = getattr(est, "_standardizer", None)
    if scaler is not None:  # as _inputs: in float64, then into dtype
        x = g.op("Cast", [x], to=TensorProto.DOUBLE)
        x = g.op("Sub", [x, g.const(np.asarray(scaler[0], np.float64), "mean")])
        x = g.op("Div", [x, g.const(np.asarray(scaler[1], np.float64), "std")])
    x = g.op("Cast", [x], to=_onnx_type(dtype))
    network = est._network(extra_sigmoid=est.out_activation_ == "logistic")
    out = emit_network(g, x, flat_layers(network), dtype)
    outputs = [v.full_name for v in operator.outputs]
    if isinstance(est, MLPClassifier):
        # Softmax for several classes; for two, (1 - p, p) of the sigmoid p.
        emit_classifier(
            g,
            out,
            est.n_outputs_,
            onnx_labels(est.classes_.tolist()),
            loss="ce",
            dtype=out_dtype,
            label_name=outputs[0],
            proba_name=outputs[1],
        )
    else:
        scale = getattr(est, "_target_scale", None)
        if scale is not None:  # as predict: in float64, in the target's units
            out = g.op("Cast", [out], to=TensorProto.DOUBLE)
            out = g.op("Mul", [out, g.const(np.float64(scale[1]), "target_std")])
            out = g.op("Add", [out, g.const(np.float64(scale[0]), "target_mean")])
        g.op("Cast", [out], to=_onnx_type(out_dtype), outputs=outputs)


def _onnx_type(dtype) -> int:
    """The onnx TensorProto element type of a NumPy dtype (str and object:
    STRING, which onnx < 1.16 does not map)."""
    from onnx import TensorProto
    from onnx.helper import np_dtype_to_tensor_dtype

    dtype = np.dtype(dtype)
    return TensorProto.STRING if dtype.kind in "OU" else np_dtype_to_tensor_dtype(dtype)


class _SklOnnxGraph:
    """The graph-building interface of :class:`fastbp.io.onnx.Graph`
    (``opset``, ``fresh``, ``const``, ``op``), writing into skl2onnx's scope
    and container, so the emit functions of fastbp.io.onnx serve the
    converters."""

    def __init__(self, scope, container) -> None:
        self.scope, self.container = scope, container
        self.opset = container.target_opset

    def fresh(self, hint: str) -> str:
        return self.scope.get_unique_variable_name(hint)

    def const(self, value, hint: str = "const") -> str:
        value = np.asarray(value)
        name = self.fresh(hint)
        if value.dtype == object:
            content = [str(v).encode("utf-8") for v in value.ravel()]
            kind = _onnx_type(np.str_)
        else:
            content, kind = value.ravel().tolist(), _onnx_type(value.dtype)
        self.container.add_initializer(name, kind, list(value.shape), content)
        return name

    def op(self, op_type, inputs, *, outputs=1, domain="", **attrs):
        if isinstance(outputs, int):
            names = [self.fresh(op_type.lower()) for _ in range(outputs)]
        else:
            names = list(outputs)
        if domain == "ai.onnx.ml":  # the version the plan's LabelEncoders need
            from .io.onnx import ML_OPSET

            attrs["op_version"] = ML_OPSET
        self.container.add_node(
            op_type,
            list(inputs),
            names,
            op_domain=domain,
            name=self.scope.get_unique_operator_name(op_type),
            **attrs,
        )
        return names[0] if len(names) == 1 else names
