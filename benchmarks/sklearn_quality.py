"""Validation score of ``fastbp.sklearn`` against scikit-learn's MLP
estimators on data sets that ship with scikit-learn, the same settings for both.

    python benchmarks/sklearn_quality.py [--seeds 5] [--dtype float32|float64]
        [--quick]

Data sets: ``load_digits`` and ``load_breast_cancer`` (``MLPClassifier``,
score: accuracy), ``load_diabetes`` and ``fetch_california_housing``
(``MLPRegressor``, score: R^2; the latter only if it is already on disk:
``download_if_missing=False``, otherwise the row says it was skipped).
Each is split once with ``train_test_split(test_size=0.25, random_state=0)``;
the estimator is ``make_pipeline(StandardScaler(), MLP...)`` (for regression
inside ``TransformedTargetRegressor(transformer=StandardScaler())``, so the
target is standardized too), fitted on the training part and scored on the
validation part. Both libraries get the same parameters (``SETTINGS`` below;
hidden layers (64,), solver "adam" and "lbfgs", scikit-learn's defaults
otherwise) and ``random_state`` 0 .. seeds-1; fastbp trains in ``--dtype``
(default float32, its default), scikit-learn in float64. Prints per data set
and solver: fastbp mean +- std, scikit-learn mean +- std over the seeds, the
difference of the means and whether it is within the target |diff| <= 0.01,
plus the mean fit time of each (after one untimed 2-iteration warm-up fit
of each, so Numba's compilation is not counted). ``ConvergenceWarning`` is
silenced (max_iter is reached on purpose for some settings). ``--quick``: 2
seeds and a third of the iterations, a smoke test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings

import numpy as np
import sklearn
import sklearn.neural_network as sk
from sklearn.compose import TransformedTargetRegressor
from sklearn.datasets import (
    fetch_california_housing,
    load_breast_cancer,
    load_diabetes,
    load_digits,
)
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastbp
import fastbp.sklearn as fb

TARGET = 0.01

#: data set -> (loader, regression?, settings per solver, shared by both).
SETTINGS = {
    "digits": (
        load_digits,
        False,
        {
            "adam": {"max_iter": 300},
            "lbfgs": {"max_iter": 300},
        },
    ),
    "breast_cancer": (
        load_breast_cancer,
        False,
        {
            "adam": {"max_iter": 300},
            "lbfgs": {"max_iter": 300},
        },
    ),
    "diabetes": (
        load_diabetes,
        True,
        {
            # 331 training rows: with the default alpha=1e-4 a 64-unit layer
            # overfits (validation R^2 < 0 for both libraries); alpha=10 does not.
            "adam": {"max_iter": 1000, "learning_rate_init": 0.01, "alpha": 10.0},
            "lbfgs": {"max_iter": 300, "alpha": 10.0},
        },
    ),
    "california_housing": (
        lambda: fetch_california_housing(download_if_missing=False),
        True,
        {
            "adam": {"max_iter": 100},
            "lbfgs": {"max_iter": 300},
        },
    ),
}


def estimator(lib: str, regression: bool, params: dict):
    mod = fb if lib == "fastbp" else sk
    mlp = (mod.MLPRegressor if regression else mod.MLPClassifier)(**params)
    model = make_pipeline(StandardScaler(), mlp)
    if regression:
        model = TransformedTargetRegressor(model, transformer=StandardScaler())
    return model


def evaluate(name, loader, regression, solver, settings, seeds, dtype, quick):
    """One row: scores and fit times of each library over the seeds."""
    data = loader()
    X_tr, X_val, y_tr, y_val = train_test_split(
        data.data, data.target, test_size=0.25, random_state=0
    )
    base = {"hidden_layer_sizes": (64,), "solver": solver, **settings}
    if quick:
        base["max_iter"] = max(1, base["max_iter"] // 3)
    scores: dict[str, list[float]] = {"fastbp": [], "sklearn": []}
    times: dict[str, list[float]] = {"fastbp": [], "sklearn": []}

    def model_for(lib, seed, max_iter):
        params = {**base, "random_state": seed, "max_iter": max_iter}
        if lib == "fastbp":
            params["dtype"] = dtype
        return estimator(lib, regression, params)

    for lib in scores:  # untimed warm-up: Numba compilation / cache load
        model_for(lib, 0, 2).fit(X_tr, y_tr)
    for seed in range(seeds):
        for lib in scores:
            model = model_for(lib, seed, base["max_iter"])
            start = time.perf_counter()
            model.fit(X_tr, y_tr)
            times[lib].append(time.perf_counter() - start)
            scores[lib].append(float(model.score(X_val, y_val)))
    shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "max_iter")
    return {
        "name": name,
        "rows": f"{len(X_tr)} / {len(X_val)}",
        "solver": solver,
        "settings": f"max_iter={base['max_iter']}" + (f", {shown}" if shown else ""),
        "metric": "R^2" if regression else "accuracy",
        "scores": scores,
        "times": times,
    }


def mean_std(values: list[float]) -> tuple[float, float]:
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std


def print_table(rows: list[dict], skipped: list[str]) -> None:
    print(
        "\n| data set | train / val rows | solver | settings | metric "
        "| fastbp mean ± std | sklearn mean ± std | diff | |diff| <= 0.01 "
        "| fit s fastbp / sklearn |"
    )
    print("|---|---|---|---|---|---:|---:|---:|---|---:|")
    for r in rows:
        fb_m, fb_s = mean_std(r["scores"]["fastbp"])
        sk_m, sk_s = mean_std(r["scores"]["sklearn"])
        diff = fb_m - sk_m
        ok = "yes" if abs(diff) <= TARGET else "**no**"
        t_fb = statistics.fmean(r["times"]["fastbp"])
        t_sk = statistics.fmean(r["times"]["sklearn"])
        print(
            f"| {r['name']} | {r['rows']} | {r['solver']} | {r['settings']} "
            f"| {r['metric']} | {fb_m:.4f} ± {fb_s:.4f} | {sk_m:.4f} ± {sk_s:.4f} "
            f"| {diff:+.4f} | {ok} | {t_fb:.3f} / {t_sk:.3f} |"
        )
    for line in skipped:
        print(f"| {line} | | | | | | | | | |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument(
        "--quick", action="store_true", help="2 seeds, a third of the iterations"
    )
    args = parser.parse_args()
    seeds = 2 if args.quick else args.seeds
    print(
        f"Python {sys.version.split()[0]}, fastbp {fastbp.__version__} "
        f"(dtype {args.dtype}), scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}; random_state 0..{seeds - 1}; hidden (64,); "
        "validation split: train_test_split(test_size=0.25, random_state=0)"
        + ("; --quick: a third of the iterations" if args.quick else ""),
        flush=True,
    )
    rows, skipped = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, (loader, regression, per_solver) in SETTINGS.items():
            try:
                loader()
            except OSError:
                skipped.append(f"{name}: skipped: not available offline")
                continue
            for solver, settings in per_solver.items():
                print(f"running {name} {solver} ...", file=sys.stderr, flush=True)
                rows.append(
                    evaluate(
                        name,
                        loader,
                        regression,
                        solver,
                        settings,
                        seeds,
                        args.dtype,
                        args.quick,
                    )
                )
    print_table(rows, skipped)
    print(
        "\ndiff: fastbp mean - sklearn mean (accuracy or R^2 on the validation "
        f"part); target |diff| <= {TARGET}. std: sample standard deviation "
        "over the seeds."
    )


if __name__ == "__main__":
    main()
