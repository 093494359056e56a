"""How a step is run: the fused kernel's plan of a (model, loss, optimizer),
or the layer path, and the runners that train epochs of fixed arrays with
either.

:func:`fused_plan` derives the fused kernel's description from the registry
(:mod:`fastbp.nn.parts`): it exists whenever every part has fused code (a
Sequential of built-in Linear layers, each optionally followed by a
registered activation; a registered loss; a registered optimizer over
exactly ``model.parameters()``). Otherwise the layer path calls
``model.forward``, ``loss.forward``, ``model.backward`` and
``optimizer.step()`` from Python for each mini-batch; it runs any Layer,
Loss and Optimizer. Both visit rows in the same order and compute the same
arithmetic, and :class:`Engine` picks between them once per run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from ..kernels.codes import ACT_IDENTITY, NO_HYPER
from ..kernels.epoch import (
    FusedLoss,
    FusedModel,
    FusedOptimizer,
    shuffle_rows,
    train_epochs,
)
from ..nn.layers import Linear, Sequential, uses_builtin_kernels
from ..nn.losses import Loss
from ..nn.optim import Optimizer
from ..nn.parts import part_of
from .metrics import batch_loss_share

__all__ = [
    "Engine",
    "FusedPlan",
    "fused_plan",
    "FusedRunner",
    "LayerRunner",
    "epoch_order",
    "shuffle_key",
    "linear_layers",
    "values_and_labels",
]


@dataclass
class FusedPlan:
    """What the fused kernel needs besides the data, built once per train()."""

    model: FusedModel
    loss: FusedLoss
    optimizer: Optimizer

    def fused_optimizer(self) -> FusedOptimizer:
        """The optimizer's kernel form, with its current step count."""
        opt = self.optimizer
        return FusedOptimizer(
            part_of(opt).code, opt.hyper_vector(), opt.state, opt.step_count
        )


def fused_plan(
    model: object, loss: Loss, optimizer: Optimizer | None
) -> FusedPlan | str:
    """The fused kernel's description of (model, loss, optimizer), derived
    from the registry, or a string saying why this combination must take the
    layer path. optimizer None: a plan for evaluating the loss and gradient
    only (its ``optimizer`` is None)."""
    if not isinstance(model, Sequential):
        return "the model is not a Sequential"
    layers, rows, hyper, i = model.layers, [], [], 0
    while i < len(layers):
        layer = layers[i]
        if not (isinstance(layer, Linear) and uses_builtin_kernels(layer)):
            return f"layer {i} ({layer!r}) is not a fastbp Linear"
        act, p = ACT_IDENTITY, NO_HYPER
        after = layers[i + 1] if i + 1 < len(layers) else None
        if after is not None and not isinstance(after, Linear):
            part = part_of(after)
            if part is None or not part.fused or not uses_builtin_kernels(after):
                return f"layer {i + 1} ({after!r}) has no fused kernel"
            act, p = part.code, after.hyper_vector()
            i += 1
        w, b = model.offset(layer.weight), model.offset(layer.bias)
        rows.append((layer.in_features, layer.out_features, w, b, act))
        hyper.append(p)
        i += 1
    loss_part = part_of(loss)
    if loss_part is None or not loss_part.fused:
        return f"the loss {loss!r} has no fused kernel"
    loss_hyper = [float(v) for v in loss_part.hyperparameters(loss).values()]
    if optimizer is not None:
        opt_part = part_of(optimizer)
        if opt_part is None or not opt_part.fused:
            return f"the optimizer {optimizer!r} has no fused kernel"
        params = model.parameters()
        if len(optimizer.params) != len(params) or any(
            a is not b for a, b in zip(optimizer.params, params, strict=True)
        ):
            return "the optimizer does not hold exactly model.parameters(), in order"
    fused_model = FusedModel(
        model.flat_data,
        model.flat_grad,
        np.array(rows, dtype=np.int64),
        np.array(hyper, dtype=np.float64),
    )
    fused_loss = FusedLoss(loss_part.code, np.array(loss_hyper, dtype=np.float64))
    return FusedPlan(fused_model, fused_loss, optimizer)


