"""Networks: parameters, layers, losses, optimizers, the parts registry and
gradient checks.

``fastbp.nn`` owns everything a model is made of and nothing about how it is
trained: :class:`Sequential` holds every parameter in one flat vector, each
layer and loss calls its Numba kernels (:mod:`fastbp.kernels`), each
optimizer updates parameters in place, and :mod:`fastbp.nn.parts` declares
each activation, loss and optimizer once for the fused kernel, model files
and the command line.
"""

from .._compat import lazy_exports

_NAMES = {
    **dict.fromkeys(
        (
            "Parameter", "Layer", "Linear", "Activation", "ReLU", "LeakyReLU",
            "GELU", "Sigmoid", "Tanh", "Sequential", "mlp", "uses_builtin_kernels",
        ),
        "layers",
    ),
    **dict.fromkeys(
        ("Loss", "MSELoss", "CrossEntropyLoss", "SquaredErrorLoss",
         "BinaryCrossEntropyLoss"),
        "losses",
    ),
    **dict.fromkeys(("Optimizer", "SGD", "Adam"), "optim"),
    **dict.fromkeys(
        ("Part", "register", "part_of", "ACTIVATIONS", "LOSSES", "OPTIMIZERS"), "parts"
    ),
    **dict.fromkeys(
        ("gradcheck", "GradcheckResult", "numerical_gradient"), "numerical"
    ),
}  # fmt: skip

__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
