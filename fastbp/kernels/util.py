"""Small helpers the layer API uses to check arrays without allocating."""

import numpy as np

from ._jit import kernel

__all__ = ["all_finite"]


@kernel
def all_finite(X):
    """True when no element of X (any shape, C-contiguous) is NaN or infinite.

    Unlike ``np.isfinite(X).all()`` this allocates nothing and stops at the
    first bad element.
    """
    x = X.reshape(X.size)
    for i in range(x.shape[0]):
        if not np.isfinite(x[i]):
            return False
    return True