@dataclass(frozen=True, eq=False)
class Engine:
    """The path a run trains on: ``plan`` for the fused kernel, or None for
    the layer path with ``reason`` saying why."""

    model: Sequential
    loss: Loss
    optimizer: Optimizer
    plan: FusedPlan | None
    reason: str | None = None
    #: Which fused kernel trains: True the specialized kernel of the
    #: architecture, False the generic one, None train_epochs' default
    #: (training.compiling.choose_kernel settles it for a run).
    specialize: bool | None = None

    @classmethod
    def choose(cls, model, loss, optimizer, fuse: bool | None) -> Engine:
        """The fused path when the parts qualify and ``fuse`` is not False;
        fuse=True demands it (ValueError saying why it cannot run)."""
        plan = fused_plan(model, loss, optimizer) if fuse is not False else None
        if fuse and isinstance(plan, str):
            raise ValueError(f"fuse=True but {plan}")
        if isinstance(plan, FusedPlan):
            return cls(model, loss, optimizer, plan)
        return cls(model, loss, optimizer, None, plan or "fuse=False")

    @property
    def fused(self) -> bool:
        return self.plan is not None

    def runner(
        self,
        X,
        T,
        batch_size,
        sample_weight=None,
        l2=0.0,
        grad_norms=False,
        distributed: bool | str = False,
        sync_every: int = 1,
    ) -> FusedRunner | LayerRunner:
        """A runner training epochs of X, T (checked and cast for the model)
        in batches of ``batch_size`` rows on this engine's path."""
        if self.plan is not None:
            return FusedRunner(
                self.plan,
                X,
                T,
                batch_size,
                sample_weight,
                l2,
                grad_norms,
                distributed,
                sync_every,
                self.specialize,
            )
        return LayerRunner(
            self.model, self.loss, self.optimizer, X, T, batch_size, l2, grad_norms
        )  # fmt: skip


class FusedRunner:
    """Runs epochs of a :class:`FusedPlan` on fixed data (what train uses).

    ``runner(perms, key=-1, first_epoch=0)`` trains one epoch per row of
    perms (an (n_epochs, n_samples) int64 array of row orders, or
    (n_epochs, 0): then the orders :func:`epoch_order` gives for key and
    epochs first_epoch, first_epoch + 1, ..., or the stored order when key is
    -1) and returns the per-epoch losses, NaN from a diverged epoch on.
    X and T must already be checked and cast as train() does.
    """

    def __init__(
        self,
        plan: FusedPlan,
        X: NDArray,
        T: NDArray,
        batch_size: int,
        sample_weight: NDArray | None = None,
        l2: float = 0.0,
        grad_norms: bool = False,
        distributed: bool | str = False,
        sync_every: int = 1,
        specialize: bool | None = None,
    ):
        self.plan, self.X, self.batch_size = plan, X, batch_size
        self.distributed, self.sync_every = distributed, sync_every
        self.specialize = specialize
        #: stats[0]: seconds spent in all-reduce so far (distributed).
        self.stats = np.zeros(1)
        self.T, self.labels = values_and_labels(X, T)
        self.sample_weight, self.l2, self.track_norms = sample_weight, l2, grad_norms
        #: (n_epochs, n_layers) weight-gradient norms of the last call, when
        #: grad_norms is on.
        self.norms = np.empty((0, 0))

    def warm_up(self) -> None:
        """Zero epochs: compiles (or loads from the cache), changes nothing."""
        self(np.empty((0, 0), np.int64))

    def __call__(self, perms: NDArray, key: int = -1, first_epoch: int = 0) -> NDArray:
        plan = self.plan
        out = np.full(perms.shape[0], np.nan)
        n_layers = plan.model.layout.shape[0]
        self.norms = np.zeros((perms.shape[0], n_layers if self.track_norms else 0))
        plan.optimizer.step_count = train_epochs(
            self.X,
            self.T,
            self.labels,
            perms,
            plan.model,
            plan.loss,
            plan.fused_optimizer(),
            self.batch_size,
            out,
            self.sample_weight,
            self.l2,
            self.norms if self.track_norms else None,
            key,
            first_epoch,
            specialize=self.specialize,
            distributed=self.distributed,
            stats=self.stats,
            sync_every=self.sync_every,
        )
        return out


def values_and_labels(X: NDArray, T: NDArray) -> tuple[NDArray, NDArray]:
    """(float targets, int64 labels) as the fused kernels take them: one of
    the two is T, the other an empty array."""
    if T.dtype.kind in "iu":  # labels
        return np.empty((0, 0), X.dtype), T
    return T, np.empty(0, np.int64)


def shuffle_key(seed: int | None) -> int:
    """The shuffle key of a seed, in [0, 2**63): a hash of the seed
    (``numpy.random.SeedSequence``), or fresh entropy for None."""
    state = np.random.SeedSequence(seed).generate_state(1, np.uint64)[0]
    return int(state >> np.uint64(1))


