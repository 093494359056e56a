"""The speed suite: every engine side by side in one process.

Run it as ``fastbp bench`` or ``python -m fastbp.bench``. For each case, every
available engine is built from the same weights and batch, warmed up (compile
excluded), then timed in rounds: each round times every engine once, in turn,
so slow phases of a shared machine hit all engines alike; the figure is the
median over rounds. A step's count of n is chosen per engine so that one timing
takes about ``budget`` seconds.

Reported per engine and case: µs per step, samples/s, GFLOP/s (matrix products
actually performed, see :func:`.common.flops_per_step`), GFLOP/s per core (over
``threads``, or every core without a cap) and the ratio to fastbp's fused
path; for the reference cases (common.REFERENCE_CASES) fastbp.train's figure
per core beside the published one; then kernel micro-benchmarks against NumPy, fastbp's
thread scaling (1 vs 2 threads) and the machine's reference peak, NumPy's
float32 matmul on 2048 x 2048 in the same run.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import platform
import statistics
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from .. import kernels as K
from .._threads import thread_limit
from .._version import __version__
from .common import (
    CASES,
    PUBLISHED_GFLOPS_PER_CORE,
    REFERENCE_CASES,
    case_spec,
    flops_per_step,
)

#: Every case ``fastbp bench`` runs by default: the suite's, then the ones
#: measured against published figures.
ALL_CASES = {**CASES, **REFERENCE_CASES}

#: (module, class, library it needs) of every engine, in report order.
ENGINES = [
    ("engines", "FastbpFusedEngine", None),
    ("engines", "FastbpTrainEngine", None),
    ("engines", "FastbpLayerEngine", None),
    ("numpy_scratch", "NumpyEngine", None),
    ("torch_eager", "TorchEngine", "torch"),
    ("jax_engines", "JaxLoopEngine", "jax"),
    ("jax_engines", "JaxStepEngine", "jax"),
]

LR = 1e-3
SEED = 0


#: XLA's CPU backend reads these flags once, when jax first starts it.
XLA_ONE_THREAD = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"


def _importable(lib: str) -> bool:
    """Whether the library imports (importing it changes no setting)."""
    try:
        importlib.import_module(lib)
    except ImportError:
        return False
    return True


def available_engines() -> list[type]:
    """Engine classes whose library is installed, in report order."""
    found = []
    for module, cls, lib in ENGINES:
        if lib is None or _importable(lib):
            engines = importlib.import_module(f".{module}", __package__)
            found.append(getattr(engines, cls))
    return found


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """os.environ[name] = value inside the block; the old value (or its
    absence) restored after."""
    saved = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = saved


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    """torch's intra-op thread count n inside the block, restored after."""
    import torch

    saved = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(saved)


