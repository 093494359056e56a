"""PyTorch eager mode: nn.Sequential of Linear/ReLU, nn.MSELoss, optim.SGD.

torch is imported when an engine is built, so this module imports without it
(the constructor raises ImportError then). Thread count: torch's default, or
``threads`` inside :func:`.suite.engine_threads`.
"""

import numpy as np

from .common import init_params, make_batch


class TorchEngine:
    """The benchmark engine interface (see common) on torch eager."""

    name = "torch-eager"

    def __init__(self, sizes, batch, lr, seed, dtype=np.float32):
        import torch
        from torch import nn

        dtype = np.dtype(dtype)
        tdtype = torch.float64 if dtype == np.float64 else torch.float32
        self._torch = torch
        self.sizes = tuple(sizes)
        self.batch = batch
        self.lr = float(lr)
        layers = []
        for k, (W, b) in enumerate(init_params(sizes, seed, dtype)):
            if k > 0:
                layers.append(nn.ReLU())
            lin = nn.Linear(W.shape[0], W.shape[1], dtype=tdtype)
            with torch.no_grad():
                # torch keeps the weight as (out, in): copy in W.T.
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
                lin.bias.copy_(torch.from_numpy(b))
            layers.append(lin)
        self.model = nn.Sequential(*layers)
        self.loss_fn = nn.MSELoss()
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.lr)
        X, T = make_batch(sizes, batch, seed, dtype)
        self.X = torch.from_numpy(X)
        self.T = torch.from_numpy(T)

    def warmup(self):
        """A forward and backward pass with no update, then the grads cleared."""
        loss = self.loss_fn(self.model(self.X), self.T)
        loss.backward()
        self.opt.zero_grad(set_to_none=True)

    def step(self, n):
        loss = None
        for _ in range(n):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss_fn(self.model(self.X), self.T)
            loss.backward()
            self.opt.step()
        return float("nan") if loss is None else float(loss.item())

    def weights(self):
        out = []
        for m in self.model:
            if isinstance(m, self._torch.nn.Linear):
                W = m.weight.detach().numpy().T.copy()
                out.append((W, m.bias.detach().numpy().copy()))
        return out
