"""Matrix products for the kernels, through NumPy's own BLAS.

``np.dot`` inside an njit function calls SciPy's BLAS (Numba finds it through
``scipy.linalg.cython_blas``), which is a second OpenBLAS beside the one NumPy
bundles: a second thread pool in the process, and on the reference VM a
slower one (a 2-thread 1024-wide product ran at 55-65 % of NumPy's speed).
So the three products a dense layer needs call NumPy's ``cblas_sgemm`` /
``cblas_dgemm`` directly, and one BLAS with one thread pool serves NumPy,
the kernels and ``thread_limit``.

How: NumPy's wheels ship OpenBLAS as ``scipy-openblas`` with its symbols
renamed (``scipy_cblas_sgemm64_`` in the 64-bit-integer build, NumPy >= 2;
``scipy_cblas_sgemm`` in the 32-bit one). :func:`_numpy_gemm` finds that
library among those loaded (threadpoolctl lists them), and the addresses of
its two GEMMs are registered with LLVM under fastbp's own names
(``fastbp_cblas_sgemm``/``fastbp_cblas_dgemm``) by :func:`register_symbols`
before the first kernel compiles or loads; compiled kernels call those
names, so they stay valid in Numba's on-disk cache from one process to the
next. Registering two names no other library uses is the only thing this
module does to the process, and not at import.

When NumPy's BLAS is something else (MKL, Accelerate, a distribution's own
OpenBLAS), or ``FASTBP_GEMM=numba`` is set, the products fall back to
``np.dot``, i.e. SciPy's BLAS, as before. :data:`GEMM` says which is in use;
it is part of the kernels' cache stamp.

Every product is row-major on packed matrices given as a flat array and an
offset (see dense.py): ``gemm_nn`` C = A @ B, ``gemm_tn`` C = A.T @ B,
``gemm_nt`` C = A @ B.T, overwriting C.
"""

from __future__ import annotations

import ctypes
import os

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from numba import njit
from numba.core import cgutils, types
from numba.extending import intrinsic

__all__ = ["GEMM", "gemm_nn", "gemm_tn", "gemm_nt", "register_symbols"]

# CBLAS's enum values.
_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112

#: (symbol suffix, integer bits) of each scipy-openblas build NumPy may bundle.
_BUILDS = (("64_", 64), ("", 32))


def _address(function) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value


def _numpy_gemm() -> tuple[str, int, int, int] | None:
    """(library path, sgemm address, dgemm address, integer bits) of the
    OpenBLAS NumPy links, or None when it is not a scipy-openblas build."""
    if os.environ.get("FASTBP_GEMM", "") == "numba":
        return None
    from threadpoolctl import threadpool_info

    site = os.path.dirname(os.path.dirname(np.__file__))
    for info in threadpool_info():
        path = info.get("filepath") or ""
        if info.get("internal_api") != "openblas" or not path.startswith(site):
            continue
        # NumPy's copy lives in numpy.libs (or numpy/.dylibs), SciPy's in scipy.libs.
        if not os.path.relpath(path, site).startswith("numpy"):
            continue
        lib = ctypes.CDLL(path)
        for suffix, bits in _BUILDS:
            try:
                s = getattr(lib, f"scipy_cblas_sgemm{suffix}")
                d = getattr(lib, f"scipy_cblas_dgemm{suffix}")
            except AttributeError:
                continue
            return path, _address(s), _address(d), bits
    return None


_FOUND = _numpy_gemm()
#: Where the kernels' matrix products go: "numpy-openblas (<path>)" or
#: "numba-np.dot (scipy)".
GEMM = f"numpy-openblas ({_FOUND[0]})" if _FOUND else "numba-np.dot (scipy)"

_registered = False


def register_symbols() -> None:
    """Give LLVM the addresses of NumPy's two GEMMs under fastbp's names,
    once per process. Called (by _jit) before any kernel is compiled or
    loaded from the cache, not at import: until a kernel runs, fastbp adds
    nothing to the process."""
    global _registered
    if _FOUND and not _registered:
        llvm.add_symbol("fastbp_cblas_sgemm", _FOUND[1])
        llvm.add_symbol("fastbp_cblas_dgemm", _FOUND[2])
        _registered = True