@contextlib.contextmanager
def engine_threads(threads: int | None) -> Iterator[None]:
    """Every engine's thread count capped at ``threads`` inside the block, and
    every setting changed for it restored after, even on an error: Numba's
    and every BLAS's count (:func:`thread_limit`), torch's, and ``XLA_FLAGS``
    when it was unset and ``threads`` is 1. None changes nothing.

    XLA applies its flags when jax first starts its CPU backend and keeps them
    for the life of the process, so the cap reaches jax only if no jax
    computation ran before the block; the variable itself is still restored.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(thread_limit(threads))
        if threads is not None:
            if _importable("torch"):
                stack.enter_context(_torch_threads(threads))
            if threads == 1 and "XLA_FLAGS" not in os.environ and _importable("jax"):
                stack.enter_context(_environ("XLA_FLAGS", XLA_ONE_THREAD))
        yield


def _time(fn, n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start


def _calibrate(fn, budget: float, cap: int) -> int:
    """A count n for which fn(n) takes about budget seconds."""
    n = 1
    while n < cap:
        elapsed = _time(fn, n)
        if elapsed >= budget / 4:
            break
        n *= 4 if elapsed < budget / 64 else 2
    return max(1, min(cap, int(n * budget / max(_time(fn, n), 1e-9))))


def time_engines(engines: list, budget: float, rounds: int) -> list[float]:
    """Median seconds per step of each engine, timed in interleaved rounds."""
    counts = [_calibrate(e.step, budget, cap=10_000_000) for e in engines]
    samples: list[list[float]] = [[] for _ in engines]
    for _ in range(rounds):
        for engine, n, out in zip(engines, counts, samples, strict=True):
            out.append(_time(engine.step, n) / n)
    return [statistics.median(s) for s in samples]


def agreement(
    classes: list[type], sizes, batch: int, steps: int = 3, dtype=np.float32
) -> dict:
    """Largest relative weight difference of each engine from the NumPy one
    after ``steps`` identical SGD steps (lr 0.05)."""
    runs = {}
    for cls in classes:
        engine = cls(sizes, batch, 0.05, SEED, dtype=dtype)
        engine.step(steps)
        runs[cls.name] = engine.weights()
    reference = runs["numpy"]
    result = {}
    for name, weights in runs.items():
        worst = 0.0
        for (W, b), (W0, b0) in zip(weights, reference, strict=True):
            for a, a0 in ((W, W0), (b, b0)):
                scale = max(float(np.abs(a0).max()), 1e-30)
                worst = max(worst, float(np.abs(a - a0).max()) / scale)
        result[name] = worst
    return result


def reference_peak(size: int = 2048, rounds: int = 5) -> float:
    """GFLOP/s of NumPy's float32 matmul on (size x size) @ (size x size)."""
    rng = np.random.default_rng(SEED)
    A = rng.standard_normal((size, size), dtype=np.float32)
    B = rng.standard_normal((size, size), dtype=np.float32)
    C = np.empty_like(A)
    np.matmul(A, B, out=C)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        np.matmul(A, B, out=C)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def _kernel_pairs(n: int, k: int, m: int) -> dict:
    """(fastbp kernel call, the NumPy lines a from-scratch layer runs) per
    kernel, on fixed random float32 arrays of a dense layer (n, k) -> (n, m)."""
    rng = np.random.default_rng(SEED)
    X = rng.standard_normal((n, k), dtype=np.float32)
    W = rng.standard_normal((k, m), dtype=np.float32)
    b = rng.standard_normal(m, dtype=np.float32)
    Y, dY = np.empty((n, m), np.float32), rng.standard_normal((n, m), np.float32)
    dW, db, dX = np.empty_like(W), np.empty_like(b), np.empty_like(X)
    T = rng.standard_normal((n, m), dtype=np.float32)

    def numpy_forward():
        np.dot(X, W, out=Y)
        np.add(Y, b, out=Y)

    def numpy_backward():
        np.dot(X.T, dY, out=dW)
        np.sum(dY, axis=0, out=db)
        np.dot(dY, W.T, out=dX)

    def numpy_mse():
        np.subtract(T, dY, out=Y)
        np.multiply(Y, np.float32(2.0 / Y.size), out=Y)
        return float(np.mean((T - dY) ** 2))

    return {
        "dense forward": (lambda: K.dense_forward(X, W, b, Y), numpy_forward),
        "dense backward": (
            lambda: K.dense_backward(X, W, dY, dW, db, dX),
            numpy_backward,
        ),
        "relu backward (mask)": (
            lambda: K.relu_backward(T, dY, Y),
            lambda: np.multiply(dY, T > 0, out=Y),
        ),
        "mse value+grad": (lambda: K.mse_backward(T, dY, True, Y), numpy_mse),
    }


def _repeat(f):
    def run(count):
        for _ in range(count):
            f()

    return run


def _micro_cases(shapes, budget: float, rounds: int) -> list[dict]:
    """fastbp kernels vs NumPy, per call from Python (dispatch included)."""
    rows = []
    for n, k, m in shapes:
        for kernel, (fast, slow) in _kernel_pairs(n, k, m).items():
            fast()  # compile
            t_fast, t_numpy = time_engines(
                [_Callable(_repeat(fast)), _Callable(_repeat(slow))], budget, rounds
            )
            rows.append(
                {
                    "kernel": kernel,
                    "shape": f"{n}x{k}->{m}",
                    "fastbp_us": 1e6 * t_fast,
                    "numpy_us": 1e6 * t_numpy,
                    "speedup": t_numpy / t_fast,
                }
            )
    return rows


