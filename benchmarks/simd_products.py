"""A dense layer's three products: fastbp.kernels.simd against OpenBLAS
(NumPy's, through fastbp.kernels.blas), inside compiled loops.

    python benchmarks/simd_products.py [--rows 64] [--shapes 64x64,32x64]
        [--dtype float32|float64] [--rounds 7]

For each (in K, out N) and the batch's row count m: Y = X @ W + b
(simd.forward / BLAS nn), dW = X.T @ dZ with db (simd.weight_grad / BLAS tn,
db not included for BLAS), dX = dZ @ W.T (simd.transpose + simd.input_grad
/ BLAS nt), each repeated in a compiled loop so that the data stays in L1
and no Python runs between calls. Rounds are interleaved (each round times
every variant once, about 1 ms each, short enough to fall between the
preemptions of a shared machine); the table gives medians in µs and
GFLOP/s (2 m K N per product). Pin the process (``taskset -c 0``): every
product here runs on one thread, and OpenBLAS does not thread products
this small.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from numba import njit

from fastbp.kernels import simd
from fastbp.kernels.blas import gemm_nn, gemm_nt, gemm_tn, register_symbols


def _compiled(K: int, N: int):
    """The six timed loops for literal K and N."""
    scope = {"simd": simd, "njit": njit, "gemm_nn": gemm_nn, "gemm_tn": gemm_tn}
    scope["gemm_nt"] = gemm_nt
    exec(
        f"""
@njit
def simd_forward(x, th, y, dz, g, wt, dx, m, reps):
    for _ in range(reps):
        simd.forward(x, 0, th, 0, {K * N}, y, 0, m, {K}, {N}, 0)

@njit
def blas_forward(x, th, y, dz, g, wt, dx, m, reps):
    for _ in range(reps):
        gemm_nn(x, 0, th, 0, y, 0, m, {K}, {N})

@njit
def simd_weight_grad(x, th, y, dz, g, wt, dx, m, reps):
    for _ in range(reps):
        simd.weight_grad(x, 0, dz, 0, g, 0, {K * N}, m, {K}, {N})

@njit
def blas_weight_grad(x, th, y, dz, g, wt, dx, m, reps):
    for _ in range(reps):
        gemm_tn(x, 0, dz, 0, g, 0, m, {K}, {N})

@njit
def simd_input_grad(x, th, y, dz, g, wt, dx, m, reps):
    for _ in range(reps):
        simd.transpose(th, 0, wt, {K}, {N})
        simd.input_grad(dz, 0, wt, 0, dx, 0, x, 0, m, {K}, {N}, 0)

@njit
def blas_input_grad(x, th, y, dz, g, wt, dx, m, reps):
    for _ in range(reps):
        gemm_nt(dz, 0, th, 0, dx, 0, m, {K}, {N})
""",
        scope,
    )
    return scope


def measure(m: int, K: int, N: int, dtype, rounds: int) -> list[dict]:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(m * K).astype(dtype)
    th = rng.standard_normal(K * N + N).astype(dtype)
    y, dz = np.empty(m * N, dtype), rng.standard_normal(m * N).astype(dtype)
    g, wt, dx = (
        np.empty(K * N + N, dtype),
        np.empty(K * N, dtype),
        np.empty(m * K, dtype),
    )
    args = (x, th, y, dz, g, wt, dx, m)
    loops = _compiled(K, N)
    names = ["forward", "weight_grad", "input_grad"]
    variants = [f"{kind}_{name}" for name in names for kind in ("simd", "blas")]
    for v in variants:
        loops[v](*args, 1)  # compile
    flops = 2 * m * K * N
    # About 1 ms per sample at 100 GFLOP/s: short enough to fit between the
    # scheduler's preemptions on a shared machine, many of them per variant.
    reps = max(1, int(1e-3 / (flops / 100e9)))
    times: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for v in variants:
            start = time.perf_counter()
            loops[v](*args, reps)
            times[v].append((time.perf_counter() - start) / reps)
    rows = []
    for name in names:
        simd_s = statistics.median(times[f"simd_{name}"])
        blas_s = statistics.median(times[f"blas_{name}"])
        rows.append(
            {
                "product": name,
                "shape": f"{m}x{K}->{N}",
                "simd_us": 1e6 * simd_s,
                "blas_us": 1e6 * blas_s,
                "simd_gflops": flops / simd_s / 1e9,
                "blas_gflops": flops / blas_s / 1e9,
            }
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--shapes", default="64x64,32x64,24x8,2x8,256x256")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--rounds", type=int, default=51)
    options = parser.parse_args()
    register_symbols()
    dtype = np.dtype(options.dtype)
    print(
        f"{options.dtype}, m = {options.rows} rows, vector registers of "
        f"{simd.vector_bytes()} bytes; medians of {options.rounds} rounds\n"
    )
    print("| product | m x K -> N | simd µs | BLAS µs | simd GFLOP/s | BLAS GFLOP/s |")
    print("|---|---|---:|---:|---:|---:|")
    for shape in options.shapes.split(","):
        K, N = (int(v) for v in shape.split("x"))
        for r in measure(options.rows, K, N, dtype, options.rounds):
            print(
                f"| {r['product']} | {r['shape']} | {r['simd_us']:.3g} | "
                f"{r['blas_us']:.3g} | {r['simd_gflops']:.1f} | "
                f"{r['blas_gflops']:.1f} |"
            )


if __name__ == "__main__":
    main()
