"""float64 against float32: the fused path's step time in both, side by side.

For each case of ``fastbp bench`` (same networks, batch, plain SGD, MSE, one
fixed batch), times the fused kernel in float32 and in float64, alternating
in rounds, and prints the medians and their ratio (float64 ÷ float32; the
target is at most 2.2). Run the whole process on one core for the 1-thread
figures::

    taskset -c 0 python benchmarks/precision.py --threads 1
    python benchmarks/precision.py --threads 2
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import fastbp
from fastbp._threads import thread_limit
from fastbp.bench.common import CASES, init_params, make_batch
from fastbp.training.runners import FusedRunner, fused_plan


def runner(sizes, batch, dtype):
    model = fastbp.mlp(list(sizes), "relu", dtype=dtype)
    params = init_params(sizes, 0)
    model.flat_data[...] = np.concatenate([a.ravel() for p in params for a in p])
    optimizer = fastbp.SGD(model.parameters(), lr=1e-3)
    X, T = make_batch(sizes, batch, 0)
    plan = fused_plan(model, fastbp.MSELoss(), optimizer)
    run = FusedRunner(plan, X.astype(dtype), T.astype(dtype), batch)
    run.warm_up()
    return lambda n: run(np.empty((n, 0), np.int64))


def seconds_per_step(step, budget):
    n = 1
    while True:
        start = time.perf_counter()
        step(n)
        elapsed = time.perf_counter() - start
        if elapsed > budget / 4:
            break
        n *= 2
    n = max(1, int(n * budget / elapsed))
    start = time.perf_counter()
    step(n)
    return (time.perf_counter() - start) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--budget", type=float, default=0.2)
    args = parser.parse_args()
    print(f"threads: {args.threads or 'library default'}; median of {args.rounds}")
    print(f"{'case':26}{'float32 us':>12}{'float64 us':>12}{'ratio':>8}")
    with thread_limit(args.threads):
        for name, (sizes, batch) in CASES.items():
            steps = [runner(sizes, batch, dt) for dt in (np.float32, np.float64)]
            times = [[], []]
            for _ in range(args.rounds):
                for step, out in zip(steps, times, strict=True):
                    out.append(seconds_per_step(step, args.budget))
            t32, t64 = (statistics.median(t) for t in times)
            print(f"{name:26}{t32 * 1e6:12.3f}{t64 * 1e6:12.3f}{t64 / t32:8.2f}")


if __name__ == "__main__":
    main()
