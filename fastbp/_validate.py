"""Boundary checks for the layer API: one-line errors naming the layer and shapes.

Kernels do no type checking; everything a user hands to a layer, loss or
optimizer passes through here first, so a user never sees a Numba traceback.
"""

from __future__ import annotations

import math
from numbers import Integral, Real

import numpy as np
from numpy.typing import DTypeLike, NDArray

from ._config import DEFAULT_DTYPE, SUPPORTED_DTYPES

#: Arrays of up to this many elements are checked for NaN and inf by NumPy
#: (no kernel to compile or load: a small job's checks cost nothing at
#: start-up); larger ones by kernels.util.all_finite, which allocates nothing.
NUMPY_CHECK_SIZE = 1 << 16


def finite(x: NDArray) -> bool:
    """True when no element of the float array x is NaN or infinite."""
    if x.size <= NUMPY_CHECK_SIZE:
        return bool(np.isfinite(x).all())
    from .kernels.util import all_finite

    return bool(all_finite(np.ascontiguousarray(x)))


def as_dtype(dtype: DTypeLike | None, who: str) -> np.dtype:
    """The float dtype asked for (None means the default), or a TypeError."""
    dt = DEFAULT_DTYPE if dtype is None else np.dtype(dtype)
    if dt not in SUPPORTED_DTYPES:
        raise TypeError(f"{who}: dtype must be float32 or float64, got {dt}")
    return dt


_finite = finite  # check_array's keyword of the same name hides the function


def check_array(
    x: object,
    who: str,
    name: str,
    *,
    dtype: np.dtype | None,
    ndim: int,
    finite: bool = True,
) -> NDArray:
    """Return x if it is a C-contiguous ndarray of the given dtype and ndim.

    Raises TypeError for a non-array or a wrong dtype and ValueError for a wrong
    number of dimensions, a non-contiguous layout or a NaN/inf entry.
    """
    if not isinstance(x, np.ndarray):
        raise TypeError(f"{who}: {name} must be a numpy array, got {type(x).__name__}")
    if dtype is not None and x.dtype != dtype:
        raise TypeError(
            f"{who}: {name} of shape {x.shape} has dtype {x.dtype}, expected {dtype} "
            f"(convert with .astype(np.{dtype}))"
        )
    if x.ndim != ndim:
        raise ValueError(f"{who}: {name} must be {ndim}-D, got shape {x.shape}")
    if not x.flags.c_contiguous:
        raise ValueError(
            f"{who}: {name} of shape {x.shape} is not C-contiguous "
            "(pass np.ascontiguousarray(...))"
        )
    if finite and x.dtype.kind == "f" and not _finite(x):
        raise ValueError(f"{who}: {name} of shape {x.shape} contains NaN or inf")
    return x


def check_features(x: NDArray, who: str, name: str, expected: int) -> None:
    """ValueError unless x has shape (n_samples, expected) with n_samples >= 1."""
    if x.shape[1] != expected or x.shape[0] == 0:
        raise ValueError(
            f"{who}: {name} has shape {x.shape}, expected (n_samples, {expected})"
            + (" with n_samples >= 1" if x.shape[0] == 0 else "")
        )


def positive_int(value: object, who: str, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise ValueError(f"{who}: {name} must be a positive integer, got {value!r}")
    return int(value)


def real_in(
    value: object,
    who: str,
    name: str,
    *,
    low: float = 0.0,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return value as a float if it is finite and in the interval, else ValueError."""
    ok = isinstance(value, Real) and not isinstance(value, bool)
    if ok:
        v = float(value)
        ok = math.isfinite(v) and (v > low if low_open else v >= low)
        ok = ok and (v < high if high_open else v <= high)
    if not ok:
        interval = (
            f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        )
        raise ValueError(
            f"{who}: {name} must be a real number in {interval}, got {value!r}"
        )
    return float(value)
