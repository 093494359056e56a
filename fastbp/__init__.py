"""fastbp: a JIT-compiled, vectorized backpropagation engine for MLPs on the CPU.

The maths lives in Numba kernels (:mod:`fastbp.kernels`); the packages by
concern sit above them: :mod:`fastbp.nn` (layers, losses, optimizers),
:mod:`fastbp.training` (the loop and its callbacks), :mod:`fastbp.data`
(reading and preparing tables), :mod:`fastbp.io` (model files and
predictions) and :mod:`fastbp.cli`. Importing fastbp loads NumPy and nothing
else: each name below is imported when first used, and each kernel is
compiled on first use for the dtypes it meets and cached on disk.

>>> import numpy as np, fastbp
>>> model = fastbp.Sequential(fastbp.Linear(2, 8, rng=0), fastbp.Tanh(),
...                           fastbp.Linear(8, 1, rng=1))
"""

from . import gradcheck, train
from ._compat import lazy_exports
from ._version import __version__

_NAMES = {
    **dict.fromkeys(
        ("Parameter", "Layer", "Linear", "Activation", "ReLU", "LeakyReLU", "GELU",
         "Sigmoid", "Tanh", "Sequential", "mlp"),
        "nn.layers",
    ),
    **dict.fromkeys(("Loss", "MSELoss", "CrossEntropyLoss"), "nn.losses"),
    **dict.fromkeys(("Optimizer", "SGD", "Adam"), "nn.optim"),
    **dict.fromkeys(("GradcheckResult", "numerical_gradient"), "nn.numerical"),
    **dict.fromkeys(("evaluate",), "training.api"),
    **dict.fromkeys(("fit", "FitOptions", "InMemory"), "training.loop"),
    **dict.fromkeys(("TrainResult", "DivergenceError"), "training.result"),
    **dict.fromkeys(("lbfgs", "loss_and_gradient"), "training.fullbatch"),
    **dict.fromkeys(("Callback", "EpochCallback", "GradNorms"), "training.callbacks"),
    **dict.fromkeys(("DataParallel",), "training.parallel"),
    **dict.fromkeys(("EarlyStopping",), "training.schedules"),
    **dict.fromkeys(("read_table",), "data.tables"),
    **dict.fromkeys(("export_onnx",), "io.onnx"),
}  # fmt: skip

__all__ = ["__version__", "train", "gradcheck", *_NAMES]
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
