"""What every baseline engine shares: the initial weights, the data, the FLOPs.

Every engine trains the same MLP on the same mini-batch with the same
arithmetic, so their timings compare like with like:

* ``sizes`` such as ``(2, 8, 1)`` mean ``Linear(2, 8), ReLU, Linear(8, 1)``:
  ReLU between Linear layers, nothing after the last one.
* A Linear layer computes ``Y = X @ W + b`` with ``W`` of shape
  ``(in_features, out_features)`` (as in fastbp; torch stores ``W.T``).
* Loss: mean squared error over every entry, ``L = mean((y - t)**2)``, so
  ``dL/dy = 2 * (y - t) / y.size`` (``torch.nn.MSELoss()``'s default).
* Optimizer: plain SGD, ``W -= lr * dW`` and ``b -= lr * db``, no momentum,
  no weight decay.
* Everything is float32, unless a case says float64 (the SimpleChains
  reference case). One fixed mini-batch is reused on every step.

Engine interface (duck-typed; see numpy_scratch.NumpyEngine)::

    engine = Engine(sizes, batch, lr, seed, dtype=np.float32)
                         # weights from init_params(sizes, seed, dtype),
                         # data from make_batch(sizes, batch, seed, dtype)
    engine.warmup()      # compile / first call; leaves the training state alone
    loss = engine.step(n)  # n SGD steps; the loss of the last step's forward
                           # pass (before its update), as a float, computed
                           # and synchronised before returning
    engine.weights()     # [(W (in, out), b (out,)), ...] NumPy copies, of dtype
"""

import numpy as np

#: The benchmark cases: name -> (sizes, batch).
CASES = {
    "xor-2-8-1": ((2, 8, 1), 4),
    "32-64-1": ((32, 64, 1), 64),
    # Ten hidden layers of 64: many small products per step.
    "deep-32-64x10-1": ((32, *([64] * 10), 1), 64),
    # A tabular network: 20 features, two hidden layers of 256.
    "tabular-20-256-256-1": ((20, 256, 256, 1), 256),
    "784-256-10": ((784, 256, 10), 128),
    "1024-1024-1024-10": ((1024, 1024, 1024, 10), 256),
}


#: Cases measured against published figures (``fastbp bench`` runs them after
#: CASES): name -> (sizes, batch, dtype). SimpleChains.jl's README trains
#: 24-8-2 (tanh, dropout, no bias on the last layer) on 200 rows in float64
#: and the 2022 blog post 4-32-16-4 on 10,000 rows per epoch; here with the
#: suite's arithmetic (ReLU, MSE, SGD, every layer with a bias), one batch
#: per step.
REFERENCE_CASES = {
    "simplechains-24-8-2-f64": ((24, 8, 2), 200, "float64"),
    "simplechains-4-32-16-4": ((4, 32, 16, 4), 10_000, "float32"),
}

#: Published GFLOP/s per core of the reference cases, and where from.
PUBLISHED_GFLOPS_PER_CORE = {
    "simplechains-24-8-2-f64": (
        47.0,
        "SimpleChains.jl, ~47 GFLOP/s per core in float64 (README's valgrad! "
        "of 5.3 us is 33 by this suite's FLOP count)",
    ),
    "simplechains-4-32-16-4": (
        55.0,
        "SimpleChains.jl 2022 blog post, ~1 TFLOP/s on 18 cores",
    ),
}


def case_spec(value):
    """(sizes, batch, dtype) of a CASES or REFERENCE_CASES value; the dtype
    defaults to float32."""
    sizes, batch, *rest = value
    return tuple(sizes), int(batch), np.dtype(rest[0] if rest else np.float32)


def _check_sizes(sizes):
    sizes = tuple(int(s) for s in sizes)
    if len(sizes) < 2 or min(sizes) < 1:
        raise ValueError(f"sizes needs at least two positive entries, got {sizes}")
    return sizes


def init_params(sizes, seed, dtype=np.float32):
    """He-normal weights and zero biases, of ``dtype`` (float32 unless a case
    says float64), the same for a given seed.

    ``W ~ N(0, 2 / in_features)`` of shape ``(in_features, out_features)``,
    drawn layer by layer from ``numpy.random.default_rng(seed)``; ``b = 0``.
    Returns a list of ``(W, b)`` pairs, C-contiguous.
    """
    sizes = _check_sizes(sizes)
    rng = np.random.default_rng(seed)
    params = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:], strict=True):
        W = rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)
        params.append((W.astype(dtype), np.zeros(n_out, dtype=dtype)))
    return params


def make_batch(sizes, batch, seed, dtype=np.float32):
    """One fixed mini-batch ``(X (batch, in), T (batch, out))`` of ``dtype``.

    Standard normal inputs and targets, from a generator seeded with
    ``[seed, 1]`` so that they are independent of ``init_params(sizes, seed)``.
    """
    sizes = _check_sizes(sizes)
    rng = np.random.default_rng([seed, 1])
    X = rng.standard_normal((batch, sizes[0])).astype(dtype)
    T = rng.standard_normal((batch, sizes[-1])).astype(dtype)
    return X, T


def flops_per_step(sizes, batch):
    """Floating-point operations of the matrix products in one training step.

    With B = batch and a layer of ``in -> out`` features, each product of a
    ``(B, in)`` by an ``(in, out)`` matrix (or its transposes) costs
    ``2 * B * in * out`` FLOPs (a multiply and an add per term). Per layer:

    * forward ``Y = X @ W``: ``2 * B * in * out``
    * weight gradient ``dW = X.T @ dY``: ``2 * B * in * out``
    * input gradient ``dX = dY @ W.T``: ``2 * B * in * out``, except for the
      first layer, whose input is the data and needs no gradient.

    So ``flops = sum_layers 6 * B * in * out - 2 * B * sizes[0] * sizes[1]``.
    Bias adds, ReLU, the loss and the SGD update are O(B * out) or O(in * out)
    and not counted.
    """
    sizes = _check_sizes(sizes)
    total = 0
    for k, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        mm = 2 * batch * n_in * n_out
        total += 2 * mm if k == 0 else 3 * mm
    return total
