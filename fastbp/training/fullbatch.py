"""Full-batch training: the loss and gradient over all rows in one compiled
pass, and L-BFGS (scipy's L-BFGS-B) fed by it -- the best solver for small
data sets, and what scikit-learn's ``solver="lbfgs"`` runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from .._threads import thread_limit
from .._validate import positive_int
from ..kernels.epoch import loss_and_gradient as fused_loss_and_gradient
from ..nn.layers import Sequential
from ..nn.losses import Loss
from .checks import (
    check_initial_loss,
    coerce,
    non_negative,
    sample_weights,
)
from .compiling import CompileNotices
from .metrics import METRICS, evaluate_arrays
from .result import DivergenceError, TrainResult
from .runners import fused_plan, values_and_labels

__all__ = ["loss_and_gradient", "lbfgs"]


def loss_and_gradient(
    model: Sequential,
    loss: Loss,
    X: object,
    T: object,
    *,
    sample_weight: object | None = None,
    l2: float = 0.0,
) -> tuple[float, NDArray]:
    """(L, g): the loss of model over all of (X, T) and its gradient, one
    compiled pass (in chunks of rows), for full-batch solvers such as
    scipy's L-BFGS-B.

    L is the (sample-weighted) mean loss plus 0.5 * l2 * sum(||W||**2) /
    (the total weight) over the Linear weights; g, an (n_parameters,) float64
    array, is dL/d(model.flat_data), in the model's flat order. Arguments as
    :func:`train`; the model must qualify for the fused path (ValueError
    saying why not). The parameters are not changed (``model.flat_grad`` is
    scratch).
    """
    who = "loss_and_gradient"
    plan = _loss_plan(model, loss, who)
    X, T = coerce(model, loss, X, T, "training", who)
    weights = sample_weights(sample_weight, X.shape[0], who)
    T, labels = values_and_labels(X, T)
    return fused_loss_and_gradient(
        X, T, labels, plan.model, plan.loss, weights, non_negative(l2, "l2", who)
    )


def lbfgs(
    model: Sequential,
    loss: Loss,
    X: object,
    T: object,
    *,
    max_iter: int = 200,
    max_fun: int = 15000,
    tol: float = 1e-4,
    sample_weight: object | None = None,
    l2: float = 0.0,
    val: tuple[object, object] | None = None,
    metric: str | None = None,
    threads: int | None = None,
    callback: Callable[[int, TrainResult], None] | None = None,
) -> TrainResult:
    """Full-batch training with L-BFGS: ``scipy.optimize.minimize(method=
    "L-BFGS-B")`` fed by :func:`loss_and_gradient` (one compiled pass over
    all rows per evaluation), the best solver for small data sets.

    Stops after ``max_iter`` iterations, ``max_fun`` loss evaluations, or
    when the largest gradient component is below ``tol`` (scipy's gtol).
    The model ends with the solver's final weights. Returns a TrainResult
    with one entry per iteration in ``loss`` (and ``val_loss``/``val_metric``
    when val is given); ``epochs`` counts iterations, ``steps`` loss
    evaluations, ``stop_reason`` is scipy's message when it did not converge
    (None when it did). Arguments as :func:`train`.

    Raises DivergenceError when the solver's weights are not finite.
    """
    import scipy.optimize

    max_iter = positive_int(max_iter, "lbfgs", "max_iter")
    max_fun = positive_int(max_fun, "lbfgs", "max_fun")
    tol = non_negative(tol, "tol", "lbfgs")
    plan, X, T, val, metric = _checked_problem(model, loss, X, T, val, metric)
    weights = sample_weights(sample_weight, X.shape[0], "lbfgs")
    l2 = non_negative(l2, "l2", "lbfgs")
    values, labels = values_and_labels(X, T)
    theta = model.flat_data
    result = TrainResult(metric_name=metric, fused=True)

    def value_and_grad(x):
        theta[...] = x
        result.steps += 1
        # Checked by the warm-up call below; trusted on every later one.
        return fused_loss_and_gradient(
            X, values, labels, plan.model, plan.loss, weights, l2, check=False
        )

    def record(intermediate_result):
        result.record_epochs(np.array([intermediate_result.fun]), None)
        result.epochs += 1
        result.samples += X.shape[0]
        if val is not None:
            theta[...] = intermediate_result.x
            v_loss, v_metric = evaluate_arrays(model, loss, *val, metric)
            result.record_validation(v_loss, v_metric)
        if callback is not None:
            callback(result.epochs, result)

    with thread_limit(threads):
        check_initial_loss(model, loss, X, T, X.shape[0])
        start = time.perf_counter()
        # Checks the arguments once and compiles (or loads the cache).
        with CompileNotices(result).phase("the loss-and-gradient kernel"):
            fused_loss_and_gradient(
                X, values, labels, plan.model, plan.loss, weights, l2
            )
        result.compile_seconds = time.perf_counter() - start
        result.kernel = "loss and gradient"
        start = time.perf_counter()
        res = scipy.optimize.minimize(
            value_and_grad,
            theta.astype(np.float64),
            method="L-BFGS-B",
            jac=True,
            callback=record,
            options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
        )
        result.train_seconds = time.perf_counter() - start
    if not np.all(np.isfinite(res.x)):
        raise DivergenceError(
            "L-BFGS diverged: its weights became NaN or infinite; scale the data",
            result.epochs,
        )
    theta[...] = res.x
    if res.status != 0:
        result.stop_reason = (
            f"L-BFGS-B did not converge (status={res.status}): {res.message}"
        )
    return result


def _checked_problem(model, loss, X, T, val, metric):
    """lbfgs's model, loss, data, validation pair and metric checked:
    (plan, X, T, val, metric), the fused plan of (model, loss) without an
    optimizer, the arrays coerced to the model's dtype, the metric
    defaulted (accuracy for labels, else r2)."""
    plan = _loss_plan(model, loss, "lbfgs")
    X, T = coerce(model, loss, X, T, "training", "lbfgs")
    if val is not None:
        if not (isinstance(val, tuple | list) and len(val) == 2):
            raise TypeError(
                f"lbfgs: val must be a pair (X_val, T_val), got {type(val).__name__}"
            )
        val = coerce(model, loss, val[0], val[1], "validation", "lbfgs")
    if metric is None:
        metric = "accuracy" if loss.target == "labels" else "r2"
    if metric not in METRICS:
        raise ValueError(f"lbfgs: metric must be one of {sorted(METRICS)}")
    return plan, X, T, val, metric


def _loss_plan(model, loss, who: str):
    """The fused plan of (model, loss) without an optimizer; TypeError for
    another kind of object, ValueError saying why the pair cannot fuse."""
    if not isinstance(model, Sequential):
        raise TypeError(f"{who}: model must be a fastbp Sequential, got {model!r}")
    if not isinstance(loss, Loss):
        raise TypeError(f"{who}: loss must be a fastbp Loss, got {loss!r}")
    plan = fused_plan(model, loss, None)
    if isinstance(plan, str):
        raise ValueError(f"{who}: {plan}")
    return plan
