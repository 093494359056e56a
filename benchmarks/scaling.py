"""Data-parallel scaling: step time at 1 and 2 processes, and an α–β model.

Measured part (one run per process count; each merges its figures into the
JSON file, ``benchmarks/results/scaling.json`` by default)::

    export OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
    mpiexec -n 1 python benchmarks/scaling.py   # all-reduce at 1 process;
                                                # compute at B, B/2, ..., 1 row
    mpiexec -n 2 python benchmarks/scaling.py   # all-reduce at 2; compute at
                                                # B/2 on both ranks at once
    mpiexec -n 3 python benchmarks/scaling.py --allreduce-only
    python benchmarks/scaling.py --model-only   # fit, model, tables

or all four, one after the other (with the thread variables set):
``python benchmarks/scaling.py --launch``. On a machine shared with other
work, ``--wait-idle 600 --retries 3`` waits for an idle CPU before each run
and repeats a phase during which other processes used more than
``--max-other-load`` cores (the JSON records how much they used).

* All-reduce: MPI_Allreduce (SUM) of float32 and float64 arrays of 1 to 4^11
  elements, separate send and receive arrays, made as fastbp's distributed
  kernel makes it: from a loop inside an ``@numba.njit`` function through
  ``numba_mpi.allreduce``, float32 as complex64 pairs (numba-mpi has no
  float32 type); ``mpi4py``'s ``comm.Allreduce`` for comparison. Median over
  rounds of the slowest rank's time per call. Also each network's gradient
  message (P + 2 float32).
* Compute: the fused training kernel (``FastbpFusedEngine``: float32, plain
  SGD, MSE, ReLU MLP, one fixed batch), 1 thread per process.
* End to end, where ``fastbp.train`` takes ``comm=``: samples/s of
  ``fastbp.train(..., comm=MPI.COMM_WORLD)`` at 1 process, and at 2 with
  ``sync_every`` 1 and 8; skipped with a message where it does not.
* Model: ring all-reduce of P float32 parameters on N nodes,
  ``t = 2(N-1)/N * 4P/beta + 2(N-1)*alpha``; alpha and beta fitted to the
  local figures by least squares on relative error, and predicted for 10 and
  100 Gb/s networks with an assumed per-hop latency. Parallel efficiency
  ``E(N) = t_c(B/N) / (t_c(B/N) + t_ar(N))`` at a fixed global batch B (strong
  scaling of one step; t_c measured here at ceil(B/N) rows), and the smallest
  ``--sync-every K`` (one all-reduce per K steps) that keeps
  ``E = K t_c / (K t_c + t_ar) >= 0.8``; weak scaling (B rows per node) too.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "scaling.json"

#: The benchmark networks (fastbp/bench/common.py CASES) plus the issue's
#: throughput target, the tabular network at batch 512.
EXTRA_CASES = {"tabular-20-256-256-1@512": ((20, 256, 256, 1), 512)}
NODES = (2, 4, 8, 16, 32, 64)
#: Modelled networks: beta is the line rate in bytes/s; alpha an assumed
#: per-hop latency (see docs/SCALING.md for the sources).
FABRICS = {
    "10 Gb/s": {"beta": 1.25e9, "alpha": 10e-6, "kind": "TCP over 10 GbE"},
    "100 Gb/s": {"beta": 1.25e10, "alpha": 1.5e-6, "kind": "RDMA (InfiniBand/RoCE)"},
}
THREAD_VARS = (
    "OMP_NUM_THREADS",
    "NUMBA_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
)
LR = 1e-3
SEED = 0


def nodes_header(first: str, rule: str) -> list[str]:
    """The two header lines of a markdown table whose columns are first's,
    then one per node count of NODES (rule: first's alignment row)."""
    return [
        "| " + first + " | " + " | ".join(f"N={n}" for n in NODES) + " |",
        rule + "---:|" * len(NODES),
    ]


def cases() -> dict:
    from fastbp.bench.common import CASES

    return {**CASES, **EXTRA_CASES}


def n_params(sizes) -> int:
    return sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=True))


