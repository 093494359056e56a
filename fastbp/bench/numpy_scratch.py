"""A plain NumPy MLP in the style of the classic from-scratch layer classes.

Each layer object keeps what its backward pass needs from the forward pass
(``Affine`` its input, ``Relu`` its mask), ``backward(dout)`` returns the
gradient for the layer below, and the network chains them. The one departure
from the textbook: the first ``Affine`` skips ``dx = dout @ W.T`` (its input is
the data), so this engine does the same products as the others; see
common.flops_per_step.
"""

import numpy as np

from .common import init_params, make_batch


class Affine:
    """``out = x @ W + b`` with ``W`` of shape ``(in, out)``."""

    def __init__(self, W, b, need_dx=True):
        self.W = W
        self.b = b
        self.need_dx = need_dx
        self.x = None
        self.dW = None
        self.db = None

    def forward(self, x):
        self.x = x
        return x @ self.W + self.b

    def backward(self, dout):
        self.dW = self.x.T @ dout
        self.db = dout.sum(axis=0)
        if not self.need_dx:
            return None
        return dout @ self.W.T


class Relu:
    """``out = max(x, 0)``; the gradient is 0 where ``x <= 0``."""

    def __init__(self):
        self.mask = None

    def forward(self, x):
        self.mask = x <= 0
        out = x.copy()
        out[self.mask] = 0
        return out

    def backward(self, dout):
        dx = dout.copy()
        dx[self.mask] = 0
        return dx


class MSE:
    """``loss = mean((y - t)**2)`` over every entry."""

    def __init__(self):
        self.y = None
        self.t = None
        self.loss = None

    def forward(self, y, t):
        self.y = y
        self.t = t
        diff = y - t
        self.loss = np.mean(diff * diff)
        return self.loss

    def backward(self, dout=1.0):
        return dout * 2 * (self.y - self.t) / self.y.size


class Net:
    """Affine, Relu, Affine, ..., Affine with an MSE loss layer on top."""

    def __init__(self, params):
        self.affines = [
            Affine(W.copy(), b.copy(), need_dx=(k > 0))
            for k, (W, b) in enumerate(params)
        ]
        self.layers = []
        for k, affine in enumerate(self.affines):
            if k > 0:
                self.layers.append(Relu())
            self.layers.append(affine)
        self.last_layer = MSE()

    def predict(self, x):
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def loss(self, x, t):
        return self.last_layer.forward(self.predict(x), t)

    def gradient(self, x, t):
        """Forward and backward; leaves dW, db in each Affine and returns the loss."""
        loss = self.loss(x, t)
        dout = self.last_layer.backward(1.0)
        for layer in reversed(self.layers):
            dout = layer.backward(dout)
        return loss

    def update(self, lr):
        for affine in self.affines:
            affine.W -= lr * affine.dW
            affine.b -= lr * affine.db


class NumpyEngine:
    """The benchmark engine interface around Net (see common)."""

    name = "numpy"

    def __init__(self, sizes, batch, lr, seed, dtype=np.float32):
        self.sizes = tuple(sizes)
        self.batch = batch
        self.lr = float(lr)
        self.net = Net(init_params(sizes, seed, dtype))
        self.X, self.T = make_batch(sizes, batch, seed, dtype)

    def warmup(self):
        """Nothing to compile; one forward pass wakes up the BLAS threads."""
        self.net.predict(self.X)

    def step(self, n):
        loss = float("nan")
        for _ in range(n):
            loss = self.net.gradient(self.X, self.T)
            self.net.update(self.lr)
        return float(loss)

    def weights(self):
        return [(a.W.copy(), a.b.copy()) for a in self.net.affines]
