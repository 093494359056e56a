"""Thread caps for training: Numba's pool and every BLAS loaded in-process.

Matrix products inside kernels go to NumPy's own OpenBLAS (see
``fastbp/kernels/blas.py``), or, where NumPy's BLAS is not one the kernels can
call, to SciPy's, which keeps a second thread pool. ``thread_limit(n)``
caps Numba and every BLAS library for the duration of a ``with`` block and
restores the previous counts in ``finally``, even when training raises. The
BLAS libraries are found and limited by threadpoolctl, which knows OpenBLAS,
MKL and BLIS builds on Linux, macOS and Windows; Numba's own pool is not one of
them, so it is set with ``numba.set_num_threads``. Nothing here runs at import.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numba


def _load_kernel_blas() -> None:
    """Load the BLAS the kernels call, so that threadpoolctl sees it even
    before the first kernel has run: NumPy's is loaded already; SciPy's, the
    fallback, is loaded here."""
    from .kernels.blas import GEMM

    if GEMM.startswith("numba"):
        import scipy.linalg.cython_blas  # noqa: F401


def blas_threads() -> list[int]:
    """The thread count of each BLAS library loaded in the process."""
    from threadpoolctl import threadpool_info

    _load_kernel_blas()
    return [
        info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"
    ]


@contextmanager
def thread_limit(n: int | None) -> Iterator[None]:
    """Cap Numba and BLAS at n threads inside the block; None changes nothing."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    from threadpoolctl import threadpool_limits

    _load_kernel_blas()
    n = min(n, numba.config.NUMBA_NUM_THREADS)
    saved_numba = numba.get_num_threads()
    # threadpool_limits restores every library's previous count on exit.
    with threadpool_limits(limits=n, user_api="blas"):
        try:
            numba.set_num_threads(n)
            yield
        finally:
            numba.set_num_threads(saved_numba)
