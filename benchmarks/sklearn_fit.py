"""``fit`` time of ``fastbp.sklearn`` against scikit-learn's MLP estimators:
the same data, the same parameters, in one process, side by side.

    python benchmarks/sklearn_fit.py [--repeats 3] [--threads N]
        [--dtype float32|float64] [--quick] [--case NAME ...]

Data: ``make_classification(n_features=20, n_informative=10, random_state=0)``
(``make_regression`` for the regressor row), split 80/20 with
``train_test_split(test_size=0.2, random_state=0)`` so that the training part
has the stated number of rows, features standardized with a ``StandardScaler``
fitted on the training part. Both libraries get the same float64 arrays
(fastbp converts them to ``--dtype`` inside ``fit``, which is timed;
scikit-learn trains in float64). Cases, with the issue's targets for
scikit-learn's time divided by fastbp's:

- Adam, 100,000 training rows, ``batch_size=200``, ``max_iter=10``, ``tol=0``,
  ``n_iter_no_change=11`` (so both run exactly 10 epochs; ``n_iter_`` is
  printed), hidden layers (64,) [>= 10x], (64, 64) [>= 5x], (256, 256)
  [>= 2x]; (64,) also with fastbp in the other dtype and as ``MLPRegressor``
  (no target: for information);
- L-BFGS, 2,000 training rows, hidden (64,), ``max_iter=200``, ``tol=0``
  [>= 5x] (the iterations each library ran are printed).

All fits use ``random_state=0``. Before each case one untimed fit of each
library on 1,000 rows runs first, so Numba's compilation or cache load (and
BLAS start-up) is not counted. Then ``--repeats`` timed ``fit`` calls of each,
alternating, with ``time.perf_counter``; the table gives the medians, the
ratio, the target and the held-out score (accuracy, R^2 for the regressor) of
the last fit on the 20 % held out. ``--threads N`` caps both: fastbp through
``n_threads=N`` and every BLAS/OpenMP pool in the process through
``threadpoolctl.threadpool_limits(N)``; pin the process too for a clean
one-thread figure (``taskset -c 0 ... --threads 1``). ``--quick``: a tenth of
the rows and one repeat, a smoke test.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy
import sklearn
import sklearn.neural_network as sk
import threadpoolctl
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

import fastbp
import fastbp.sklearn as fb

WARMUP_ROWS = 1_000


@dataclass
class Case:
    name: str
    solver: str
    hidden: tuple[int, ...]
    rows: int  # training rows (the data set has rows / 0.8)
    max_iter: int
    target: float | None  # sklearn s / fastbp s; None: for information
    regressor: bool = False
    dtypes: list[str] = field(default_factory=list)  # fastbp dtypes to time


def cases(dtype: str, scale: int) -> list[Case]:
    other = "float64" if dtype == "float32" else "float32"
    big, small = 100_000 // scale, 2_000 // scale
    return [
        Case("adam (64,)", "adam", (64,), big, 10, 10.0, dtypes=[dtype, other]),
        Case("adam (64, 64)", "adam", (64, 64), big, 10, 5.0, dtypes=[dtype]),
        Case("adam (256, 256)", "adam", (256, 256), big, 10, 2.0, dtypes=[dtype]),
        Case("lbfgs (64,)", "lbfgs", (64,), small, 200, 5.0, dtypes=[dtype]),
        Case("adam (64,) regressor", "adam", (64,), big, 10, None, True, [dtype]),
    ]


def make_data(rows: int, regressor: bool):
    """Standardized train/held-out arrays with ``rows`` training rows."""
    n = round(rows / 0.8)
    if regressor:
        X, y = make_regression(
            n_samples=n, n_features=20, n_informative=10, noise=10.0, random_state=0
        )
        y = (y - y.mean()) / y.std()
    else:
        X, y = make_classification(
            n_samples=n, n_features=20, n_informative=10, random_state=0
        )
    X_tr, X_te, y_tr, y_te = train_test_split(X, y, test_size=0.2, random_state=0)
    scaler = StandardScaler().fit(X_tr)
    return scaler.transform(X_tr), scaler.transform(X_te), y_tr, y_te


def params(case: Case) -> dict:
    p = {
        "hidden_layer_sizes": case.hidden,
        "solver": case.solver,
        "max_iter": case.max_iter,
        "tol": 0.0,
        "random_state": 0,
    }
    if case.solver == "adam":
        p.update(batch_size=200, n_iter_no_change=case.max_iter + 1)
    return p


def estimators(case: Case, dtype: str | None, threads: int | None):
    """The estimator to time: scikit-learn's (dtype None) or fastbp's."""
    if dtype is None:
        cls = sk.MLPRegressor if case.regressor else sk.MLPClassifier
        return cls(**params(case))
    cls = fb.MLPRegressor if case.regressor else fb.MLPClassifier
    return cls(**params(case), dtype=dtype, n_threads=threads)


def timed_fit(est, X, y) -> float:
    start = time.perf_counter()
    est.fit(X, y)
    return time.perf_counter() - start


def run_case(case: Case, repeats: int, threads: int | None) -> list[dict]:
    X_tr, X_te, y_tr, y_te = make_data(case.rows, case.regressor)
    engines = [*case.dtypes, None]  # None: scikit-learn
    # Untimed warm-up of each: JIT compilation / cache load, BLAS start-up.
    for dtype in engines:
        warm = estimators(case, dtype, threads).set_params(max_iter=2)
        warm.fit(X_tr[:WARMUP_ROWS], y_tr[:WARMUP_ROWS])
    times: dict[str | None, list[float]] = {d: [] for d in engines}
    fitted = {}
    for _ in range(repeats):
        for dtype in engines:
            est = estimators(case, dtype, threads)
            times[dtype].append(timed_fit(est, X_tr, y_tr))
            fitted[dtype] = est
    ref = fitted[None]
    sk_s = statistics.median(times[None])
    rows = []
    for i, dtype in enumerate(case.dtypes):
        fb_s = statistics.median(times[dtype])
        ratio = sk_s / fb_s
        target = case.target if i == 0 else None
        rows.append(
            {
                "case": case.name,
                "rows": case.rows,
                "dtype": dtype,
                "fb_s": fb_s,
                "sk_s": sk_s,
                "ratio": ratio,
                "target": target,
                "met": None if target is None else ratio >= target,
                "fb_iter": fitted[dtype].n_iter_,
                "sk_iter": ref.n_iter_,
                "fb_score": fitted[dtype].score(X_te, y_te),
                "sk_score": ref.score(X_te, y_te),
                "regressor": case.regressor,
                "max_iter": case.max_iter,
            }
        )
    return rows


def machine() -> str:
    cpu = platform.processor()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            names = [ln.split(":", 1)[1].strip() for ln in f if "model name" in ln]
        cpu = names[0] if names else cpu
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    return (
        f"machine: {cpu or 'unknown CPU'}, os.cpu_count() = {os.cpu_count()}, "
        f"usable by this process: {affinity or '?'}; {platform.platform()}"
    )


def versions() -> str:
    blas = sorted(
        {
            f"{p['internal_api']} {p.get('version')} ({p['num_threads']} threads)"
            for p in threadpoolctl.threadpool_info()
        }
    )
    return (
        f"Python {sys.version.split()[0]}, fastbp {fastbp.__version__}, "
        f"scikit-learn {sklearn.__version__}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, threadpoolctl {threadpoolctl.__version__}; "
        f"thread pools: {', '.join(blas)}"
    )


def print_table(rows: list[dict]) -> None:
    print(
        "\n| case | train rows | fastbp dtype | fastbp s | sklearn s "
        "| sklearn / fastbp | target | met | n_iter_ fastbp / sklearn "
        "| held-out fastbp | held-out sklearn |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---|---:|---:|---:|")
    for r in rows:
        target = "-" if r["target"] is None else f">= {r['target']:g}x"
        met = "-" if r["met"] is None else ("yes" if r["met"] else "**no**")
        kind = "R^2" if r["regressor"] else "acc"
        print(
            f"| {r['case']} | {r['rows']:,} | {r['dtype']} | {r['fb_s']:.3f} "
            f"| {r['sk_s']:.3f} | {r['ratio']:.1f}x | {target} | {met} "
            f"| {r['fb_iter']} / {r['sk_iter']} "
            f"| {r['fb_score']:.4f} {kind} | {r['sk_score']:.4f} {kind} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    parser.add_argument("--quick", action="store_true", help="10x fewer rows, 1 repeat")
    parser.add_argument(
        "--case",
        action="append",
        default=None,
        help="run only this case (repeatable), e.g. 'adam (64, 64)'",
    )
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    scale = 10 if args.quick else 1

    limits = (
        threadpoolctl.threadpool_limits(args.threads)
        if args.threads is not None
        else contextlib.nullcontext()
    )
    with limits, warnings.catch_warnings():
        # max_iter reached: wanted here (fixed epoch counts).
        warnings.simplefilter("ignore", ConvergenceWarning)
        print(machine())
        print(versions())
        print(
            f"threads: {args.threads or 'library defaults'}; fastbp dtype "
            f"{args.dtype}; {repeats} timed fit(s) per engine, median; one "
            f"untimed warm-up fit of each engine on {WARMUP_ROWS:,} rows before "
            "each case (JIT compilation / cache load not counted)"
            + ("; --quick: 10x fewer rows" if args.quick else ""),
            flush=True,
        )
        results = []
        for case in cases(args.dtype, scale):
            if args.case and case.name not in args.case:
                continue
            print(f"running {case.name} ...", file=sys.stderr, flush=True)
            results.extend(run_case(case, repeats, args.threads))
    print_table(results)
    print(
        "\nsklearn / fastbp: scikit-learn's median fit time over fastbp's; "
        "held-out: accuracy (R^2 for the regressor) on the 20 % held out. "
        "scikit-learn trains in float64."
    )
    adam = [r for r in results if r["case"].startswith("adam")]
    off = [r for r in adam if not r["fb_iter"] == r["sk_iter"] == 10]
    print(
        "n_iter_ check: every Adam fit ran exactly 10 epochs"
        if not off
        else "n_iter_ check FAILED: " + ", ".join(r["case"] for r in off)
    )


if __name__ == "__main__":
    main()
