"""Which fused kernel a run uses, and saying so whenever anything compiles.

A run on the fused path can use the generic kernel (one compiled loop for
every architecture of a dtype) or a kernel generated for its architecture
(:mod:`fastbp.kernels.special`: faster per step, but its first use compiles
it, about 2-5 s). :func:`choose_kernel` picks the one that costs the job
least, from what is already on disk (``special.kernel_status``, which
compiles nothing) and an estimate of the job's steps:

- the specialized kernel when it is cached, or when the seconds it saves
  over the job's steps exceed its compile time, or when neither kernel is
  cached (it compiles faster than the generic one, ~17 s);
- otherwise the cached generic kernel: a short job on a new architecture
  compiles nothing.

:class:`CompileNotices` watches Numba's ``numba:compile`` events (raised on
a cache miss only, never for a kernel loaded from disk) and says, before the
wait, what compiles ("compiling the training kernel for 20-32-1, first time
only (about 3 s)..."), and after it how long it took. The lines go to the
``fastbp`` logger at INFO; when nothing is configured to handle it and
stderr is a terminal, they are printed there (``fastbp train`` shows them
unless --quiet). The run's :class:`TrainResult` keeps the choice
(``kernel``, ``kernel_reason``) and what compiled (``compiled``,
``compiling_seconds``).
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..kernels import special
from ..kernels.epoch import L_IN, L_OUT, specialize_by_default

__all__ = ["KernelChoice", "choose_kernel", "step_seconds", "CompileNotices", "log"]

log = logging.getLogger("fastbp")

#: Seconds per training step, modelled as a cost per layer (calls, BLAS
#: dispatch, the activation) plus each layer's multiply-adds (6 * batch *
#: weights: forward 2, backward 4) at a product rate. The specialized kernel
#: runs layers of at most SIMD_MAX_WEIGHTS weights on its own products and
#: larger ones on the same BLAS calls as the generic kernel. Fitted on the
#: Intel Xeon (Emerald Rapids) at 1 thread, float32, Adam, µs per step
#: measured generic / specialized (model): 2-8-1 batch 4 1.05 / 0.27 (1.6 /
#: 0.2); 16-16-16-1 batch 32 6.0 / 1.7 (4.1 / 1.1); 20-32-1 batch 32 8.4 /
#: 1.6 (3.8 / 1.3); 32-64-1 batch 64 16.7 / 6.3 (15.1 / 7.0); ten 64-wide
#: layers batch 64 249 / 133 (270 / 132); 20-256-256-1 batch 256 1234 /
#: 1240 (1780 / 1680); a second run on the shared machine measured 32-64-1
#: 8.0 / 6.2 and ten 64-wide 172 / 131: the model holds to about 2x, and
#: it only has to tell a saving of seconds from one of milliseconds. The
#: costs every step shares (the optimizer, the
#: batch's gather) cancel out of a saving and are left out.
_GENERIC_LAYER_S, _SPECIAL_LAYER_S = 0.8e-6, 0.1e-6
_BLAS_FLOPS, _SIMD_FLOPS = 60e9, 120e9


def step_seconds(layout: np.ndarray, batch_size: int, specialized: bool) -> float:
    """Estimated seconds of one training step of ``batch_size`` rows through
    the layers of ``layout`` (rows of in, out, ...) on one core, on the
    specialized kernel or the generic one (see the constants above)."""
    seconds = 0.0
    for row in layout:
        weights = int(row[L_IN]) * int(row[L_OUT])
        simd = specialized and weights <= special.SIMD_MAX_WEIGHTS
        seconds += _SPECIAL_LAYER_S if specialized else _GENERIC_LAYER_S
        seconds += 6.0 * batch_size * weights / (_SIMD_FLOPS if simd else _BLAS_FLOPS)
    return seconds


@dataclass(frozen=True)
class KernelChoice:
    """The fused kernel a run uses and why."""

    #: "specialized" or "generic".
    kernel: str
    #: The widths, e.g. "20-32-1".
    label: str
    #: Estimated seconds compiling it takes (0 when it is cached).
    compile_estimate: float
    #: One sentence for the log, ``--json`` and TrainResult.kernel_reason.
    reason: str

    @property
    def specialize(self) -> bool:
        """train_epochs' ``specialize`` argument."""
        return self.kernel == "specialized"


