"""fastbp's own benchmark engines: the fused epoch kernel and the layer API.

Same interface and arithmetic as the baselines (see :mod:`.common`): the MLP
``sizes`` with ReLU between Linear layers, MSE (mean), plain SGD, float32 (or
the case's dtype), one fixed mini-batch reused every step.
"""

import numpy as np

from ..nn.layers import Linear, mlp
from ..nn.losses import MSELoss
from ..nn.optim import SGD
from ..training.api import train
from ..training.runners import FusedRunner, fused_plan
from .common import init_params, make_batch


def _model(sizes, seed, dtype):
    """fastbp.mlp(sizes, "relu") holding the baselines' initial weights."""
    model = mlp(list(sizes), "relu", dtype=dtype)
    params = init_params(sizes, seed, dtype)  # [(W, b), ...] in parameter order
    model.flat_data[...] = np.concatenate([a.ravel() for pair in params for a in pair])
    return model


class _FastbpBase:
    def __init__(self, sizes, batch, lr, seed, dtype=np.float32):
        self.sizes, self.batch, self.lr = tuple(sizes), batch, float(lr)
        self.model = _model(sizes, seed, dtype)
        self.loss = MSELoss()
        self.optimizer = SGD(self.model.parameters(), lr=self.lr)
        self.X, self.T = make_batch(sizes, batch, seed, dtype)

    def weights(self):
        linears = [lay for lay in self.model.layers if isinstance(lay, Linear)]
        return [(lay.weight.data.copy(), lay.bias.data.copy()) for lay in linears]


class FastbpFusedEngine(_FastbpBase):
    """``n`` steps in one call of the fused kernel (one 'epoch' per step, since
    the data is one batch), as ``fastbp.train`` runs them."""

    name = "fastbp-fused"

    def __init__(self, sizes, batch, lr, seed, dtype=np.float32):
        super().__init__(sizes, batch, lr, seed, dtype)
        plan = fused_plan(self.model, self.loss, self.optimizer)
        self.runner = FusedRunner(plan, self.X, self.T, batch)

    def _run(self, n):
        # n "epochs" of the one batch, unshuffled: n steps.
        return self.runner(np.empty((n, 0), np.int64))

    def warmup(self):
        self._run(0)

    def step(self, n):
        return float(self._run(n)[-1]) if n else float("nan")


class FastbpTrainEngine(_FastbpBase):
    """``fastbp.train(...)`` as a user calls it, timed from the outside: one
    call trains n epochs of the one batch (unshuffled, as the other engines
    run), argument checks, compile-cache lookup, the initial and final loss
    checks and the per-epoch history included. The last loss is read as
    ``result.final_loss``: building ``result.loss``, a Python list of n
    floats (about 30 ns each), is the caller's choice and not timed."""

    name = "fastbp-train"

    def _train(self, n):
        return train(
            self.model,
            self.loss,
            self.optimizer,
            self.X,
            self.T,
            epochs=n,
            batch_size=self.batch,
            shuffle=False,
        )

    def warmup(self):
        saved = self.model.flat_data.copy()
        self._train(1)
        self.model.flat_data[...] = saved

    def step(self, n):
        return self._train(n).final_loss if n else float("nan")


class FastbpLayerEngine(_FastbpBase):
    """A Python loop over the public layer API: forward, loss, backward, step."""

    name = "fastbp-layers"

    def warmup(self):
        # Compile every kernel of a step without changing the weights.
        self.loss.forward(self.model.forward(self.X), self.T)
        self.model.backward(self.loss.backward())
        saved = self.model.flat_data.copy()
        self.optimizer.step()
        self.model.flat_data[...] = saved

    def step(self, n):
        model, loss, optimizer, X, T = (
            self.model,
            self.loss,
            self.optimizer,
            self.X,
            self.T,
        )
        value = float("nan")
        for _ in range(n):
            value = loss.forward(model.forward(X), T)
            model.backward(loss.backward())
            optimizer.step()
        return value
