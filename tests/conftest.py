"""Shared test settings: the one tolerance table and a seeded random generator.

The suite trains hundreds of different small architectures; compiling a
specialized kernel for each (about 3 s apiece, fastbp.kernels.special) would
take most of its time, so the generic kernel serves them unless a test asks
for specialization (tests/test_special.py) or the environment already sets
FASTBP_SPECIALIZE (CI runs the training tests once more with it set to 1).
No fastbp train of the suite starts a background compile of the generic
kernel (FASTBP_BACKGROUND_COMPILE=0; tests/training/test_compiling.py asks
for one). Subprocesses inherit both settings.
"""

import os

import numpy as np
import pytest

os.environ.setdefault("FASTBP_SPECIALIZE", "0")
os.environ["FASTBP_BACKGROUND_COMPILE"] = "0"

#: How far a kernel result may be from the float64 reference, per array dtype,
#: as ``numpy.testing.assert_allclose`` arguments. Inputs in the tests are
#: scaled so that results are of order one (weights ~ N(0, 1/in_features)), so
#: atol is the tolerance near zero and rtol elsewhere. float32 allows a few
#: hundred ulps (eps = 1.2e-7) for sums over hundreds of terms and fast-math
#: reassociation; float64 (eps = 2.2e-16) about the same multiple.
TOL = {
    np.dtype(np.float32): dict(rtol=1e-5, atol=1e-5),
    np.dtype(np.float64): dict(rtol=1e-12, atol=1e-12),
}

DTYPES = [np.float32, np.float64]


@pytest.fixture(params=DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request):
    """Each kernel test runs once per supported dtype."""
    return np.dtype(request.param)


@pytest.fixture
def tol(dtype):
    """The assert_allclose tolerances for the current dtype."""
    return TOL[dtype]


@pytest.fixture
def rng():
    """A NumPy Generator with a fixed seed, fresh for each test."""
    return np.random.default_rng(20261123)
