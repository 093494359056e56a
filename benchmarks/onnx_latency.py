"""Prediction latency: onnxruntime serving a model ``fastbp export`` wrote,
beside ``fastbp predict`` and scikit-learn's ``MLPClassifier.predict``.

    python benchmarks/onnx_latency.py [--features 20] [--hidden 128,64]
        [--classes 3] [--rows 10000] [--budget 1.0] [--cli-repeats 5]
        [--threads N] [--quick]

One model, trained as a user would: ``fastbp train`` on a synthetic CSV
(``make_classification(n_samples=rows, n_features, n_informative=features //
2, n_classes, random_state=0)``, columns x1..xN and the label column
``target``), a few epochs (accuracy does not matter here, the model's size
does), saved, then exported with ``fastbp.export_onnx`` twice: one graph
input per column (the default) and one matrix input ``X``. scikit-learn's
``MLPClassifier`` with the same hidden layers and activation (ReLU) is fitted
on the same rows (``max_iter=2``). Each is timed predicting 1 row and
``--rows`` rows (the first rows of the table):

- onnxruntime, ``InferenceSession.run`` (CPU provider, default threads), the
  inputs already in arrays; the session is built once, before timing (its
  load time is printed);
- ``fastbp.data.problem.Predictor.predict`` in-process (standardization,
  network, labels), on a float64 array;
- ``fastbp predict --model M --data F.csv --quiet``, the command as a user
  runs it, in a new process each time: Python start-up, imports, reading the
  CSV and writing the labels to a pipe included;
- scikit-learn's ``MLPClassifier.predict`` on a float64 array.

In-process timings call the function repeatedly (after 3 untimed calls) for
``--budget`` seconds, at least 5 and at most 10,000 times; the command runs
``--cli-repeats`` times after one untimed run. The table gives medians.
``--threads N`` caps every library at N threads: onnxruntime's
``intra_op_num_threads``, Numba's pool and every BLAS and OpenMP pool in the
process (threadpoolctl), and the command's through ``NUMBA_NUM_THREADS``,
``OMP_NUM_THREADS`` and ``OPENBLAS_NUM_THREADS``; without it each library
uses its default (all cores). The load average is printed before and after:
on a shared machine, other processes' load shows in the multi-threaded
figures first. ``--quick``: 1,000 rows, a 0.1 s budget and 2 command runs (a
smoke test).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numba
import numpy as np
import onnxruntime as ort
import sklearn
import sklearn.neural_network as sk
from sklearn.datasets import make_classification
from sklearn.exceptions import ConvergenceWarning
from threadpoolctl import threadpool_limits

import fastbp
from fastbp.data.problem import Predictor


def fastbp_command() -> list[str]:
    """The installed ``fastbp``, or the same through this interpreter."""
    exe = Path(sys.executable).with_name("fastbp")
    if exe.exists():
        return [str(exe)]
    return [sys.executable, "-m", "fastbp"]


def timed(call: Callable[[], object], budget: float) -> float:
    """Median seconds per call: 3 untimed calls, then calls until budget
    seconds have passed (at least 5, at most 10,000)."""
    for _ in range(3):
        call()
    times: list[float] = []
    end = time.perf_counter() + budget
    while len(times) < 5 or (time.perf_counter() < end and len(times) < 10_000):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def timed_command(args: list[str], repeats: int, threads: int | None) -> float:
    """Median wall seconds of the command (after one untimed run)."""
    env = dict(os.environ)
    if threads:
        for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        subprocess.run(args, check=True, stdout=subprocess.DEVNULL, env=env)
        if i:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def write_csv(path: Path, X: np.ndarray, y: np.ndarray | None) -> None:
    names = [f"x{j + 1}" for j in range(X.shape[1])]
    with open(path, "w") as f:
        f.write(",".join(names + (["target"] if y is not None else [])) + "\n")
        for i, row in enumerate(X):
            cells = [repr(float(v)) for v in row]
            if y is not None:
                cells.append(f"c{y[i]}")
            f.write(",".join(cells) + "\n")


def machine() -> str:
    cpu = platform.processor()
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            lines = f.read().splitlines()
        names = [ln.split(":", 1)[1].strip() for ln in lines if "model name" in ln]
        cpu = names[0] if names else cpu
        for ln in lines:
            if ln.startswith("flags"):
                flags = set(ln.split(":", 1)[1].split())
                break
    simd = (
        "AVX-512"
        if "avx512f" in flags
        else "AVX2"
        if "avx2" in flags
        else "no AVX2"
        if flags
        else "SIMD unknown"
    )
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0
    return (
        f"machine: {cpu or 'unknown CPU'} ({simd}), os.cpu_count() = "
        f"{os.cpu_count()}, usable by this process: {affinity or '?'}; "
        f"{platform.platform()}"
    )


def fmt(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--hidden", default="128,64")
    parser.add_argument("--classes", type=int, default=3)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--budget", type=float, default=1.0)
    parser.add_argument("--cli-repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.rows, args.budget, args.cli_repeats = 1_000, 0.1, 2
    hidden = [int(h) for h in args.hidden.split(",")]
    X, y = make_classification(
        n_samples=args.rows,
        n_features=args.features,
        n_informative=max(2, args.features // 2),
        n_classes=args.classes,
        random_state=0,
    )
    load_before = os.getloadavg()
    options = ort.SessionOptions()
    limits = contextlib.nullcontext()
    if args.threads:
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        numba.set_num_threads(args.threads)
        limits = threadpool_limits(args.threads)
    with tempfile.TemporaryDirectory() as tmp, limits:
        tmp = Path(tmp)
        table, one = tmp / "table.csv", tmp / "one.csv"
        write_csv(table, X, y)
        write_csv(one, X[:1], None)
        model = tmp / "model.npz"
        print("training with fastbp train ...", file=sys.stderr, flush=True)
        train = ["train", "--data", table, "--target", "target", "--hidden"]
        train += [args.hidden, "--epochs", "3", "--save", model, "--quiet"]
        train = [*fastbp_command(), *map(str, train)]
        subprocess.run(train, check=True, stdout=subprocess.DEVNULL)
        by_column = fastbp.export_onnx(model, tmp / "columns.onnx")
        fastbp.export_onnx(model, tmp / "matrix.onnx", inputs="matrix")
        start = time.perf_counter()
        cpu = ["CPUExecutionProvider"]
        sess = ort.InferenceSession(str(tmp / "columns.onnx"), options, providers=cpu)
        load = time.perf_counter() - start
        sess_matrix = ort.InferenceSession(
            str(tmp / "matrix.onnx"), options, providers=cpu
        )
        names = [i.name for i in by_column.graph.input]
        predictor = Predictor.load(model)
        skl = sk.MLPClassifier(tuple(hidden), max_iter=2, random_state=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            skl.fit(X, y)

        # Everyone gives the same labels (a check, not timed).
        labels = sess.run(["label"], {n: X[:, [j]] for j, n in enumerate(names)})[0]
        assert labels.tolist() == predictor.predict(X), "onnxruntime != fastbp"

        results: dict[str, list[float]] = {}
        for rows, part, csv in ((1, X[:1], one), (args.rows, X, table)):
            feeds = {n: np.ascontiguousarray(part[:, [j]]) for j, n in enumerate(names)}
            print(f"timing {rows} row(s) ...", file=sys.stderr, flush=True)
            cases = {
                "onnxruntime, one input per column": lambda f=feeds: sess.run(None, f),
                "onnxruntime, matrix input X": lambda p=part: sess_matrix.run(
                    None, {"X": p}
                ),
                "fastbp Predictor.predict (in-process)": lambda p=part: (
                    predictor.predict(p)
                ),
                "scikit-learn MLPClassifier.predict": lambda p=part: skl.predict(p),
            }
            for name, call in cases.items():
                results.setdefault(name, []).append(timed(call, args.budget))
            command = ["predict", "--model", model, "--data", csv, "--quiet"]
            command = [*fastbp_command(), *map(str, command)]
            seconds = timed_command(command, args.cli_repeats, args.threads)
            results.setdefault("`fastbp predict` (the command)", []).append(seconds)

    load_after = os.getloadavg()
    print(machine())
    print(
        f"threads: {args.threads or 'each library default'}; load average "
        f"(1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after"
    )
    print(
        f"Python {sys.version.split()[0]}, fastbp {fastbp.__version__}, "
        f"onnxruntime {ort.__version__}, scikit-learn {sklearn.__version__}, "
        f"numpy {np.__version__}"
    )
    print(
        f"model: {args.features} inputs, hidden {args.hidden} (ReLU), "
        f"{args.classes} classes, float32; onnxruntime session load "
        f"{fmt(load)}\n"
    )
    print(f"| median time to predict | 1 row | {args.rows:,} rows |")
    print("|---|---:|---:|")
    for name, (t1, tn) in results.items():
        print(f"| {name} | {fmt(t1)} | {fmt(tn)} |")


if __name__ == "__main__":
    main()
