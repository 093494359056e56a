"""Training: the epoch loop, its callbacks, schedules, checkpoints, L-BFGS,
data parallelism and metrics.

``fastbp.training`` owns how a model learns: one loop runs the fused kernel
(or the layer path) over a data source, and everything that happens between
two calls of the kernel is a callback (learning-rate schedules, early
stopping, checkpoints, gradient norms, progress, the user's own).
:func:`fastbp.train` is the convenience function over it.
"""

from .._compat import lazy_exports

_NAMES = {
    **dict.fromkeys(("train", "evaluate", "epoch_control"), "api"),
    **dict.fromkeys(
        ("fit", "FitOptions", "Run", "InMemory", "STEPS_PER_CALL", "SECONDS_PER_CALL"),
        "loop",
    ),
    **dict.fromkeys(("Callback", "EpochCallback", "GradNorms"), "callbacks"),
    **dict.fromkeys(("DataParallel", "SingleProcess"), "parallel"),
    **dict.fromkeys(("loss_and_gradient", "lbfgs"), "fullbatch"),
    **dict.fromkeys(("TrainResult", "DivergenceError"), "result"),
    **dict.fromkeys(
        ("Engine", "FusedPlan", "fused_plan", "FusedRunner", "LayerRunner",
         "epoch_order", "shuffle_key", "linear_layers"),
        "runners",
    ),
    **dict.fromkeys(
        ("METRICS", "accuracy", "binary_accuracy", "logit_accuracy", "r2",
         "batch_loss_share"),
        "metrics",
    ),
    **dict.fromkeys(
        ("check_data_range", "check_initial_loss", "divergence_error"), "checks"
    ),
    **dict.fromkeys(
        ("Schedule", "Constant", "InvScaling", "Adaptive", "StepDecay", "Cosine",
         "EarlyStopping", "EpochControl", "SCHEDULES", "schedule"),
        "schedules",
    ),
    **dict.fromkeys(
        ("Checkpoint", "CheckpointError", "CheckpointFile", "Checkpointing",
         "load_checkpoint"),
        "checkpoint",
    ),
}  # fmt: skip

__all__ = list(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
