"""The codes and hyperparameter names the kernels and the layer API share:
plain Python constants, importable without Numba (``fastbp train --help``,
``fastbp predict`` and model files need the names, not the kernels).

Each activation, loss and optimizer class of :mod:`fastbp.nn` registers its
code with :func:`fastbp.nn.parts.register`; the kernels dispatch on it.
"""

__all__ = [
    "ACT_IDENTITY",
    "ACT_RELU",
    "ACT_TANH",
    "ACT_SIGMOID",
    "ACT_LEAKY_RELU",
    "ACT_GELU",
    "ACT_CODES",
    "ACT_MAX_HYPER",
    "NO_HYPER",
    "LOSS_MSE",
    "LOSS_CROSS_ENTROPY",
    "LOSS_SQUARED_ERROR",
    "LOSS_BINARY_CROSS_ENTROPY",
    "MSE_HYPER",
    "CROSS_ENTROPY_HYPER",
    "SQUARED_ERROR_HYPER",
    "BINARY_CROSS_ENTROPY_HYPER",
    "LOSS_HYPER",
    "OPT_SGD",
    "OPT_ADAM",
    "SGD_HYPER",
    "SGD_STATE",
    "ADAM_HYPER",
    "ADAM_STATE",
    "OPT_SIGNATURES",
    "keeps_input",
]

# Activation codes shared with the dense kernels and the fused epoch path.
ACT_IDENTITY = 0
ACT_RELU = 1
ACT_TANH = 2
ACT_SIGMOID = 3
ACT_LEAKY_RELU = 4
ACT_GELU = 5
#: Every code above: what the fused kernel's checks accept.
ACT_CODES = (ACT_IDENTITY, ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_LEAKY_RELU, ACT_GELU)


def keeps_input(act: int) -> bool:
    """True when act's derivative needs the forward input X, not the output Y.

    GELU's derivative Phi(x) + x phi(x) cannot be recovered from y = x Phi(x),
    so the fused kernel keeps the pre-activation for such layers. Plain
    Python, for the layer API and the kernel generator; the kernels inline
    its compiled form, ``activations.grad_from_input``.
    """
    return act == ACT_GELU


#: Length of the hyperparameter tuple ``p`` every activation kernel takes.
ACT_MAX_HYPER = 2
#: ``p`` of an activation without hyperparameters.
NO_HYPER = (0.0,) * ACT_MAX_HYPER

# Loss codes of the fused kernel (``epoch.train_epochs``); each loss class in
# ``fastbp.nn.losses`` registers its code and the hyperparameters it takes, in
# the order ``loss_backward_flat`` reads them from ``hyper``.
LOSS_MSE = 0
LOSS_CROSS_ENTROPY = 1
LOSS_SQUARED_ERROR = 2
LOSS_BINARY_CROSS_ENTROPY = 3
MSE_HYPER = ("mean",)  # 1.0: L = sum((Y - T)**2) / size; 0.0: 0.5 * sum(...)
CROSS_ENTROPY_HYPER = ()
SQUARED_ERROR_HYPER = ()
BINARY_CROSS_ENTROPY_HYPER = ()
#: code -> names of its hyperparameters: what the fused kernel's checks accept.
LOSS_HYPER = {
    LOSS_MSE: MSE_HYPER,
    LOSS_CROSS_ENTROPY: CROSS_ENTROPY_HYPER,
    LOSS_SQUARED_ERROR: SQUARED_ERROR_HYPER,
    LOSS_BINARY_CROSS_ENTROPY: BINARY_CROSS_ENTROPY_HYPER,
}

# Optimizer codes of the fused kernel (``epoch.train_epochs``). Each optimizer
# class in ``fastbp.nn.optim`` registers its code with the names below: the
# order in which ``optimizer_step_flat`` reads its hyperparameters from
# ``hyper`` and its flat state vectors from ``state``.
OPT_SGD = 0
OPT_ADAM = 1
SGD_HYPER = ("lr", "momentum", "weight_decay", "nesterov")
SGD_STATE = ("momentum_buffer",)
ADAM_HYPER = ("lr", "beta1", "beta2", "eps", "weight_decay")
ADAM_STATE = ("exp_avg", "exp_avg_sq")
#: code -> (hyperparameter names, state names): what the fused kernel's checks
#: accept.
OPT_SIGNATURES = {OPT_SGD: (SGD_HYPER, SGD_STATE), OPT_ADAM: (ADAM_HYPER, ADAM_STATE)}
