"""Show that the fused training path allocates nothing per step.

    python benchmarks/memory.py [--steps 1000000] [--chunk 10000]

Trains the XOR benchmark network (2-8-1, ReLU, MSE, SGD, batch 4) through the
fused kernel for --steps steps, --chunk steps per call, and prints the resident
set size after the first call and after the last, and the peak. With no
allocation per step (buffers are allocated once per call and freed after it),
the resident size stays flat however many steps run.
"""

import argparse
import resource

from fastbp.bench.engines import FastbpFusedEngine


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--chunk", type=int, default=10_000)
    args = parser.parse_args()
    engine = FastbpFusedEngine((2, 8, 1), 4, 1e-3, 0)
    engine.warmup()
    engine.step(args.chunk)
    first = rss_kib()
    done = args.chunk
    while done < args.steps:
        engine.step(args.chunk)
        done += args.chunk
    last = rss_kib()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"fused XOR steps: {done:,} in calls of {args.chunk:,}")
    print(
        f"RSS after the first call: {first:,} KiB; after the last: {last:,} KiB "
        f"(change {last - first:+,} KiB); peak RSS {peak:,} KiB"
    )


if __name__ == "__main__":
    main()
