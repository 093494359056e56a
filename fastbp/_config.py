"""Package-wide settings: default dtype, the fastmath flag set, size thresholds.

The kernels read the thresholds as compile-time constants. Their on-disk cache is
keyed on a hash of this file and of ``fastbp/kernels/*.py`` (see
``fastbp/kernels/_jit.py``), so editing a number here recompiles what uses it.
"""

import numpy as np

#: dtype of parameters, activations and gradients unless ``dtype=`` says otherwise.
DEFAULT_DTYPE = np.dtype(np.float32)

#: dtypes the kernels are written for.
SUPPORTED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))

#: LLVM fast-math flags for every kernel. ``nnan`` and ``ninf`` are left out on
#: purpose: with them LLVM may assume no NaN/inf exists and fold ``x != x`` to
#: False, which would blind the divergence checks (numba issue #2919).
FASTMATH = frozenset({"nsz", "arcp", "contract", "afn", "reassoc"})

#: A dense product X @ W of (n, k) @ (k, m) runs the hand-written serial loops
#: when n * k * m < DENSE_BLAS_MIN_MACS and calls BLAS (``np.dot`` inside njit,
#: which may use several threads) otherwise. Measured 2026-11-23 on the 2-core
#: AMD EPYC (Zen 4) reference VM with ``python benchmarks/thresholds.py
#: --threads 1``: µs per layer step (forward + dW + db + dX), loops vs BLAS:
#:
#:   4x2->8 (64 MACs) 0.094 vs 0.312    8x8->8 (512) 0.421 vs 0.417
#:   4x8->1 (32)      0.206 vs 0.250    16x8->16 (2048) 0.964 vs 0.496
#:   16x16->16 (4096) 3.18 vs 0.64      64x64->64 (262144) 77.8 vs 16.7
#:
#: so the loops win below 512 multiply-adds, tie at 512 and lose from 2048;
#: the switch sits between the last tie and the first loss. The same with 2
#: threads.
DENSE_BLAS_MIN_MACS = 1024

#: train_epochs(parallel=True) cuts a batch into one chunk per Numba thread,
#: trained at once (kernels/epoch.py: parallel_step), but never into chunks
#: of fewer than PARALLEL_MIN_ROWS rows. It is off by default: measured
#: 2026-11-25 on the 2-core reference VM (2 threads, fastbp bench cases),
#: batch-parallel vs one thread with threaded BLAS ran 0.99x (ten 64-wide
#: layers, batch 64), 1.00x (20-256-256-1, 256), 0.74x (784-256-10, 128),
#: 0.71x (1024-1024-1024-10, 256) and 0.28x (32-64-1, 64): halving the rows
#: halves each product's efficiency, and two chunks run concurrently ran
#: 8-40 % slower each than one alone.
PARALLEL_MIN_ROWS = 16