class _Callable:
    def __init__(self, fn):
        self.step = fn


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    versions = {"fastbp": __version__, "python": platform.python_version()}
    for lib in ("numpy", "numba", "scipy", "torch", "jax"):
        try:
            versions[lib] = importlib.import_module(lib).__version__
        except ImportError:
            versions[lib] = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions,
    }


def run(
    *,
    cases: dict | None = None,
    budget: float = 0.25,
    rounds: int = 5,
    threads: int | None = None,
    micro_shapes=((4, 2, 8), (64, 32, 64), (128, 784, 256)),
    peak_size: int = 2048,
    scaling: bool = True,
    echo=print,
) -> dict:
    """Run the suite and return every figure as a JSON-ready dict. A case is
    (sizes, batch) or (sizes, batch, dtype) (common.case_spec)."""
    cases = ALL_CASES if cases is None else cases
    cores = threads or os.cpu_count() or 1
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "machine": machine(),
        "threads": threads,
        "budget_s": budget,
        "rounds": rounds,
        "cases": [],
    }
    classes = available_engines()
    with engine_threads(threads):
        result["engines"] = [cls.name for cls in classes]
        result["peak_size"] = peak_size
        result["peak_gflops"] = reference_peak(peak_size, rounds)
        echo(
            f"reference: NumPy float32 matmul {peak_size}^2: "
            f"{result['peak_gflops']:.1f} GFLOP/s"
        )
        for name, spec in cases.items():
            sizes, batch, dtype = case_spec(spec)
            engines = [cls(sizes, batch, LR, SEED, dtype=dtype) for cls in classes]
            for engine in engines:
                engine.warmup()
            seconds = time_engines(engines, budget, rounds)
            flops = flops_per_step(sizes, batch)
            fused = seconds[0]
            rows = [
                {
                    "engine": e.name,
                    "us_per_step": 1e6 * s,
                    "samples_per_s": batch / s,
                    "gflops": flops / s / 1e9,
                    "gflops_per_core": flops / s / 1e9 / cores,
                    "ratio_to_fused": s / fused,
                }
                for e, s in zip(engines, seconds, strict=True)
            ]
            case = {
                "case": name,
                "sizes": list(sizes),
                "batch": batch,
                "dtype": dtype.name,
                "flops_per_step": flops,
                "engines": rows,
                "agreement": agreement(classes, sizes, batch, dtype=dtype),
            }
            if name in PUBLISHED_GFLOPS_PER_CORE:
                figure, source = PUBLISHED_GFLOPS_PER_CORE[name]
                case["published_gflops_per_core"] = figure
                case["published_source"] = source
            result["cases"].append(case)
            echo(format_case(case))
        result["kernels"] = _micro_cases(micro_shapes, budget / 5, rounds)
    if scaling:
        result["thread_scaling"] = thread_scaling(cases, budget, rounds)
    return result


def thread_scaling(cases: dict, budget: float, rounds: int) -> list[dict]:
    """fastbp fused µs/step with 1 and with 2 threads (BLAS and Numba)."""
    from .engines import FastbpFusedEngine

    rows = []
    for name, spec in cases.items():
        sizes, batch, dtype = case_spec(spec)
        figures = {}
        for n in (1, 2):
            with thread_limit(n):
                engine = FastbpFusedEngine(sizes, batch, LR, SEED, dtype=dtype)
                engine.warmup()
                figures[n] = time_engines([engine], budget, rounds)[0]
        rows.append(
            {
                "case": name,
                "us_1_thread": 1e6 * figures[1],
                "us_2_threads": 1e6 * figures[2],
                "speedup": figures[1] / figures[2],
            }
        )
    return rows


