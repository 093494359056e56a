"""JAX on the CPU, float32: the whole loop jitted, or one jitted step per call.

float64 cases run inside ``jax.enable_x64(True)`` (construction, warm-up
and every step): JAX truncates float64 to float32 otherwise, and the
setting is scoped so that the float32 cases around them keep JAX's default.

* ``JaxLoopEngine`` ("jax-loop"): one ``jax.jit`` of ``n`` steps in a
  ``lax.fori_loop`` whose trip count is a traced int32, so every ``n`` shares
  one compiled executable; the parameters are donated.
* ``JaxStepEngine`` ("jax-step"): ``jax.jit`` of a single step, called from a
  Python loop (per-step dispatch cost included); parameters donated.

jax is imported when an engine is built, so this module imports without it.
``warmup()`` compiles (and runs on copies, so the state is unchanged) and
blocks; ``step(n)`` blocks until the results are ready before returning.
"""

import contextlib

import numpy as np

from .common import init_params, make_batch


def _make_step(sizes, lr, dtype):
    import jax
    import jax.numpy as jnp

    n_layers = len(sizes) - 1
    lr = np.dtype(dtype).type(lr)

    def loss_fn(params, X, T):
        h = X
        for k, (W, b) in enumerate(params):
            h = h @ W + b
            if k < n_layers - 1:
                h = jax.nn.relu(h)
        d = h - T
        return jnp.mean(d * d)

    grad_fn = jax.value_and_grad(loss_fn)

    def sgd_step(params, X, T):
        loss, grads = grad_fn(params, X, T)
        params = jax.tree_util.tree_map(lambda p, g: p - lr * g, params, grads)
        return params, loss

    return sgd_step


class _JaxBase:
    def __init__(self, sizes, batch, lr, seed, dtype=np.float32):
        import jax
        import jax.numpy as jnp

        self._jax = jax
        self.dtype = np.dtype(dtype)
        self.sizes = tuple(sizes)
        self.batch = batch
        self.lr = float(lr)
        with self._precision():
            cpu = jax.devices("cpu")[0]
            self.params = tuple(
                (jax.device_put(W, cpu), jax.device_put(b, cpu))
                for W, b in init_params(sizes, seed, self.dtype)
            )
            X, T = make_batch(sizes, batch, seed, self.dtype)
            self.X = jax.device_put(X, cpu)
            self.T = jax.device_put(T, cpu)
            self._copy = jax.jit(lambda p: jax.tree_util.tree_map(jnp.copy, p))

    def _precision(self):
        """float64 enabled for a float64 case, JAX's default otherwise."""
        if self.dtype == np.float64:
            return self._jax.enable_x64(True)
        return contextlib.nullcontext()

    def _param_copies(self):
        return self._jax.block_until_ready(self._copy(self.params))

    def weights(self):
        return [(np.array(W), np.array(b)) for W, b in self.params]


class JaxLoopEngine(_JaxBase):
    """All n steps inside one jitted ``lax.fori_loop`` (one compile for any n)."""

    name = "jax-loop"

    def __init__(self, sizes, batch, lr, seed, dtype=np.float32):
        super().__init__(sizes, batch, lr, seed, dtype)
        jax = self._jax
        sgd_step = _make_step(self.sizes, self.lr, self.dtype)
        nan = self.dtype.type(np.nan)

        def run(params, X, T, n):
            def body(_, carry):
                params, _loss = carry
                return sgd_step(params, X, T)

            init = (params, jax.numpy.asarray(nan))
            return jax.lax.fori_loop(0, n, body, init)

        self._run = jax.jit(run, donate_argnums=0)

    def warmup(self):
        # n is traced, so this compiles the executable every n uses.
        with self._precision():
            out = self._run(self._param_copies(), self.X, self.T, np.int32(1))
            self._jax.block_until_ready(out)

    def step(self, n):
        with self._precision():
            self.params, loss = self._run(self.params, self.X, self.T, np.int32(n))
            self._jax.block_until_ready((self.params, loss))
        return float(loss)


class JaxStepEngine(_JaxBase):
    """One jitted SGD step, called n times from Python."""

    name = "jax-step"

    def __init__(self, sizes, batch, lr, seed, dtype=np.float32):
        super().__init__(sizes, batch, lr, seed, dtype)
        step = _make_step(self.sizes, self.lr, self.dtype)
        self._step = self._jax.jit(step, donate_argnums=0)

    def warmup(self):
        with self._precision():
            out = self._step(self._param_copies(), self.X, self.T)
            self._jax.block_until_ready(out)

    def step(self, n):
        loss = None
        with self._precision():
            params = self.params
            for _ in range(n):
                params, loss = self._step(params, self.X, self.T)
            self.params = params
            self._jax.block_until_ready((params, loss))
        return float("nan") if loss is None else float(loss)
