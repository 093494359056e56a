"""Optimizers with PyTorch's semantics: SGD (momentum, Nesterov, weight decay)
and Adam.

An optimizer holds Parameters (not their arrays) and keeps its state as a
2-D array ``state`` of shape (n_state, n_elements): one row per state vector
(SGD's momentum buffer, Adam's two moments), one column per parameter
element, in parameter order. Parameters that sit back to back in one buffer,
as a ``Sequential`` model's do, are updated as one segment: one kernel call
per step for the whole model. Because it looks the arrays up through the
Parameters, an optimizer built before its layers join a Sequential (which
moves their arrays into one buffer) keeps training them.

Each optimizer is declared once with :func:`fastbp.parts.register`: its name,
fused-kernel code, hyperparameter names and state names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import numpy as np
from numpy.typing import NDArray

from .._compat import LazyModule
from .._validate import real_in
from ..kernels.codes import (
    ADAM_HYPER,
    ADAM_STATE,
    OPT_ADAM,
    OPT_SGD,
    SGD_HYPER,
    SGD_STATE,
)
from .layers import Parameter
from .parts import Part, register

#: The update kernels, imported (with Numba) by the first step.
_optim = LazyModule("fastbp.kernels.optim")

__all__ = ["Optimizer", "SGD", "Adam"]


class _Segment(NamedTuple):
    """A run of parameters contiguous in memory: flat views of data and grad,
    and the columns of the optimizer's state that belong to them."""

    data: NDArray
    grad: NDArray
    start: int
    stop: int


def _address(a: NDArray) -> int:
    return a.__array_interface__["data"][0]


def _follows(a: NDArray, b: NDArray) -> bool:
    """True when a starts right where b ends, in the same contiguous buffer."""
    return (
        a.base is not None
        and a.base is b.base
        and a.base.flags.c_contiguous
        and _address(a) == _address(b) + b.nbytes
    )


def _flat_view(run: list[NDArray]) -> NDArray:
    """One 1-D view spanning the arrays of ``run``, which follow one another."""
    first = run[0]
    if len(run) == 1:
        return first.reshape(-1)  # a view: parameters are C-contiguous
    offset = (_address(first) - _address(first.base)) // first.itemsize
    return first.base.reshape(-1)[offset : offset + sum(a.size for a in run)]


def _segments(params: list[Parameter]) -> list[_Segment]:
    """Group params into runs whose data and grad both follow one another."""
    runs: list[list[Parameter]] = []
    for p in params:
        prev = runs[-1][-1] if runs else None
        if (
            prev is not None
            and _follows(p.data, prev.data)
            and _follows(p.grad, prev.grad)
        ):
            runs[-1].append(p)
        else:
            runs.append([p])
    segments, start = [], 0
    for run in runs:
        stop = start + sum(p.data.size for p in run)
        segments.append(
            _Segment(
                _flat_view([p.data for p in run]),
                _flat_view([p.grad for p in run]),
                start,
                stop,
            )
        )
        start = stop
    return segments


class Optimizer:
    """Base class: holds the parameters, ``step()`` and ``zero_grad()``.

    Attributes
    ----------
    params : list of Parameter, in the order given
    state : ndarray of shape (n_state, n_elements), the parameters' dtype
        The state vectors named by the class's registration, rows in that
        order; also reachable by name (``momentum_buffer``, ``exp_avg``...).
    step_count : int, updates done so far (Adam's bias corrections use it)
    """

    part: Part | None = None

    def __init__(self, params: Iterable[Parameter]) -> None:
        who = type(self).__name__
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{who}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{who}: expected fastbp Parameters, got {type(p).__name__}"
                )
            if any(p is q for q in self.params[:i]):
                raise ValueError(f"{who}: {p!r} is listed twice")
            if not (p.data.flags.c_contiguous and p.grad.flags.c_contiguous):
                raise ValueError(f"{who}: {p!r} is not C-contiguous")
        dtypes = {p.data.dtype for p in self.params}
        if len(dtypes) > 1:
            raise TypeError(f"{who}: parameters mix dtypes {sorted(map(str, dtypes))}")
        self.dtype = dtypes.pop()
        self.size = sum(p.data.size for p in self.params)
        self.step_count = 0
        names = type(self).part.state if type(self).part is not None else ()
        self.state = np.zeros((len(names), self.size), self.dtype)
        for row, name in zip(self.state, names, strict=True):
            setattr(self, name, row)
        self._seen: list[NDArray] = []
        self._segs: list[_Segment] = []

    def hyper_vector(self) -> NDArray:
        """The hyperparameters as the fused kernel takes them: float64, in the
        order the class's registration declares."""
        return np.array(
            [float(v) for v in type(self).part.hyperparameters(self).values()]
        )

    def _segments(self) -> list[_Segment]:
        """The parameters' current arrays grouped into segments; regrouped when
        a Sequential has moved them since the last call."""
        seen = self._seen
        if len(seen) == 2 * len(self.params):
            i = 0
            for p in self.params:
                if p.data is not seen[i] or p.grad is not seen[i + 1]:
                    break
                i += 2
            else:
                return self._segs
        self._segs = _segments(self.params)
        self._seen = [a for p in self.params for a in (p.data, p.grad)]
        return self._segs

    def zero_grad(self) -> None:
        """Set every gradient to zero. ``backward`` overwrites gradients anyway;
        this is for loops written the PyTorch way."""
        for seg in self._segments():
            seg.grad.fill(0)

    def step(self) -> None:
        """One update of every parameter from its ``grad``."""
        self.step_count += 1
        for seg in self._segments():
            self._update(seg)

    def _update(self, seg: _Segment) -> None:
        raise NotImplementedError


