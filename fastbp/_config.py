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

# No kernel uses prange. Measured the same day with benchmarks/thresholds.py,
# the Adam update over a flat parameter vector ran 1.3-1.9x faster split over
# the 2 threads from 100k parameters up (1M: 930 vs 500 us), but a variant
# indexing whole arrays ran 2-5x slower under prange at every size, and
# NUMBA_NOTES §5 measured 25x slowdowns when a prange region follows an
# OpenBLAS call whose threads still spin. On this 2-core VM the gain is too
# fragile for the risk; the matrix products get both cores through BLAS.