def epoch_order(key: int, epoch: int, n: int) -> NDArray:
    """The row order (a permutation of 0..n-1, int64) that training visits
    in epoch ``epoch`` (from 0) for shuffle key ``key``: the same function
    the fused kernel runs (:func:`fastbp.kernels.epoch.shuffle_rows`)."""
    order = np.empty(n, np.int64)
    shuffle_rows(order, key, epoch)
    return order


class LayerRunner:
    """The layer path on fixed data: ``runner(perms)`` trains one epoch per
    row of perms (row orders, or (n_epochs, 0) for the stored order) through
    the public layer API, one Python iteration per mini-batch, and returns
    the per-epoch losses, NaN from a diverged epoch on (as FusedRunner)."""

    def __init__(
        self, model, loss, optimizer, X, T, batch_size, l2=0.0, grad_norms=False
    ):
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.X, self.T, self.batch_size = X, T, batch_size
        self.xbuf = np.empty((batch_size, X.shape[1]), X.dtype)
        self.tbuf = np.empty((batch_size, *T.shape[1:]), T.dtype)
        self.l2, self.track_norms = l2, grad_norms
        self.weights = [layer.weight for layer in linear_layers(model)]
        self.norms = np.empty((0, 0))

    def _penalize(self, rows: int, norms: NDArray | None) -> float:
        """Adds l2 * W / rows to each Linear weight's gradient (returning the
        penalty 0.5 * l2 * sum(||W||**2) / rows) and each gradient's norm to
        norms, as the fused kernel does."""
        penalty = 0.0
        decay = self.l2 / rows
        for i, weight in enumerate(self.weights):
            if decay:
                weight.grad += weight.data.dtype.type(decay) * weight.data
                w64 = weight.data.astype(np.float64).ravel()
                penalty += 0.5 * decay * float(w64 @ w64)
            if norms is not None:
                norms[i] += float(np.linalg.norm(weight.grad.astype(np.float64)))
        return penalty

    def warm_up(self) -> None:
        """One step on the first batch compiles every kernel the loop uses;
        the parameters, optimizer state and step count are restored after."""
        model, loss, optimizer = self.model, self.loss, self.optimizer
        params = optimizer.params
        saved = [p.data.copy() for p in params]
        state, count = optimizer.state.copy(), optimizer.step_count
        m = min(self.batch_size, self.X.shape[0])
        loss.forward(model.forward(self.X[:m]), self.T[:m])
        model.backward(loss.backward())
        optimizer.step()
        for p, data in zip(params, saved, strict=True):
            p.data[...] = data
        optimizer.state[...] = state
        optimizer.step_count = count

    def __call__(self, perms: NDArray, key: int = -1, first_epoch: int = 0) -> NDArray:
        model, loss, optimizer = self.model, self.loss, self.optimizer
        X, T, bs = self.X, self.T, self.batch_size
        n = X.shape[0]
        if perms.shape[1] == 0 and key >= 0:
            perms = np.stack(
                [epoch_order(key, first_epoch + e, n) for e in range(perms.shape[0])]
            ).reshape(perms.shape[0], n)
        out = np.full(perms.shape[0], np.nan)
        self.norms = np.zeros(
            (perms.shape[0], len(self.weights) if self.track_norms else 0)
        )
        for e in range(perms.shape[0]):
            total = 0.0
            norms = self.norms[e] if self.track_norms else None
            for s in range(0, n, bs):
                m = min(bs, n - s)
                if perms.shape[1]:
                    idx = perms[e, s : s + m]
                    xb = np.take(X, idx, axis=0, out=self.xbuf[:m])
                    tb = np.take(T, idx, axis=0, out=self.tbuf[:m])
                else:
                    xb, tb = X[s : s + m], T[s : s + m]
                value = loss.forward(model.forward(xb), tb)
                if not math.isfinite(value):
                    return out
                model.backward(loss.backward())
                if self.l2 or norms is not None:
                    value += self._penalize(m, norms)
                optimizer.step()
                total += batch_loss_share(loss, value, m)
            out[e] = total / n
            if norms is not None:
                norms /= -(-n // bs)
        return out


def linear_layers(model: Sequential) -> list[Linear]:
    """The Linear layers of model, nested Sequentials included, in order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, Sequential):
            found.extend(linear_layers(layer))
        elif isinstance(layer, Linear):
            found.append(layer)
    return found
