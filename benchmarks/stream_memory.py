"""Peak memory and throughput of streamed training (fastbp.stream) by file size.

    python benchmarks/stream_memory.py [--rows 1000000,2000000,20000000]
        [--features 20] [--hidden 64] [--batch 256] [--dir /tmp]

For each row count, writes a Parquet file of float32 features and a linear
regression target (generated and written in pieces, so generation itself is
bounded), then in a fresh Python process per measurement scans it and trains
one epoch (Adam, MSE, a features-hidden-1 ReLU MLP, val_fraction 0.1, the
default shuffle buffer of fastbp.data.stream.DEFAULT_SHUFFLE_BUFFER rows), and
reports the child's peak resident set size (getrusage ru_maxrss) and samples/s.
On the first file it also trains in memory (the whole table read into arrays,
then fastbp.train) for the throughput comparison. Files are deleted after.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np


def write_parquet(path: str, n_rows: int, n_features: int, seed: int = 0) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    w = rng.normal(size=n_features).astype(np.float32)
    names = [f"x{j}" for j in range(n_features)]
    schema = pa.schema([(c, pa.float32()) for c in [*names, "y"]])
    piece = 1 << 18
    with pq.ParquetWriter(path, schema) as writer:
        for s in range(0, n_rows, piece):
            m = min(piece, n_rows - s)
            X = rng.normal(size=(m, n_features)).astype(np.float32)
            y = X @ w + np.float32(0.1) * rng.normal(size=m).astype(np.float32)
            columns = [X[:, j] for j in range(n_features)] + [y]
            table = pa.Table.from_arrays(columns, schema=schema)
            writer.write_table(table, row_group_size=1 << 17)


def child(mode: str, path: str, hidden: int, batch: int) -> None:
    """One measurement in this process; prints a JSON line."""
    import fastbp
    from fastbp.data.stream import Streamed, file_source, scan

    out = {"mode": mode}
    if mode == "stream":
        source = file_source(path)
        start = time.perf_counter()
        stats = scan(source, val_fraction=0.1, seed=0, name=path)
        out["scan_s"] = time.perf_counter() - start
        model = fastbp.mlp([stats.n_features, hidden, 1], rng=0)
        optimizer = fastbp.Adam(model.parameters(), lr=1e-3)
        start = time.perf_counter()
        result = fastbp.train(
            model, fastbp.MSELoss(), optimizer, Streamed(source, stats), epochs=1,
            batch_size=batch,
        )  # fmt: skip
        out["total_s"] = time.perf_counter() - start
    else:
        from fastbp.data.problem import Problem

        start = time.perf_counter()
        prepared = Problem.from_file(path).prepare(val_fraction=0.1, seed=0)
        out["read_s"] = time.perf_counter() - start
        model = fastbp.mlp([prepared.X_train.shape[1], hidden, 1], rng=0)
        optimizer = fastbp.Adam(model.parameters(), lr=1e-3)
        result = fastbp.train(
            model, fastbp.MSELoss(), optimizer, prepared.X_train, prepared.T_train,
            epochs=1, batch_size=batch, val=prepared.validation, metric="r2",
        )  # fmt: skip
    out.update(
        samples=result.samples,
        train_s=result.train_seconds,
        samples_per_s=result.samples_per_s,
        val_r2=result.val_metric[-1],
        peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    )
    print(json.dumps(out))


def measure(mode: str, path: str, args) -> dict:
    cmd = [sys.executable, __file__, "--child", mode, path]
    cmd += ["--hidden", str(args.hidden), "--batch", str(args.batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(done.stderr)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000,2000000,20000000")
    parser.add_argument("--features", type=int, default=20)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--dir", default=tempfile.gettempdir())
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.hidden, args.batch)
        return
    from fastbp.data.stream import DEFAULT_SHUFFLE_BUFFER

    rows = [int(r) for r in args.rows.split(",")]
    print(
        f"{args.features} float32 features, hidden {args.hidden}, Adam, batch "
        f"{args.batch}, 1 epoch, val_fraction 0.1, shuffle buffer "
        f"{DEFAULT_SHUFFLE_BUFFER} rows"
    )
    header = (
        f"{'mode':>9} {'rows':>11} {'file MB':>8} {'peak RSS MB':>12} "
        f"{'samples/s':>11} {'train s':>8} {'val r2':>7}"
    )
    print(header)
    print("-" * len(header))
    for i, n in enumerate(rows):
        path = os.path.join(args.dir, f"fastbp_stream_{n}.parquet")
        try:
            write_parquet(path, n, args.features)
            size = os.path.getsize(path) / 2**20
            modes = ["stream", "memory"] if i == 0 else ["stream"]
            for mode in modes:
                r = measure(mode, path, args)
                print(
                    f"{mode:>9} {n:>11,} {size:>8.0f} {r['peak_rss_mb']:>12.0f} "
                    f"{r['samples_per_s']:>11,.0f} {r['train_s']:>8.2f} "
                    f"{r['val_r2']:>7.3f}",
                    flush=True,
                )
        finally:
            if os.path.exists(path):
                os.remove(path)


if __name__ == "__main__":
    main()