@register("optimizer", "sgd", code=OPT_SGD, hyper=SGD_HYPER, state=SGD_STATE)
class SGD(Optimizer):
    """Stochastic gradient descent, as ``torch.optim.SGD`` (dampening 0).

    g = grad + weight_decay * param; with momentum, buf = momentum * buf + g and
    g = g + momentum * buf (nesterov) or buf; then param -= lr * g.

    Parameters
    ----------
    params : iterable of Parameter (``model.parameters()``)
    lr : float > 0
    momentum : float >= 0
    nesterov : bool (requires momentum > 0)
    weight_decay : float >= 0 (L2 penalty)
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        self.lr = real_in(lr, "SGD", "lr", low_open=True)
        self.momentum = real_in(momentum, "SGD", "momentum")
        self.weight_decay = real_in(weight_decay, "SGD", "weight_decay")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("SGD: nesterov=True requires momentum > 0")

    def __repr__(self) -> str:
        return (
            f"SGD(lr={self.lr:g}, momentum={self.momentum:g}, "
            f"nesterov={self.nesterov}, weight_decay={self.weight_decay:g})"
        )

    def _update(self, seg: _Segment) -> None:
        _optim.sgd_update(
            seg.data,
            seg.grad,
            self.momentum_buffer[seg.start : seg.stop],
            self.lr,
            self.momentum,
            self.weight_decay,
            self.nesterov,
        )


@register("optimizer", "adam", code=OPT_ADAM, hyper=ADAM_HYPER, state=ADAM_STATE)
class Adam(Optimizer):
    """Adam, as ``torch.optim.Adam`` (amsgrad=False), with bias correction.

    m = beta1 m + (1 - beta1) g, v = beta2 v + (1 - beta2) g^2 with
    g = grad + weight_decay * param, then
    param -= lr / (1 - beta1^t) * m / (sqrt(v / (1 - beta2^t)) + eps).

    Parameters
    ----------
    params : iterable of Parameter
    lr : float > 0, default 1e-3
    betas : (float, float) in [0, 1), default (0.9, 0.999)
    eps : float >= 0, default 1e-8
    weight_decay : float >= 0, default 0
    """

    def __init__(
        self,
        params: Iterable[Parameter],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(params)
        self.lr = real_in(lr, "Adam", "lr", low_open=True)
        if not isinstance(betas, tuple | list) or len(betas) != 2:
            raise ValueError(f"Adam: betas must be a pair of floats, got {betas!r}")
        self.betas = (
            real_in(betas[0], "Adam", "betas[0]", high=1.0, high_open=True),
            real_in(betas[1], "Adam", "betas[1]", high=1.0, high_open=True),
        )
        self.eps = real_in(eps, "Adam", "eps")
        self.weight_decay = real_in(weight_decay, "Adam", "weight_decay")

    @property
    def beta1(self) -> float:
        return self.betas[0]

    @property
    def beta2(self) -> float:
        return self.betas[1]

    def __repr__(self) -> str:
        return (
            f"Adam(lr={self.lr:g}, betas={self.betas}, eps={self.eps:g}, "
            f"weight_decay={self.weight_decay:g})"
        )

    def _update(self, seg: _Segment) -> None:
        _optim.adam_update(
            seg.data,
            seg.grad,
            self.exp_avg[seg.start : seg.stop],
            self.exp_avg_sq[seg.start : seg.stop],
            self.lr,
            self.beta1,
            self.beta2,
            self.eps,
            self.weight_decay,
            self.step_count,
        )