if _FOUND:
    _INT_BITS = _FOUND[3]

    @intrinsic
    def _cblas_gemm(
        typingctx, trans_a, trans_b, m, n, k, a, ao, lda, b, bo, ldb, c, co, ldc
    ):
        """C[co:] = op(A[ao:]) @ op(B[bo:]) by cblas_?gemm, row-major,
        alpha 1 and beta 0; op is a transpose when its flag is _TRANS."""
        sig = types.void(trans_a, trans_b, m, n, k, a, ao, lda, b, bo, ldb, c, co, ldc)
        double = a.dtype == types.float64
        name = "fastbp_cblas_dgemm" if double else "fastbp_cblas_sgemm"

        def codegen(context, builder, signature, args):
            ta, tb, m_, n_, k_, a_, ao_, lda_, b_, bo_, ldb_, c_, co_, ldc_ = args
            real = ir.DoubleType() if double else ir.FloatType()
            blas_int, enum = ir.IntType(_INT_BITS), ir.IntType(32)
            ptr = real.as_pointer()
            fnty = ir.FunctionType(
                ir.VoidType(),
                [enum, enum, enum, blas_int, blas_int, blas_int, real, ptr]
                + [blas_int, ptr, blas_int, real, ptr, blas_int],
            )
            fn = cgutils.get_or_insert_function(builder.module, fnty, name)

            def data(array, offset, arg):
                view = context.make_array(signature.args[arg])(context, builder, array)
                return builder.gep(view.data, [offset])

            def to_int(value, ty):
                return builder.trunc(value, ty) if ty.width < 64 else value

            builder.call(
                fn,
                [
                    ir.Constant(enum, _ROW_MAJOR),
                    to_int(ta, enum),
                    to_int(tb, enum),
                    to_int(m_, blas_int),
                    to_int(n_, blas_int),
                    to_int(k_, blas_int),
                    ir.Constant(real, 1.0),
                    data(a_, ao_, 5),
                    to_int(lda_, blas_int),
                    data(b_, bo_, 8),
                    to_int(ldb_, blas_int),
                    ir.Constant(real, 0.0),
                    data(c_, co_, 11),
                    to_int(ldc_, blas_int),
                ],
            )
            return context.get_dummy_value()

        return sig, codegen

    _NT, _T = np.int64(_NO_TRANS), np.int64(_TRANS)

    @njit(inline="always")
    def gemm_nn(a, ao, b, bo, c, co, n, k, m):
        """C (n, m) = A (n, k) @ B (k, m)."""
        _cblas_gemm(_NT, _NT, n, m, k, a, ao, k, b, bo, m, c, co, m)

    @njit(inline="always")
    def gemm_tn(a, ao, b, bo, c, co, n, k, m):
        """C (k, m) = A.T @ B for A (n, k), B (n, m)."""
        _cblas_gemm(_T, _NT, k, m, n, a, ao, k, b, bo, m, c, co, m)

    @njit(inline="always")
    def gemm_nt(a, ao, b, bo, c, co, n, k, m):
        """C (n, k) = A @ B.T for A (n, m), B (k, m)."""
        _cblas_gemm(_NT, _T, n, k, m, a, ao, m, b, bo, m, c, co, k)

else:

    @njit(inline="always")
    def _matrix(flat, offset, rows, cols):
        return flat[offset : offset + rows * cols].reshape((rows, cols))

    @njit(inline="always")
    def gemm_nn(a, ao, b, bo, c, co, n, k, m):
        """C (n, m) = A (n, k) @ B (k, m)."""
        np.dot(_matrix(a, ao, n, k), _matrix(b, bo, k, m), _matrix(c, co, n, m))

    @njit(inline="always")
    def gemm_tn(a, ao, b, bo, c, co, n, k, m):
        """C (k, m) = A.T @ B for A (n, k), B (n, m)."""
        np.dot(_matrix(a, ao, n, k).T, _matrix(b, bo, n, m), _matrix(c, co, k, m))

    @njit(inline="always")
    def gemm_nt(a, ao, b, bo, c, co, n, k, m):
        """C (n, k) = A @ B.T for A (n, m), B (k, m)."""
        np.dot(_matrix(a, ao, n, m), _matrix(b, bo, k, m).T, _matrix(c, co, n, k))
