"""fastbp: a JIT-compiled, vectorized backpropagation engine for MLPs on the CPU.

The maths lives in Numba kernels (:mod:`fastbp.kernels`); this package holds
the thin layer API over them. Importing fastbp compiles nothing: each kernel is
compiled on first use for the dtypes it meets and cached on disk.

>>> import numpy as np, fastbp
>>> model = fastbp.Sequential(fastbp.Linear(2, 8, rng=0), fastbp.Tanh(),
...                           fastbp.Linear(8, 1, rng=1))
"""

from ._version import __version__
from .gradcheck import GradcheckResult, gradcheck, numerical_gradient
from .layers import (
    GELU,
    Activation,
    Layer,
    LeakyReLU,
    Linear,
    Parameter,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    mlp,
)
from .losses import CrossEntropyLoss, Loss, MSELoss
from .optim import SGD, Adam, Optimizer
from .train import DivergenceError, TrainResult, evaluate, train

__all__ = [
    "__version__",
    "Parameter",
    "Layer",
    "Linear",
    "Activation",
    "ReLU",
    "LeakyReLU",
    "GELU",
    "Sigmoid",
    "Tanh",
    "Sequential",
    "mlp",
    "Loss",
    "MSELoss",
    "CrossEntropyLoss",
    "Optimizer",
    "SGD",
    "Adam",
    "gradcheck",
    "GradcheckResult",
    "numerical_gradient",
    "train",
    "evaluate",
    "TrainResult",
    "DivergenceError",
]