def rows_per_node(batch: int, nodes: int) -> int:
    """Rows of the largest shard when ``batch`` rows are split over ``nodes``."""
    return -(-batch // nodes)


# --------------------------------------------------------------------------
# Measurement (under mpiexec)
# --------------------------------------------------------------------------


def _numba_allreduce_loops():
    """{dtype name: loop(send, recv, n)}: n all-reduces (SUM) from inside an
    njit function, as fastbp's distributed kernel makes them
    (fastbp/kernels/distributed.py): separate send and receive arrays;
    float64 as MPI_DOUBLE; float32 as complex64 pairs (numba-mpi has no
    float32 type: its table maps ``np.dtype("float")``, which is float64), so
    float32 arrays need an even length."""
    import numba
    import numba_mpi

    @numba.njit
    def loop64(send, recv, n):
        status = 0
        for _ in range(n):
            status |= numba_mpi.allreduce(send, recv, numba_mpi.Operator.SUM)
        return status

    @numba.njit
    def loop32(send, recv, n):
        pairs_send = send.view(np.complex64)
        pairs_recv = recv.view(np.complex64)
        status = 0
        for _ in range(n):
            status |= numba_mpi.allreduce(
                pairs_send, pairs_recv, numba_mpi.Operator.SUM
            )
        return status

    return {"float32": loop32, "float64": loop64}


def _buffers(length: int, dtype):
    """Send (all ones) and receive arrays; float32 rounded up to an even
    length, as fastbp's kernel does."""
    if np.dtype(dtype) == np.float32:
        length += length % 2
    send = np.ones(length, dtype)
    return send, np.empty_like(send)


def _elapsed(fn, n: int) -> float:
    start = time.perf_counter()
    fn(n)
    return time.perf_counter() - start


def per_call(fn, comm, budget: float, rounds: int, cap: int = 10_000_000) -> dict:
    """Median seconds per call of ``fn(n)`` (n calls), all ranks in step.

    Every rank runs the same counts: a count is chosen from the slowest
    rank's time, so a collective in ``fn`` never waits on a rank that is still
    calibrating. Each round starts at a barrier and keeps the slowest rank's
    time.
    """
    from mpi4py import MPI

    fn(1)  # compile or warm
    n = 1
    while True:
        elapsed = comm.allreduce(_elapsed(fn, n), op=MPI.MAX)
        if elapsed >= budget / 4 or n >= cap:
            break
        n *= 8 if elapsed < budget / 64 else 2
    n = max(1, min(cap, int(n * budget / max(elapsed, 1e-9))))
    samples = []
    for _ in range(rounds):
        comm.Barrier()
        samples.append(comm.allreduce(_elapsed(fn, n), op=MPI.MAX) / n)
    return {
        "seconds": statistics.median(samples),
        "min_seconds": min(samples),
        "calls_per_round": n,
    }


def measure_allreduce(comm, lengths, budget, rounds, echo) -> dict:
    """All-reduce (SUM) time per call of float32 and float64 arrays of each
    length: numba_mpi from inside njit (fastbp's way) and mpi4py's
    comm.Allreduce (float32 as MPI_FLOAT) for comparison."""
    from mpi4py import MPI

    loops = _numba_allreduce_loops()
    out: dict = {"numba_mpi": {}, "mpi4py": {}}
    for dtype in (np.float32, np.float64):
        name = np.dtype(dtype).name
        loop = loops[name]
        for impl in ("numba_mpi", "mpi4py"):
            out[impl][name] = []
        for length in lengths:
            send, recv = _buffers(length, dtype)
            fig = per_call(
                lambda n, s=send, r=recv, f=loop: f(s, r, n), comm, budget, rounds
            )
            if not np.all(recv == comm.Get_size()):
                raise RuntimeError(f"numba_mpi all-reduce of {name} gave wrong sums")

            def py_loop(n, s=send, r=recv):
                for _ in range(n):
                    comm.Allreduce(s, r, op=MPI.SUM)

            py = per_call(py_loop, comm, budget, rounds)
            if not np.all(recv == comm.Get_size()):
                raise RuntimeError(f"mpi4py all-reduce of {name} gave wrong sums")
            for impl, f in (("numba_mpi", fig), ("mpi4py", py)):
                out[impl][name].append(
                    {"elements": send.size, "bytes": send.nbytes, **f}
                )
            echo(
                f"  all-reduce {name:7s} {send.size:>9,} elements: numba_mpi "
                f"{fig['seconds'] * 1e6:10.2f} us, "
                f"mpi4py {py['seconds'] * 1e6:10.2f} us"
            )
    return out


def measure_networks_allreduce(comm, budget, rounds, echo) -> dict:
    """The all-reduce of each network's gradient as fastbp's kernel sends it:
    P + 2 float32 (the loss and the row weight ride along), rounded up to
    even."""
    loop = _numba_allreduce_loops()["float32"]
    out = {}
    for name, (sizes, _) in cases().items():
        send, recv = _buffers(n_params(sizes) + 2, np.float32)
        out[name] = per_call(
            lambda n, s=send, r=recv: loop(s, r, n), comm, budget, rounds
        )
        out[name]["elements"] = send.size
        echo(
            f"  all-reduce {name}: {send.size:,} float32: "
            f"{out[name]['seconds'] * 1e6:.2f} us"
        )
    return out


def fused_step(sizes, rows: int):
    """``step(n)``: n fused SGD steps on a fixed batch of ``rows`` rows."""
    from fastbp.bench.engines import FastbpFusedEngine

    engine = FastbpFusedEngine(sizes, rows, LR, SEED)
    engine.warmup()
    return engine.step


def measure_compute(comm, row_counts, budget, rounds, echo) -> dict:
    """Seconds per fused step of each network at each row count, all ranks
    running at once (1 thread each)."""
    out = {}
    for name, (sizes, batch) in cases().items():
        out[name] = {}
        for rows in row_counts(batch):
            fig = per_call(fused_step(sizes, rows), comm, budget, rounds)
            out[name][str(rows)] = fig
            echo(f"  compute {name} rows={rows}: {fig['seconds'] * 1e6:.2f} us/step")
    return out


def distributed_train_available() -> bool:
    import fastbp

    return "comm" in inspect.signature(fastbp.train).parameters


def measure_end_to_end(comm, budget, rounds, echo, sync_every=(1, 8)) -> dict:
    """Samples/s of ``fastbp.train(..., comm=comm, sync_every=K)``: every rank
    passes the same data (16 global batches) and the global ``batch_size``;
    the trainer splits each batch over the ranks and all-reduces the
    gradients inside the fused kernel (K = 1), or averages the weights every
    K steps (local SGD). Median of ``rounds`` calls of about ``budget`` s."""
    from mpi4py import MPI

    import fastbp
    from fastbp.bench.common import init_params, make_batch

    local_sgd = "sync_every" in inspect.signature(fastbp.train).parameters
    out = {}
    for name, (sizes, batch) in cases().items():
        X, T = make_batch(sizes, 16 * batch, SEED)
        model = fastbp.mlp(list(sizes), "relu")
        params = init_params(sizes, SEED)
        start = np.concatenate([a.ravel() for p in params for a in p])
        out[name] = {}
        for k in sync_every if local_sgd else (1,):
            extra = {"sync_every": k} if local_sgd else {}

            def run(epochs, model=model, X=X, T=T, batch=batch, w=start, extra=extra):
                model.flat_data[...] = w
                optimizer = fastbp.SGD(model.parameters(), lr=LR)
                return fastbp.train(
                    model,
                    fastbp.MSELoss(),
                    optimizer,
                    X,
                    T,
                    epochs=epochs,
                    batch_size=batch,
                    shuffle=False,
                    threads=1,
                    comm=comm,
                    **extra,
                )

            run(1)  # compiles (and loads the caches)
            # As per_call: epochs multiplied in step on every rank until a
            # call takes a quarter of the budget (the first steps of a call
            # also absorb the ranks' skew on entering it), then scaled.
            epochs = 1
            while True:
                seconds = comm.allreduce(run(epochs).train_seconds, op=MPI.MAX)
                if seconds >= budget / 4 or epochs >= 1_000_000:
                    break
                epochs *= 8 if seconds < budget / 64 else 2
            epochs = max(1, int(epochs * budget / max(seconds, 1e-9)))
            results, rates = [], []
            for _ in range(rounds):
                comm.Barrier()
                r = run(epochs)
                results.append(r)
                rates.append(r.samples / comm.allreduce(r.train_seconds, op=MPI.MAX))
            middle = results[int(np.argsort(rates)[len(rates) // 2])]
            fig = out[name][str(k)] = {
                "samples_per_s": statistics.median(rates),
                "epochs": epochs,
                "steps": middle.steps,
                "processes": getattr(middle, "processes", None),
                "sync_every": getattr(middle, "sync_every", None),
                "allreduce_seconds": getattr(middle, "allreduce_seconds", None),
                "train_seconds": middle.train_seconds,
                "fused": middle.fused,
            }
            echo(
                f"  end to end {name} K={k}: {fig['samples_per_s']:,.0f} samples/s"
                f", all-reduce {fig['allreduce_seconds']} of "
                f"{middle.train_seconds:.3g} s"
            )
    return out


def phase(name, measure_once, comm, args, echo):
    """``measure_once()``, again (up to ``args.retries`` times, after waiting
    for an idle CPU) while other processes used more than
    ``args.max_other_load`` cores meanwhile; returns the figures of the
    quietest attempt and the cores other processes used during it."""
    best = None
    for attempt in range(args.retries + 1):
        with OtherLoad(comm) as watch:
            figures = measure_once()
        if best is None or watch.cores < best[1]:
            best = (figures, watch.cores)
        if watch.cores <= args.max_other_load or attempt == args.retries:
            break
        echo(f"{name}: other processes used {watch.cores:.2f} cores; again")
        wait_for_idle_all(comm, args.wait_idle, echo)
    return best


def machine() -> dict:
    cpu = platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    except (OSError, StopIteration):
        pass
    versions = {"python": platform.python_version()}
    for lib in ("fastbp", "numpy", "numba", "mpi4py", "numba_mpi"):
        try:
            versions[lib] = __import__(lib).__version__
        except (ImportError, AttributeError):
            versions[lib] = None
    try:
        from mpi4py import MPI

        versions["mpi"] = MPI.Get_library_version().splitlines()[0].strip()
    except ImportError:
        pass
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "platform": platform.platform(),
        "versions": versions,
        "commit": commit,
    }


def measure(args) -> None:
    from mpi4py import MPI

    from fastbp._threads import thread_limit

    comm = MPI.COMM_WORLD
    size, rank = comm.Get_size(), comm.Get_rank()

    def echo(text):
        if rank == 0:
            print(text, flush=True)

    lengths = [4**k for k in range(12) if 4**k <= args.max_elements]
    run: dict = {
        "processes": size,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "argv": sys.argv,
        "threads_env": {v: os.environ.get(v) for v in THREAD_VARS},
        "budget": args.budget,
        "rounds": args.rounds,
        "commit": machine()["commit"] if rank == 0 else None,
        "load_average_before": os.getloadavg(),
        # Every rank sleeps through the sample: none spins in MPI meanwhile.
        "cpu_idle_before": cpu_idle(1.0),
    }
    echo(f"{size} process(es), 1 thread each; budget {args.budget} s x {args.rounds}")
    started = time.perf_counter()
    other = run["other_load_cores"] = {}
    with thread_limit(1):
        run["end_to_end"] = None
        if args.allreduce_only:
            pass
        elif distributed_train_available():
            run["end_to_end"], other["end_to_end"] = phase(
                "end to end",
                lambda: measure_end_to_end(
                    comm, args.e2e_budget, 3, echo, (1,) if size == 1 else (1, 8)
                ),
                comm,
                args,
                echo,
            )
        else:
            echo(
                "end to end: skipped: fastbp.train has no comm= parameter in this "
                "checkout (the data-parallel trainer is not there yet)"
            )

        def allreduce():
            return (
                measure_allreduce(comm, lengths, args.budget, args.rounds, echo),
                measure_networks_allreduce(comm, args.budget, args.rounds, echo),
            )

        figures, other["allreduce"] = phase("all-reduce", allreduce, comm, args, echo)
        run["allreduce"], run["allreduce_networks"] = figures
        if not args.allreduce_only:
            if size == 1:
                # The model's per-node compute: ceil(B/N) rows for N = 1..64.
                def row_counts(batch):
                    return sorted({rows_per_node(batch, n) for n in (1, *NODES)})
            else:

                def row_counts(batch):
                    return [rows_per_node(batch, size)]

            run["compute"], other["compute"] = phase(
                "compute",
                lambda: measure_compute(
                    comm, row_counts, args.budget, args.rounds, echo
                ),
                comm,
                args,
                echo,
            )
    echo(
        "other processes used "
        + ", ".join(f"{v:.2f} cores during {k}" for k, v in other.items())
        + f" (of {os.cpu_count()})"
    )
    run["seconds"] = time.perf_counter() - started
    run["load_average_after"] = os.getloadavg()
    run["cpu_idle_after"] = cpu_idle(1.0)
    if rank == 0:
        data = load(args.out)
        data["machine"] = machine()
        data.setdefault("runs", {})[str(size)] = run
        save(data, args.out)
        print(f"saved {args.out} ({run['seconds']:.0f} s)")


# --------------------------------------------------------------------------
# Analysis (no MPI needed)
# --------------------------------------------------------------------------


def ring_seconds(nbytes, nodes, alpha, beta):
    """Ring all-reduce: reduce-scatter then all-gather, 2(N-1) steps each
    sending nbytes/N: ``2(N-1)/N * nbytes/beta + 2(N-1)*alpha``."""
    return 2 * (nodes - 1) / nodes * nbytes / beta + 2 * (nodes - 1) * alpha


def halving_seconds(nbytes, nodes, alpha, beta):
    """Rabenseifner's all-reduce (recursive-halving reduce-scatter, then
    recursive-doubling all-gather; what MPICH runs for long messages on a
    power-of-two count): ``2 log2(N) alpha + 2(N-1)/N * nbytes/beta``."""
    return 2 * math.log2(nodes) * alpha + 2 * (nodes - 1) / nodes * nbytes / beta


def fit_alpha_beta(points) -> dict:
    """alpha, beta minimising the relative error of ``ring_seconds`` over
    ``points`` [(nodes, bytes, seconds)], with alpha, 1/beta >= 0."""
    from scipy.optimize import nnls

    a = np.array([[2 * (n - 1) / n * b, 2 * (n - 1)] for n, b, _ in points], float)
    t = np.array([s for _, _, s in points], float)
    coef, _ = nnls(a / t[:, None], np.ones_like(t))
    inv_beta, alpha = coef
    rel = a @ coef / t - 1
    return {
        "alpha": float(alpha),
        "beta": float(1 / inv_beta) if inv_beta > 0 else math.inf,
        "points": len(points),
        "median_abs_rel_error": float(np.median(np.abs(rel))),
        "max_abs_rel_error": float(np.max(np.abs(rel))),
    }


def _points(runs, processes, impl="numba_mpi", dtype="float32"):
    pts = []
    for p in processes:
        run = runs.get(str(p))
        if run is None:
            continue
        for row in run["allreduce"][impl][dtype]:
            pts.append((p, row["bytes"], row["seconds"]))
    return pts


def sync_every(t_compute, t_allreduce, target) -> int:
    """Smallest K with K t_c / (K t_c + t_ar) >= target."""
    k = target / (1 - target) * t_allreduce / t_compute
    return max(1, math.ceil(k - 1e-9))


def analyse(data, args) -> dict:
    runs = data.get("runs", {})
    fit_procs = [int(p) for p in args.fit_processes.split(",")]
    fits = {}
    for dtype in ("float32", "float64"):
        pts = _points(runs, fit_procs, dtype=dtype)
        if pts:
            fits[dtype] = fit_alpha_beta(pts)
    for p in sorted(runs, key=int):
        if int(p) >= 2:
            fits[f"float32 at {p} processes"] = fit_alpha_beta(_points(runs, [int(p)]))
    fabrics = {
        "10 Gb/s": {**FABRICS["10 Gb/s"], "alpha": args.alpha_10g},
        "100 Gb/s": {**FABRICS["100 Gb/s"], "alpha": args.alpha_100g},
    }
    out = {"fits": fits, "fit_processes": fit_procs, "fabrics": fabrics}

    one, two = runs.get("1", {}), runs.get("2", {})
    measured = []
    if one.get("compute") and two.get("compute"):
        for name, (sizes, batch) in cases().items():
            if name not in one["compute"] or name not in two["compute"]:
                continue
            P = n_params(sizes)
            t1 = one["compute"][name][str(batch)]["seconds"]
            half = rows_per_node(batch, 2)
            t2c = two["compute"][name][str(half)]["seconds"]
            tar = two["allreduce_networks"][name]["seconds"]
            row = {
                "case": name,
                "params": P,
                "batch": batch,
                "step_1": t1,
                "compute_2": t2c,
                "allreduce_2": tar,
                "step_2": t2c + tar,
                "speedup": t1 / (t2c + tar),
                "efficiency": t1 / (t2c + tar) / 2,
            }
            if "float32" in fits:
                f = fits["float32"]
                nbytes = 4 * (P + 2 + P % 2)
                row["allreduce_2_model"] = ring_seconds(
                    nbytes, 2, f["alpha"], f["beta"]
                )
            measured.append(row)
    out["measured"] = measured

    e2e = []
    e1, e2 = one.get("end_to_end"), two.get("end_to_end")
    for name in cases():
        if not (e1 and e2 and name in e1 and name in e2):
            continue
        base = e1[name]["1"]["samples_per_s"]
        row = {"case": name, "samples_per_s_1": base, "two": {}}
        for k, fig in e2[name].items():
            share = None
            if fig["allreduce_seconds"] is not None and k == "1":
                share = fig["allreduce_seconds"] / fig["train_seconds"]
            row["two"][k] = {
                "samples_per_s": fig["samples_per_s"],
                "speedup": fig["samples_per_s"] / base,
                "allreduce_share": share,
                "sync_every": fig.get("sync_every"),
            }
        e2e.append(row)
    out["end_to_end"] = e2e

    model = []
    if one.get("compute"):
        for name, (sizes, batch) in cases().items():
            compute = one["compute"].get(name)
            if not compute:
                continue
            P = n_params(sizes)
            t1 = compute[str(batch)]["seconds"]
            entry = {"case": name, "params": P, "batch": batch, "step_1": t1}
            for label, fab in fabrics.items():
                cells = []
                for n in NODES:
                    if n > batch:
                        cells.append(None)
                        continue
                    tc = compute[str(rows_per_node(batch, n))]["seconds"]
                    tar = ring_seconds(4 * P, n, fab["alpha"], fab["beta"])
                    k = sync_every(tc, tar, args.efficiency)
                    thr = halving_seconds(4 * P, n, fab["alpha"], fab["beta"])
                    cells.append(
                        {
                            "nodes": n,
                            "compute": tc,
                            "allreduce": tar,
                            "efficiency": tc / (tc + tar),
                            "speedup": t1 / (tc + tar),
                            "sync_every": k,
                            "speedup_k": t1 / (tc + tar / k),
                            "allreduce_halving": thr,
                            "efficiency_halving": tc / (tc + thr),
                            "sync_every_halving": sync_every(tc, thr, args.efficiency),
                        }
                    )
                entry[label] = cells
                # Weak scaling: B rows per node, global batch N B.
                weak = []
                for n in NODES:
                    tar = ring_seconds(4 * P, n, fab["alpha"], fab["beta"])
                    weak.append(
                        {
                            "nodes": n,
                            "efficiency": t1 / (t1 + tar),
                            "sync_every": sync_every(t1, tar, args.efficiency),
                        }
                    )
                entry[f"{label} weak"] = weak
            model.append(entry)
    out["model"] = model
    out["efficiency_target"] = args.efficiency
    return out


def _us(seconds) -> str:
    if seconds is None:
        return "—"
    us = seconds * 1e6
    return f"{us:,.0f}" if us >= 100 else f"{us:.3g}"


def _idle(run) -> str:
    parts = [
        f"other processes {v:.2f} cores during {k.replace('_', ' ')}"
        for k, v in run.get("other_load_cores", {}).items()
    ]
    for when in ("before", "after"):
        idle = run.get(f"cpu_idle_{when}")
        load = run.get(f"load_average_{when}")
        if idle is not None:
            parts.append(f"CPU {100 * idle:.0f} % idle {when}")
        if load is not None:
            parts.append(f"load {load[0]:.2f} {when}")
    return ", ".join(parts)


def _calibration_table(runs, fits) -> list[str]:
    procs = [p for p in ("1", "2", "3") if p in runs]
    head = ["elements", "bytes (f32)"]
    head += [f"f32 numba_mpi, {p} proc" for p in procs]
    head += ["f32 mpi4py, 2 proc", "f64 numba_mpi, 2 proc", "f64 mpi4py, 2 proc"]
    if "float32" in fits:
        head.append("f32 fit, 2 proc")
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "---:|" * len(head),
    ]
    base = runs[procs[0]]["allreduce"]["numba_mpi"]["float32"]
    for i, row in enumerate(base):
        cells = [f"{row['elements']:,}", f"{row['bytes']:,}"]
        for p in procs:
            cells.append(
                _us(runs[p]["allreduce"]["numba_mpi"]["float32"][i]["seconds"])
            )
        two = runs.get("2", {}).get("allreduce")
        for impl, dt in (
            ("mpi4py", "float32"),
            ("numba_mpi", "float64"),
            ("mpi4py", "float64"),
        ):
            cells.append(_us(two[impl][dt][i]["seconds"]) if two else "—")
        if "float32" in fits:
            f = fits["float32"]
            cells.append(_us(ring_seconds(row["bytes"], 2, f["alpha"], f["beta"])))
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(data, result) -> str:
    runs = data.get("runs", {})
    fits = result["fits"]
    lines = []
    if runs:
        m = data.get("machine", {})
        lines += [
            f"Machine: {m.get('cpu')}, {m.get('cores')} cores; {m.get('platform')}; "
            f"{m.get('versions', {}).get('mpi')}; fastbp {m.get('commit')}.",
            "Runs: "
            + "; ".join(
                f"{p} process(es) on {runs[p]['date']}, fastbp "
                f"{runs[p].get('commit')} ({_idle(runs[p])})"
                for p in sorted(runs, key=int)
            )
            + ".",
            "",
            "All-reduce (SUM), µs per call, median of the slowest rank:",
            "",
            *_calibration_table(runs, fits),
            "",
        ]
    for label, f in fits.items():
        lines.append(
            f"- fit {label}: alpha = {f['alpha'] * 1e6:.3g} µs, beta = "
            f"{f['beta'] / 1e9:.3g} GB/s over {f['points']} points (median |rel. "
            f"error| {100 * f['median_abs_rel_error']:.0f} %, max "
            f"{100 * f['max_abs_rel_error']:.0f} %)"
        )
    if result["measured"]:
        head = (
            "| network | P | batch | 1-proc step µs | 2-proc compute µs (B/2 rows) "
            "| all-reduce µs (fastbp's message, P + 2 floats) | fitted model µs "
            "| predicted 2-proc step µs | speedup | efficiency |"
        )
        lines += ["", "Measured on this machine, 1 thread per process:", "", head]
        lines.append("|---|" + "---:|" * (head.count("|") - 2))
        for r in result["measured"]:
            cells = [
                r["case"],
                f"{r['params']:,}",
                str(r["batch"]),
                _us(r["step_1"]),
                _us(r["compute_2"]),
                _us(r["allreduce_2"]),
                _us(r.get("allreduce_2_model")),
                _us(r["step_2"]),
                f"{r['speedup']:.2f}",
                f"{100 * r['efficiency']:.0f} %",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if result["end_to_end"]:
        ks = sorted(result["end_to_end"][0]["two"], key=int)
        head = "| network | 1 proc samples/s | " + " | ".join(
            f"2 proc, sync_every={k}: samples/s (speedup)" for k in ks
        )
        head += " | all-reduce share of 2-proc train time (sync_every=1) |"
        lines += [
            "",
            "End to end, fastbp.train(comm=MPI.COMM_WORLD), 16 global batches an "
            "epoch, 1 thread per process:",
            "",
            head,
            "|---|" + "---:|" * (head.count("|") - 2),
        ]
        for r in result["end_to_end"]:
            cells = [r["case"], f"{r['samples_per_s_1']:,.0f}"]
            for k in ks:
                f = r["two"][k]
                cells.append(f"{f['samples_per_s']:,.0f} ({f['speedup']:.2f}×)")
            share = r["two"]["1"]["allreduce_share"]
            cells.append("—" if share is None else f"{100 * share:.0f} %")
            lines.append("| " + " | ".join(cells) + " |")
    elif result["measured"]:
        lines += [
            "",
            "End to end: not measured (fastbp.train has no comm= parameter in "
            "this checkout, or no run at 1 and 2 processes measured it).",
        ]
    compute = runs.get("1", {}).get("compute")
    if compute:
        lines += [
            "",
            "Per-node compute of the model: µs per fused step at ceil(B/N) rows, "
            "1 process, 1 thread:",
            "",
            *nodes_header("network | batch | N=1", "|---|---:|---:|"),
        ]
        for name, (_, batch) in cases().items():
            if name not in compute:
                continue
            cells = [name, str(batch)]
            for n in (1, *NODES):
                fig = compute[name].get(str(rows_per_node(batch, n)))
                cells.append("—" if n > batch or fig is None else _us(fig["seconds"]))
            lines.append("| " + " | ".join(cells) + " |")
    if result["model"]:
        for label, fab in result["fabrics"].items():
            lines += [
                "",
                f"Model, {label} ({fab['kind']}: beta = {fab['beta']:.3g} B/s, alpha = "
                f"{fab['alpha'] * 1e6:.3g} µs), global batch fixed: predicted E(N) "
                f"= t_c(B/N) / (t_c(B/N) + t_ar(N)); in brackets the smallest "
                f"--sync-every K for E ≥ {100 * result['efficiency_target']:.0f} %:",
                "",
                *nodes_header("network | P | batch", "|---|---:|---:|"),
            ]
            for entry in result["model"]:
                cells = [entry["case"], f"{entry['params']:,}", str(entry["batch"])]
                for c in entry[label]:
                    if c is None:
                        cells.append("— (N > B)")
                    else:
                        cells.append(
                            f"{100 * c['efficiency']:.0f} % (K={c['sync_every']})"
                        )
                lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "Sensitivity to the algorithm: smallest K for E ≥ "
            f"{100 * result['efficiency_target']:.0f} % with the ring's 2(N-1) "
            "latency terms / with Rabenseifner's 2 log2(N) (same bandwidth term):",
            "",
            *nodes_header("network | fabric", "|---|---|"),
        ]
        for entry in result["model"]:
            for label in result["fabrics"]:
                cells = [entry["case"], label]
                for c in entry[label]:
                    cells.append(
                        "—"
                        if c is None
                        else f"{c['sync_every']} / {c['sync_every_halving']}"
                    )
                lines.append("| " + " | ".join(cells) + " |")
        lines += [
            "",
            "Weak scaling for comparison (B rows per node, global batch N·B, as "
            "published DDP/Horovod figures keep the per-GPU batch): predicted "
            "t_c(B) / (t_c(B) + t_ar(N)), in brackets the smallest K for "
            f"{100 * result['efficiency_target']:.0f} %:",
            "",
            *nodes_header("network | fabric", "|---|---|"),
        ]
        for entry in result["model"]:
            for label in result["fabrics"]:
                cells = [entry["case"], label]
                for c in entry[f"{label} weak"]:
                    cells.append(f"{100 * c['efficiency']:.0f} % (K={c['sync_every']})")
                lines.append("| " + " | ".join(cells) + " |")
        label = "100 Gb/s"
        lines += [
            "",
            f"Model, {label}: predicted speedup over one node, t_c(B) / (t_c(B/N) + "
            "t_ar(N)/K), with K = 1 and with the K above:",
            "",
            *nodes_header("network", "|---|"),
        ]
        for entry in result["model"]:
            cells = [entry["case"]]
            for c in entry[label]:
                cells.append(
                    "—" if c is None else f"{c['speedup']:.2g} / {c['speedup_k']:.2g}"
                )
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --------------------------------------------------------------------------
# Files and command line
# --------------------------------------------------------------------------


def load(path) -> dict:
    path = Path(path)
    if path.exists():
        with open(path) as f:
            return json.load(f)
    return {}


def save(data, path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=float)
        f.write("\n")
    os.replace(tmp, path)


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (/proc/stat:
    all but idle and iowait); NaN where it cannot be read."""
    try:
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return math.nan
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class OtherLoad:
    """``with OtherLoad(comm) as load:`` ... then ``load.cores``: the cores'
    worth of CPU that processes other than these ranks used meanwhile (the
    machine's busy time less the ranks' own CPU time, over the wall time), to
    tell a quiet measurement from one shared with other work."""

    def __init__(self, comm):
        self.comm = comm
        self.cores = math.nan

    def __enter__(self):
        self.busy = _busy_seconds()
        self.own = time.process_time()
        self.start = time.perf_counter()
        return self

    def __exit__(self, kind, *_):
        if kind is None:  # a collective only when every rank got here
            own = self.comm.allreduce(time.process_time() - self.own)
            busy = _busy_seconds() - self.busy
            wall = time.perf_counter() - self.start
            self.cores = self.comm.bcast(max(0.0, (busy - own) / wall), root=0)


def cpu_idle(seconds: float = 2.0) -> float:
    """Fraction of the machine's CPU time idle over the next ``seconds``
    (from /proc/stat; 1.0 where it cannot be read)."""

    def sample():
        with open("/proc/stat") as f:
            fields = [int(x) for x in f.readline().split()[1:]]
        return fields[3] + fields[4], sum(fields)  # idle + iowait, total

    try:
        idle0, total0 = sample()
        time.sleep(seconds)
        idle1, total1 = sample()
    except (OSError, ValueError, IndexError):
        return 1.0
    return (idle1 - idle0) / max(total1 - total0, 1)


def wait_for_idle(limit: float, threshold: float = 0.9) -> float:
    """Wait up to ``limit`` seconds for the CPU to be ``threshold`` idle (a
    shared machine); returns the last idle fraction seen."""
    deadline = time.monotonic() + limit
    while True:
        idle = cpu_idle()
        if idle >= threshold or time.monotonic() >= deadline:
            return idle
        print(f"  waiting: CPU {100 * idle:.0f} % idle", flush=True)
        time.sleep(5)


def wait_for_idle_all(comm, limit: float, echo) -> None:
    """wait_for_idle on every rank together: all sleep while rank 0's sample
    decides, so no rank spins in MPI meanwhile."""
    deadline = time.monotonic() + limit
    while True:
        idle = comm.bcast(cpu_idle(), root=0)
        if idle >= 0.9 or time.monotonic() >= deadline:
            return
        echo(f"  waiting: CPU {100 * idle:.0f} % idle")
        time.sleep(5)


def launch(args) -> None:
    """Run the measured part at each process count, then the model."""
    bindir = os.path.dirname(sys.executable)
    mpiexec = shutil.which("mpiexec", path=bindir + os.pathsep + os.environ["PATH"])
    if mpiexec is None:
        sys.exit("mpiexec not found: pip install 'fastbp[mpi]' (or mpich)")
    env = {**os.environ, **dict.fromkeys(THREAD_VARS, "1")}
    common = [
        "--out",
        str(args.out),
        "--budget",
        str(args.budget),
        "--rounds",
        str(args.rounds),
        "--max-elements",
        str(args.max_elements),
        "--e2e-budget",
        str(args.e2e_budget),
        "--wait-idle",
        str(args.wait_idle),
        "--retries",
        str(args.retries),
        "--max-other-load",
        str(args.max_other_load),
    ]
    for p in (int(x) for x in args.launch.split(",")):
        extra = ["--no-report", *(["--allreduce-only"] if p > 2 else [])]
        cmd = [mpiexec, "-n", str(p), sys.executable, __file__, *common, *extra]
        if args.wait_idle:
            idle = wait_for_idle(args.wait_idle)
            print(f"CPU {100 * idle:.0f} % idle before this run", flush=True)
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.splitlines()[2:]),
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="JSON file")
    parser.add_argument("--budget", type=float, default=0.05, help="s per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument(
        "--e2e-budget", type=float, default=0.3, help="s per fastbp.train call"
    )
    parser.add_argument("--max-elements", type=int, default=4**11)
    parser.add_argument(
        "--allreduce-only", action="store_true", help="skip compute and end to end"
    )
    parser.add_argument(
        "--model-only", action="store_true", help="no measuring: fit and model the JSON"
    )
    parser.add_argument(
        "--launch",
        metavar="P,P,...",
        nargs="?",
        const="1,2,3",
        help="run mpiexec -n P for each P (default 1,2,3), then the model",
    )
    parser.add_argument(
        "--fit-processes",
        default="2",
        help="process counts whose figures the alpha-beta fit uses (default 2)",
    )
    parser.add_argument("--alpha-10g", type=float, default=FABRICS["10 Gb/s"]["alpha"])
    parser.add_argument(
        "--alpha-100g", type=float, default=FABRICS["100 Gb/s"]["alpha"]
    )
    parser.add_argument("--efficiency", type=float, default=0.8)
    parser.add_argument(
        "--no-report", action="store_true", help="measure and save, print no tables"
    )
    parser.add_argument(
        "--wait-idle",
        type=float,
        default=0.0,
        metavar="S",
        help="before each run (with --launch) and each repeated phase, wait up "
        "to S seconds for the CPU to be 90 %% idle (a shared machine)",
    )
    parser.add_argument(
        "--max-other-load",
        type=float,
        default=0.2,
        metavar="CORES",
        help="repeat a phase during which other processes used more CPU",
    )
    parser.add_argument(
        "--retries", type=int, default=0, help="repeats of a phase at most"
    )
    args = parser.parse_args()

    if args.launch:
        launch(args)
    elif not args.model_only:
        measure(args)
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() != 0 or args.no_report:
            return
    data = load(args.out)
    if not data.get("runs"):
        sys.exit(f"{args.out}: no measurements; run it under mpiexec first")
    result = analyse(data, args)
    if args.model_only or args.launch:
        data["analysis"] = result
        save(data, args.out)
    print()
    print(markdown(data, result))


if __name__ == "__main__":
    main()
