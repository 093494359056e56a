"""Thread caps for training: Numba's pool and every OpenBLAS loaded in-process.

Matrix products inside kernels go to SciPy's OpenBLAS, which keeps its own
thread pool (NumPy bundles a second OpenBLAS with another). ``thread_limit(n)``
caps Numba and each OpenBLAS it finds for the duration of a ``with`` block and
restores the previous counts in ``finally``, even when training raises.
OpenBLAS libraries are found by name among the shared objects mapped into the
process (Linux); elsewhere only Numba's count is changed.
"""

from __future__ import annotations

import ctypes
import os
from collections.abc import Iterator
from contextlib import contextmanager

import numba

# (setter, getter) symbol pairs across OpenBLAS builds: plain, SciPy's LP64
# build, NumPy's ILP64 build.
_SYMBOLS = (
    ("openblas_set_num_threads", "openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
    ("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
    ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
)


def _openblas_controls() -> list[tuple[object, object]]:
    """(set, get) ctypes functions of every OpenBLAS mapped into the process."""
    # Make sure the BLAS the kernels call is loaded before looking for it.
    import scipy.linalg.cython_blas  # noqa: F401

    try:
        with open(f"/proc/{os.getpid()}/maps") as maps:
            paths = {line.split()[-1] for line in maps if "openblas" in line.lower()}
    except OSError:
        return []
    controls = []
    for path in sorted(paths):
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for setter, getter in _SYMBOLS:
            if hasattr(lib, setter) and hasattr(lib, getter):
                controls.append((getattr(lib, setter), getattr(lib, getter)))
                break
    return controls


def blas_threads() -> list[int]:
    """The thread count of each OpenBLAS loaded in the process."""
    return [get() for _, get in _openblas_controls()]


@contextmanager
def thread_limit(n: int | None) -> Iterator[None]:
    """Cap Numba and BLAS at n threads inside the block; None changes nothing."""
    if n is None:
        yield
        return
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"threads must be a positive integer, got {n!r}")
    n = min(n, numba.config.NUMBA_NUM_THREADS)
    controls = _openblas_controls()
    saved_blas = [get() for _, get in controls]
    saved_numba = numba.get_num_threads()
    try:
        numba.set_num_threads(n)
        for set_threads, _ in controls:
            set_threads(n)
        yield
    finally:
        numba.set_num_threads(saved_numba)
        for (set_threads, _), count in zip(controls, saved_blas, strict=True):
            set_threads(count)