def format_case(case: dict) -> str:
    dtype = case.get("dtype", "float32")
    lines = [
        f"\n{case['case']}  (batch {case['batch']}, {dtype}, "
        f"{case['flops_per_step'] / 1e6:.3g} MFLOP/step)"
    ]
    lines.append(
        f"  {'engine':<14}{'us/step':>12}{'samples/s':>14}{'GFLOP/s':>10}"
        f"{'x fused':>10}{'max rel diff':>14}"
    )
    for row in case["engines"]:
        lines.append(
            f"  {row['engine']:<14}{row['us_per_step']:>12.3f}"
            f"{row['samples_per_s']:>14,.0f}{row['gflops']:>10.2f}"
            f"{row['ratio_to_fused']:>10.2f}{case['agreement'][row['engine']]:>14.1e}"
        )
    if "published_gflops_per_core" in case:
        train = next(r for r in case["engines"] if r["engine"] == "fastbp-train")
        lines.append(
            f"  fastbp.train {train['gflops_per_core']:.1f} GFLOP/s per core; "
            f"published: {case['published_gflops_per_core']:.0f} "
            f"({case['published_source']})"
        )
    return "\n".join(lines)


def markdown(result: dict) -> str:
    m = result["machine"]
    v = m["versions"]
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    threads = result["threads"] or "library defaults"
    out = [
        f"Measured {result['date'][:10]} on {m['cpu']} ({m['cores']} cores), "
        f"threads: {threads}; {libs}. float32 SGD training steps, median of "
        f"{result['rounds']} interleaved rounds. Reference peak (NumPy float32 "
        f"matmul {result['peak_size']}²): {result['peak_gflops']:.1f} GFLOP/s.",
        "",
        "| case | engine | µs/step | samples/s | GFLOP/s | × fastbp fused |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for case in result["cases"]:
        dtype = case.get("dtype", "float32")
        label = f"B={case['batch']}" + ("" if dtype == "float32" else f", {dtype}")
        for row in case["engines"]:
            out.append(
                f"| {case['case']} ({label}) | {row['engine']} | "
                f"{row['us_per_step']:.3g} | {row['samples_per_s']:,.0f} | "
                f"{row['gflops']:.2f} | {row['ratio_to_fused']:.2f} |"
            )
    published = [c for c in result["cases"] if "published_gflops_per_core" in c]
    if published:
        out += [
            "",
            "| case | fastbp.train GFLOP/s per core | published GFLOP/s per core |",
            "|---|---:|---:|",
        ]
        for case in published:
            train = next(r for r in case["engines"] if r["engine"] == "fastbp-train")
            out.append(
                f"| {case['case']} | {train['gflops_per_core']:.1f} | "
                f"{case['published_gflops_per_core']:.0f} "
                f"({case['published_source']}) |"
            )
    out += [
        "",
        "| kernel | shape | fastbp µs | NumPy µs | speedup |",
        "|---|---|---:|---:|---:|",
    ]
    for row in result.get("kernels", []):
        out.append(
            f"| {row['kernel']} | {row['shape']} | {row['fastbp_us']:.3g} | "
            f"{row['numpy_us']:.3g} | {row['speedup']:.2f} |"
        )
    if result.get("thread_scaling"):
        out += [
            "",
            "| case | fastbp fused, 1 thread µs | 2 threads µs | speedup |",
            "|---|---:|---:|---:|",
        ]
        for row in result["thread_scaling"]:
            out.append(
                f"| {row['case']} | {row['us_1_thread']:.3g} | "
                f"{row['us_2_threads']:.3g} | {row['speedup']:.2f} |"
            )
    return "\n".join(out) + "\n"


def write(result: dict, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write results.json and results.md into out_dir (created if needed)."""
    from ..io.model import write_text_atomic

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    json_path, md_path = folder / "results.json", folder / "results.md"
    write_text_atomic(json_path, json.dumps(result, indent=1) + "\n")
    write_text_atomic(md_path, markdown(result))
    return json_path, md_path


def quick_cases() -> dict:
    """Tiny sizes for a smoke run."""
    return {"tiny-3-5-2": ((3, 5, 2), 4), "small-16-32-4": ((16, 32, 4), 32)}


__all__ = ["ALL_CASES", "CASES", "run", "write", "markdown", "quick_cases"]
