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

#: A dense product X @ W of (n, k) @ (k, m) runs a hand-written loop when
#: n * k * m < DENSE_BLAS_MIN_MACS and calls BLAS (``np.dot`` inside njit,
#: which may use several threads) otherwise. Measured 2026-11-23 on the 2-core
#: AMD EPYC (Zen 4) reference VM with ``python benchmarks/thresholds.py``:
#: see the table in that script's docstring.
DENSE_BLAS_MIN_MACS = 4096

#: Element-wise kernels (activations, optimizer updates) switch from a serial
#: loop to a ``prange`` over blocks at this many elements; same script.
PARALLEL_MIN_ELEMENTS = 1 << 62