def choose_kernel(plan, *, batch_size: int, steps: int, weighted: bool) -> KernelChoice:
    """The kernel that trains ``steps`` steps of ``batch_size`` rows of the
    fused ``plan`` (:class:`~fastbp.training.runners.FusedPlan`) soonest,
    compile included (see the module's docstring). Compiles nothing."""
    layout = plan.model.layout
    status = special.kernel_status(
        layout,
        int(plan.loss.code),
        int(plan.fused_optimizer().code),
        plan.model.theta.dtype,
        weighted,
    )
    generic_estimate = 0.0 if status.generic_cached else status.generic_compile_seconds

    def generic(reason: str) -> KernelChoice:
        return KernelChoice("generic", status.label, generic_estimate, reason)

    def specialized(reason: str) -> KernelChoice:
        estimate = 0.0 if status.cached else status.compile_seconds
        return KernelChoice("specialized", status.label, estimate, reason)

    if not specialize_by_default():
        return generic("FASTBP_SPECIALIZE=0")
    if not status.specialize:
        return generic("no layer is small enough for a specialized kernel to gain")
    if status.cached:
        return specialized("the specialized kernel is cached")
    saved = steps * (
        step_seconds(layout, batch_size, False) - step_seconds(layout, batch_size, True)
    )
    if saved > status.compile_seconds:
        return specialized(
            f"it saves about {saved:.2g} s over {steps} steps, more than its "
            f"compile (about {status.compile_seconds:.0f} s)"
        )
    if status.generic_cached:
        return generic(
            f"a specialized kernel would save about {saved:.2g} s over {steps} "
            f"steps, less than its compile (about {status.compile_seconds:.0f} s)"
        )
    return specialized(
        "no kernel is cached and the specialized one compiles soonest "
        f"(about {status.compile_seconds:.0f} s against "
        f"{status.generic_compile_seconds:.0f} s)"
    )


def _say(message: str) -> None:
    """``message`` to the fastbp logger, or to a terminal's stderr when
    nothing handles that logger."""
    if log.hasHandlers():
        log.info(message)
    elif sys.stderr is not None and sys.stderr.isatty():
        print(message, file=sys.stderr, flush=True)


class CompileNotices:
    """Say what Numba compiles during a phase of a run, and record it.

    ``with notices.phase("the training kernel for 20-32-1", estimate=3):``
    announces, at the first compile in the block (a cache miss: nothing is
    said when every kernel loads from disk), "compiling <what>, first time
    only (about 3 s)...", and when the block ends "compiled <what> in 2.8
    s". ``what`` may be a function returning (what, estimate), asked at the
    first compile (the block may settle them). The compiled functions' names
    go to ``result.compiled`` and the seconds to ``result.compiling_seconds``.
    """

    def __init__(self, result) -> None:
        self.result = result

    def phase(
        self, what: str | Callable[[], tuple[str, float]], estimate: float = 0.0
    ) -> _Phase:
        describe = what if callable(what) else (lambda: (what, estimate))
        return _Phase(self.result, describe)


class _Phase:
    def __init__(self, result, describe: Callable[[], tuple[str, float]]) -> None:
        self.result, self.describe = result, describe
        self.depth, self.began, self.spent, self.what = 0, 0.0, 0.0, None

    def _on_start(self, ev) -> None:
        if self.depth == 0:
            if self.what is None:
                self.what, estimate = self.describe()
                about = f" (about {estimate:.0f} s)" if estimate >= 1 else ""
                _say(f"compiling {self.what}, first time only{about}...")
            self.began = time.perf_counter()
        self.depth += 1
        func = getattr(ev.data.get("dispatcher"), "py_func", None)
        name = getattr(func, "__qualname__", None)
        if name and name not in self.result.compiled:
            self.result.compiled.append(name)

    def _on_end(self, ev) -> None:
        self.depth -= 1
        if self.depth == 0:
            self.spent += time.perf_counter() - self.began

    def __enter__(self) -> _Phase:
        from numba.core import event

        phase = self

        class Listener(event.Listener):
            def on_start(self, ev):
                phase._on_start(ev)

            def on_end(self, ev):
                phase._on_end(ev)

        self.installed = event.install_listener("numba:compile", Listener())
        self.installed.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.installed.__exit__(*exc)
        self.result.compiling_seconds += self.spent
        if self.what is not None and exc[0] is None:
            _say(f"compiled {self.what} in {self.spent:.1f} s")
