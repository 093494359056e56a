"""The fused training path: whole epochs of mini-batch training in one njit call.

Forward pass, loss, backward pass and optimizer update of every mini-batch run
inside one compiled function, so no Python executes per step. It handles a
Sequential MLP of any depth, described by small arrays instead of Python
objects, so one compiled version per dtype serves every architecture. Its
contract is four named tuples, built by :func:`fastbp.train.fused_plan` from
the registry (:mod:`fastbp.parts`):

``FusedModel(theta, grad, layout, act_hyper)``
    theta, grad : (n_parameters,) float arrays, all weights and biases and
    their gradients, exactly as ``fastbp.Sequential`` stores them.
    layout : (n_layers, 5) int64, one row per Linear layer, columns
    ``L_IN, L_OUT, L_W, L_B, L_ACT``: in_features, out_features, weight
    offset, bias offset, code of the activation after it
    (``codes.ACT_*``). The weight of layer l is
    ``theta[w:w + in*out].reshape(in, out)`` and its bias ``theta[b:b + out]``.
    act_hyper : (n_layers, ACT_MAX_HYPER) float64, each activation's
    hyperparameters in the order its class declares them.
``FusedLoss(code, hyper)``
    a ``codes.LOSS_*`` code and its float64 hyperparameters.
``FusedOptimizer(code, hyper, state, step)``
    an ``codes.OPT_*`` code, float64 hyperparameters, the (n_state,
    n_parameters) state (updated in place) and the number of steps taken.

The optimizer update is one loop over the whole flat model, and the layer
path runs the same kernels, so both paths do the same arithmetic. Work
buffers are allocated once per call, never per step.

:func:`train_epochs` checks every length the compiled loop indexes before it
enters compiled code, so a malformed plan is a ValueError, never a crash.
"""

import functools
import inspect
import os
import sys
from collections import namedtuple

import numba
import numpy as np
from numba import prange

from .._config import PARALLEL_MIN_ROWS
from ._jit import kernel
from .activations import (
    activate_backward_inplace,
    activate_into,
    grad_from_input,
    hyper_row,
)
from .codes import (
    ACT_CODES,
    ACT_IDENTITY,
    ACT_MAX_HYPER,
    LOSS_HYPER,
    OPT_SIGNATURES,
    keeps_input,
)
from .dense import (
    dense_backward_input_flat,
    dense_backward_params_flat,
    dense_forward_flat,
)
from .losses import loss_backward_flat, loss_is_summed, loss_takes_labels
from .optim import optimizer_step_flat
from .util import all_finite

__all__ = [
    "FusedModel",
    "FusedLoss",
    "FusedOptimizer",
    "train_epochs",
    "loss_and_gradient",
    "shuffle_rows",
    "specialize_by_default",
]

FusedModel = namedtuple("FusedModel", ["theta", "grad", "layout", "act_hyper"])
FusedLoss = namedtuple("FusedLoss", ["code", "hyper"])
FusedOptimizer = namedtuple("FusedOptimizer", ["code", "hyper", "state", "step"])

# Columns of ``layout``.
L_IN, L_OUT, L_W, L_B, L_ACT = range(5)
LAYOUT_COLUMNS = 5


@kernel
def _weighted_loss(loss, out, t, to, labels, lo, sw, swo, dout, m, c):
    """The loss of one batch with row weights sw[swo:swo + m], and its gradient
    into dout; returns (loss, total weight W).

    Each row's loss l_r is the loss of that row alone; the batch loss is
    sum(w_r * l_r) / W (a summed loss: sum(w_r * l_r)), and row r's gradient
    is scaled to match. A batch of total weight 0 has loss 0 and gradient 0.
    """
    summed = loss_is_summed(loss.code, loss.hyper)
    total_weight = 0.0
    for r in range(m):
        total_weight += sw[swo + r]
    value = 0.0
    for r in range(m):
        row = dout[r * c : (r + 1) * c]
        v = loss_backward_flat(
            loss.code,
            loss.hyper,
            out[r * c : (r + 1) * c],
            t,
            to + r * c,
            labels,
            lo + r,
            row,
            np.int64(1),
            c,
        )
        wr = sw[swo + r]
        value += wr * v
        if summed:
            scale = wr
        else:
            scale = wr / total_weight if total_weight > 0.0 else 0.0
        for j in range(c):
            row[j] *= scale
    if not summed:
        value = value / total_weight if total_weight > 0.0 else 0.0
    return value, total_weight


@kernel(inline="always")
def _train_step(x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms):
    """Forward, loss and backward for one batch of m rows; returns its loss.

    The batch is m rows of the flat input x from offset xo, with float targets
    at t[to:] or int64 labels at labels[lo:], and row weights at sw[swo:] (sw
    empty: every row weighs 1). l2 > 0 adds scikit-learn's penalty
    0.5 * l2 * sum(||W_l||**2) / (the batch's total weight) on the weights
    (not the biases) to the loss, and its gradient to each weight's. When
    norms is not empty, norms[l] += ||dL/dW_l|| (Frobenius norm, penalty
    included) for every layer l.

    buffers is work_buffers' (hoff, h, z, d0, d1): layer l writes its
    activations to h at hoff[l], and its pre-activations
    to z at the same offset when its activation's derivative needs them;
    gradients flow through the ping-pong buffers d0 and d1. Every buffer is
    flat and addressed by offset, so no array view is made per step (see
    dense.py).
    """
    theta, grad, layout, act_hyper = model
    hoff, h, z, d0, d1 = buffers
    n_layers = layout.shape[0]
    a, ao = x, xo
    for layer in range(n_layers):
        k, n_out = layout[layer, L_IN], layout[layer, L_OUT]
        w, b, act = layout[layer, L_W], layout[layer, L_B], layout[layer, L_ACT]
        p, ho = hyper_row(act_hyper, layer), hoff[layer]
        bias = theta[b : b + n_out]
        if grad_from_input(act):
            size = m * n_out
            dense_forward_flat(
                a, ao, theta, w, bias, z, ho, m, k, n_out, np.int64(ACT_IDENTITY), p
            )
            activate_into(z[ho : ho + size], h[ho : ho + size], act, p)
        else:
            dense_forward_flat(a, ao, theta, w, bias, h, ho, m, k, n_out, act, p)
        a, ao = h, ho

    n_out = layout[n_layers - 1, L_OUT]
    size = m * n_out
    value, decay = step_loss(
        loss, h[ao : ao + size], t, to, labels, lo, sw, swo, d0[:size], m, n_out, l2
    )

    for layer in range(n_layers - 1, -1, -1):
        k, n_out = layout[layer, L_IN], layout[layer, L_OUT]
        w, act = layout[layer, L_W], layout[layer, L_ACT]
        if act != ACT_IDENTITY:
            # dZ = dH * act'(Z), from H (or Z), in place in d0.
            size, ho = m * n_out, hoff[layer]
            dl, p = d0[:size], hyper_row(act_hyper, layer)
            if grad_from_input(act):
                activate_backward_inplace(z[ho : ho + size], dl, act, p)
            else:
                activate_backward_inplace(h[ho : ho + size], dl, act, p)
        if layer == 0:
            a, ao = x, xo
        else:
            a, ao = h, hoff[layer - 1]
        b = layout[layer, L_B]
        dense_backward_params_flat(
            a, ao, d0, np.int64(0), grad, w, grad[b : b + n_out], m, k, n_out
        )
        value += step_penalty(theta, grad, w, k * n_out, decay, norms, layer)
        if layer > 0:
            zero = np.int64(0)
            dense_backward_input_flat(d0, zero, theta, w, d1, zero, m, k, n_out)
            d0, d1 = d1, d0
    return value


@kernel(inline="always")
def step_loss(loss, out, t, to, labels, lo, sw, swo, dout, m, n_out, l2):
    """The loss of a batch of m rows with outputs out (m * n_out values) and
    its gradient into dout; returns (loss, decay), decay = l2 / (the batch's
    total weight), the factor of the L2 penalty's gradient (0 when off).
    Targets and row weights as in _train_step."""
    if sw.shape[0] > 0:
        value, batch_weight = _weighted_loss(
            loss, out, t, to, labels, lo, sw, swo, dout, m, n_out
        )
    else:
        batch_weight = float(m)
        value = loss_backward_flat(
            loss.code, loss.hyper, out, t, to, labels, lo, dout, m, n_out
        )
    decay = l2 / batch_weight if l2 != 0.0 and batch_weight > 0.0 else 0.0
    return value, decay


@kernel(inline="always")
def step_penalty(theta, grad, w, size, decay, norms, layer):
    """After a layer's weight gradient grad[w:w + size] is computed: adds the
    L2 penalty's gradient decay * W to it and, when norms is not empty, its
    norm to norms[layer]; returns the penalty's share of the loss."""
    value = 0.0
    if decay != 0.0:
        value = _add_decay(theta, grad, w, size, decay)
    if norms.shape[0] > 0:
        norms[layer] += _norm(grad, w, size)
    return value


@kernel(inline="always")
def batch_penalty(theta, grad, layout, decay, norms):
    """step_penalty for every layer at once, on a gradient summed from
    chunks (parallel_step, the distributed step); returns the penalty."""
    value = 0.0
    for layer in range(layout.shape[0]):
        w, size = layout[layer, L_W], layout[layer, L_IN] * layout[layer, L_OUT]
        value += step_penalty(theta, grad, w, size, decay, norms, layer)
    return value


@kernel(inline="always")
def _add_decay(theta, grad, start, size, decay):
    """grad[start:start + size] += decay * theta[...]; returns the penalty
    0.5 * decay * sum(theta[...]**2) in float64."""
    T = grad.dtype.type
    d = T(decay)
    total = 0.0
    # Slices, so that the indices start at 0 and LLVM vectorizes (see
    # _train_epochs' batch gathering): the loop over theta[start + i] stayed
    # scalar, 4-9 % of a 20-64-64-1 step with scikit-learn's alpha.
    w, g = theta[start : start + size], grad[start : start + size]
    for i in range(size):
        v = w[i]
        g[i] += d * v
        total += np.float64(v) * np.float64(v)
    return 0.5 * decay * total


@kernel(inline="always")
def _norm(a, start, size):
    """The Euclidean norm of a[start:start + size], accumulated in float64."""
    total = 0.0
    part = a[start : start + size]  # a slice: see _add_decay
    for i in range(size):
        v = np.float64(part[i])
        total += v * v
    return np.sqrt(total)


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


@kernel(inline="always")
def _mix(z):
    """splitmix64's finalizer: a bijection of uint64 that scrambles bits."""
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@kernel
def shuffle_rows(order, key, epoch):
    """order[:] = the row order of ``epoch`` for shuffle ``key``: a
    Fisher-Yates shuffle of 0..n-1 whose i-th draw is the counter-based
    value mix(base + i * golden), base = mix(key ^ mix((epoch + 1) * golden))
    (splitmix64), reduced modulo i + 1 (a bias below n / 2**64). The same
    (key, epoch) always gives the same order, in any process, with no state
    carried between epochs.
    """
    n = order.shape[0]
    for i in range(n):
        order[i] = i
    base = _mix(np.uint64(key) ^ _mix(np.uint64(epoch + 1) * _GOLDEN))
    for i in range(n - 1, 0, -1):
        r = _mix(base + np.uint64(i) * _GOLDEN)
        j = np.int64(r % np.uint64(i + 1))
        order[i], order[j] = order[j], order[i]


def work_buffers(layout, rows, n_parameters, dtype, stats):
    """Work buffers for batches of up to ``rows`` rows: (hoff, h, z, d0, d1);
    see _train_step. (n_parameters and stats, the (k,) float64 array a
    kernel's caller reads figures from, are unused here: the work buffers of
    the parallel and distributed steps, which replace these, need them.)

    NumPy, not compiled: the kernels take their buffers from the caller, so
    that allocating them costs no compilation (the compiled allocation, with
    its call into the epoch loop, took 1.5 s of a first run's 7.5 s of
    compiling, 2026-12-07)."""
    sizes = np.asarray(layout[:, L_OUT], np.int64) * rows
    hoff = np.zeros(layout.shape[0] + 1, np.int64)
    np.cumsum(sizes, out=hoff[1:])
    widest = int(max(layout[:, L_IN].max(), layout[:, L_OUT].max()))
    keep_z = any(keeps_input(int(a)) for a in layout[:, L_ACT])
    h = np.empty(hoff[-1], dtype)
    z = np.empty(hoff[-1] if keep_z else 0, dtype)
    return hoff, h, z, np.empty(rows * widest, dtype), np.empty(rows * widest, dtype)


def chunk_buffers(layout, rows, n_parameters, dtype, stats, n_chunks, step=None):
    """Buffers for parallel_step, batches of up to ``rows`` rows cut into
    n_chunks chunks: (buffers, grads, values, weights): buffers the step's
    buffers for one chunk (``step``, a work_buffers, this module's by
    default), hoff as it is and every other array with one row per chunk;
    grads (n_chunks, n_parameters), values and weights (n_chunks,)."""
    size = (rows + n_chunks - 1) // n_chunks
    one = (step or work_buffers)(layout, size, n_parameters, dtype, stats)
    buffers = (one[0], *(np.empty((n_chunks, a.shape[0]), dtype) for a in one[1:]))
    return (
        buffers,
        np.empty((n_chunks, n_parameters), dtype),
        np.empty(n_chunks),
        np.empty(n_chunks),
    )


@kernel
def chunk_step(x, xo, t, to, labels, lo, sw, swo, start, rows, model, loss, buffers):
    """The step on rows [start, start + rows) of the batch at (x, xo),
    (t, to), (labels, lo), (sw, swo), with no penalty and no norms: one
    chunk of parallel_step, or one rank's share in distributed.py; buffers
    are the step's, for this chunk. Returns (loss, weight), its weight the
    row count or the sum of its sample weights; (0, 0) for no rows. A call
    of its own, so that Numba's parallel analysis sees a call, not the
    whole step. The step is ``_chunk_train_step``: this module's
    _train_step, or the one a generated module (special.py) binds."""
    if rows <= 0:
        return 0.0, 0.0
    layout = model.layout
    n_in, n_out = layout[0, L_IN], layout[layout.shape[0] - 1, L_OUT]
    xo, to, lo, swo = xo + start * n_in, to + start * n_out, lo + start, swo + start
    no_norms = np.zeros(0)
    value = _chunk_train_step(
        x, xo, t, to, labels, lo, sw, swo, rows, model, loss, 0.0, buffers, no_norms
    )
    weight = 0.0
    if sw.shape[0] > 0:
        for r in range(swo, swo + rows):
            weight += sw[r]
    else:
        weight = float(rows)
    return value, weight


#: The step chunk_step runs (generated modules bind their own).
_chunk_train_step = _train_step


@kernel(inline="always")
def chunk_of(buffers, c):
    """Chunk c's step buffers, from chunk_buffers' (hoff, h, z, d0, d1)
    with one row of h, z, d0 and d1 per chunk (generated modules whose step
    takes other buffers bind their own)."""
    hoff, h, z, d0, d1 = buffers
    return hoff, h[c], z[c], d0[c], d1[c]


@kernel(parallel=True)
def parallel_step(x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, chunks, norms):
    """The step on a batch of m rows cut into chunks of consecutive rows,
    one per thread, each with its own buffers and gradient; returns the
    batch's loss.

    Chunk c's loss L_c and gradient g_c are means over its weight W_c (its
    row count, or its sample weights' sum), so the batch's are
    L = sum_c (W_c / W) L_c and g = sum_c (W_c / W) g_c with W = sum_c W_c
    (a summed loss just adds up); then the L2 penalty and the gradient norms
    are applied once, to the whole batch's gradient, as _train_step does.
    Equal to _train_step up to the rounding of the sums.
    """
    theta, grad, layout, act_hyper = model
    buffers, grads, values, weights = chunks
    n_chunks = grads.shape[0]
    size = (m + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        values[c], weights[c] = chunk_step(
            x, xo, t, to, labels, lo, sw, swo, c * size, min(size, m - c * size),
            FusedModel(theta, grads[c], layout, act_hyper), loss,
            chunk_of(buffers, c),
        )  # fmt: skip
    total = 0.0
    for c in range(n_chunks):
        total += weights[c]
    if not loss_is_summed(loss.code, loss.hyper):
        for c in range(n_chunks):
            weights[c] = weights[c] / total if total > 0.0 else 0.0
    else:
        weights[:] = 1.0
    value = 0.0
    for c in range(n_chunks):
        value += weights[c] * values[c]
    n_parameters = theta.shape[0]
    block = 4096
    for start in prange((n_parameters + block - 1) // block):
        # Slices from 0 (vector loops, as in _train_epochs' gathering).
        out = grad[start * block : (start + 1) * block]
        w0 = weights[0]
        first = grads[0, start * block : (start + 1) * block]
        for i in range(out.shape[0]):
            out[i] = w0 * first[i]
        for c in range(1, n_chunks):
            wc = weights[c]
            part = grads[c, start * block : (start + 1) * block]
            for i in range(out.shape[0]):
                out[i] += wc * part[i]
    decay = l2 / total if l2 != 0.0 and total > 0.0 else 0.0
    return value + batch_penalty(theta, grad, layout, decay, norms)


def parallel_sources() -> str:
    """The sources of chunk_step and parallel_step, decorators included: a
    generated batch-parallel module repeats them around its own step
    (``_chunk_train_step``) and ``chunk_of`` (special.parallel)."""
    return "\n\n".join(
        inspect.getsource(f.py_func) for f in (chunk_step, parallel_step)
    )


@kernel(_nrt=False)
def _train_epochs(
    x,
    t,
    n_samples,
    n_in,
    labels,
    perms,
    model,
    loss,
    optimizer,
    batch_size,
    epoch_loss,
    sample_weight,
    l2,
    grad_norms,
    shuffle_key,
    first_epoch,
    buffers,
    scratch,
):
    """train_epochs without the checks, on the buffers run_epochs allocates
    (x and t: X and T flat): every length is trusted.

    Compiled without Numba's reference counting (``_nrt=False``), as it
    allocates nothing: every array view made here or in the step inlined
    into it (batch rows, layer slices) would otherwise update a count with
    an atomic instruction (``lock inc``/``lock dec``), and those took 72 %
    of XOR's step on an Intel Xeon (perf, 2026-12-07; 0.76 -> 0.50 us for
    the step alone). The arrays all belong to the caller, which outlives
    the call."""
    theta, grad, layout, act_hyper = model
    opt_code, opt_hyper, state, step = optimizer
    n_layers = layout.shape[0]
    n_out = layout[n_layers - 1, L_OUT]
    use_labels = loss_takes_labels(loss.code)
    summed = loss_is_summed(loss.code, loss.hyper)
    xbuf, tbuf, lbuf, wbuf, norms, order = scratch
    weighted = sample_weight.shape[0] > 0
    drawn = perms.shape[1] == 0 and shuffle_key >= 0
    shuffle = perms.shape[1] > 0 or drawn
    # The optimizer's state rows, viewed once (SGD has one: it is passed twice).
    state0, state1 = state[0], state[state.shape[0] - 1]

    for e in range(perms.shape[0]):
        total = 0.0
        for layer in range(norms.shape[0]):
            norms[layer] = 0.0
        steps = 0
        if drawn:
            shuffle_rows(order, shuffle_key, first_epoch + e)
            rows = order
        else:
            rows = perms[e]
        for s in range(0, n_samples, batch_size):
            m = min(batch_size, n_samples - s)
            if shuffle:
                for r in range(m):
                    i = rows[s + r]
                    # Row slices, whose indices start at 0: LLVM copies them
                    # with vector loads. Indexing x at i * n_in + q, which
                    # might be negative for all it knows, compiled to a
                    # gather with wraparound fix-ups: 12 % of a 20-64-64-1
                    # step at batch 200 (perf, Intel Xeon, 2026-12-07).
                    src, dst = x[i * n_in : (i + 1) * n_in], xbuf[r * n_in :]
                    for q in range(n_in):
                        dst[q] = src[q]
                    if use_labels:
                        lbuf[r] = labels[i]
                    else:
                        src, dst = t[i * n_out : (i + 1) * n_out], tbuf[r * n_out :]
                        for q in range(n_out):
                            dst[q] = src[q]
                    if weighted:
                        wbuf[r] = sample_weight[i]
                batch = (xbuf, 0, tbuf, 0, lbuf, 0, wbuf, 0)
            else:
                batch = (x, s * n_in, t, s * n_out, labels, s, sample_weight, s)
            xs, xo, ts, to, ls, lo, ws, wo = batch
            value = _train_step(
                xs, xo, ts, to, ls, lo, ws, wo, m, model, loss, l2, buffers, norms
            )
            if not np.isfinite(value):
                epoch_loss[e] = np.nan
                return step
            # Per-sample mean: a mean-reduced batch loss counts m times, a
            # summed one (0.5 * sum over the batch) once.
            total += value if summed else value * m
            step += 1
            steps += 1
            optimizer_step_flat(opt_code, opt_hyper, theta, grad, state0, state1, step)
        if norms.shape[0] > 0:
            for layer in range(n_layers):
                grad_norms[e, layer] = norms[layer] / steps
        # The epoch's last update can blow the weights up with every loss of
        # the epoch finite (each is taken before its update): that epoch
        # diverged, as the layer path finds by checking after each epoch.
        if not all_finite(theta):
            epoch_loss[e] = np.nan
            return step
        epoch_loss[e] = total / n_samples
    return step


def run_epochs(
    kernels,
    X,
    T,
    labels,
    perms,
    model,
    loss,
    optimizer,
    batch_size,
    epoch_loss,
    sample_weight,
    l2,
    grad_norms,
    shuffle_key,
    first_epoch,
    stats,
):
    """kernels._train_epochs on buffers from kernels.work_buffers and the
    batch scratch (arguments as train_epochs', checked); returns the step
    count. ``kernels`` is this module or a generated one (special.py)."""
    theta = model.theta
    dtype = theta.dtype
    n_samples, n_in = X.shape
    buffers = kernels.work_buffers(
        model.layout, batch_size, theta.shape[0], dtype, stats
    )
    drawn = perms.shape[1] == 0 and shuffle_key >= 0  # orders made in the loop
    # Shuffled batches are gathered into xbuf, tbuf, lbuf and wbuf;
    # unshuffled ones are read in place at the batch's offset.
    scratch = (
        np.empty(batch_size * n_in, dtype),
        np.empty(batch_size * T.shape[1], dtype),
        np.empty(batch_size, np.int64),
        np.empty(batch_size if sample_weight.shape[0] > 0 else 0, np.float64),
        np.empty(model.layout.shape[0] if grad_norms.shape[0] > 0 else 0),
        np.empty(n_samples if drawn else 0, np.int64),
    )
    args = (
        X.reshape(-1), T.reshape(-1), n_samples, n_in, labels, perms, model, loss,
        optimizer, batch_size, epoch_loss, sample_weight, l2, grad_norms,
        shuffle_key, first_epoch, buffers, scratch,
    )  # fmt: skip
    from . import special  # records compile times (special.kernel_status)

    return special.record_first_run(
        kernels, model.layout, loss.code, optimizer.code, dtype,
        lambda: kernels._train_epochs(*args),
    )  # fmt: skip


@kernel
def _loss_and_gradient(X, T, labels, model, loss, sample_weight, l2, chunk, buffers):
    """loss_and_gradient without the checks: every length is trusted;
    buffers from work_buffers for min(chunk, rows) rows."""
    theta, grad, layout, act_hyper = model
    n_samples = X.shape[0]
    n_in = X.shape[1]
    n_out = layout[layout.shape[0] - 1, L_OUT]
    summed = loss_is_summed(loss.code, loss.hyper)
    weighted = sample_weight.shape[0] > 0
    x, t = X.reshape(X.size), T.reshape(T.size)
    total_weight = 0.0
    if weighted:
        for i in range(n_samples):
            total_weight += sample_weight[i]
    else:
        total_weight = float(n_samples)
    acc = np.zeros(theta.shape[0], np.float64)
    no_norms = np.zeros(0)
    value = 0.0
    for s in range(0, n_samples, chunk):
        m = min(chunk, n_samples - s)
        v = _train_step(
            x,
            s * n_in,
            t,
            s * n_out,
            labels,
            s,
            sample_weight,
            s,
            m,
            model,
            loss,
            0.0,
            buffers,
            no_norms,
        )
        # Each chunk's loss and gradient are means over its weight: weigh
        # them by its share of the total (a summed loss just adds up).
        if summed:
            share = 1.0
        elif weighted:
            share = 0.0
            for i in range(s, s + m):
                share += sample_weight[i]
            share /= total_weight
        else:
            share = m / total_weight
        value += v * share
        for i in range(theta.shape[0]):
            acc[i] += share * grad[i]
    if l2 != 0.0:
        decay = l2 / total_weight
        penalty = 0.0
        for layer in range(layout.shape[0]):
            w = layout[layer, L_W]
            for i in range(w, w + layout[layer, L_IN] * layout[layer, L_OUT]):
                v = np.float64(theta[i])
                acc[i] += decay * v
                penalty += v * v
        value += 0.5 * decay * penalty
    return value, acc


#: The module-level names the source of _train_epochs uses besides np,
#: kernel and _train_step: what a module built on epoch_loop_source()
#: imports (a module may bring its own optimizer_step_flat: special.py's do;
#: work_buffers, for run_epochs, goes with _train_step).
EPOCH_LOOP_GLOBALS = (
    "L_OUT",
    "all_finite",
    "loss_is_summed",
    "loss_takes_labels",
    "optimizer_step_flat",
    "shuffle_rows",
)


@functools.cache
def epoch_loop_source() -> str:
    """The source of the fused epoch loop, _train_epochs, decorator
    included: special.py compiles it once more around a step specialized
    for one architecture (the names ``_train_step`` and
    ``optimizer_step_flat`` are resolved in that module, which brings its
    own ``work_buffers`` for run_epochs)."""
    return inspect.getsource(_train_epochs.py_func)


def _fail(problem: str) -> ValueError:
    return ValueError(f"train_epochs: {problem}")


def _check_array(value, name, ndim, dtype=None):
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"train_epochs: {name} must be a numpy array, got {type(value).__name__}"
        )
    if value.ndim != ndim:
        raise _fail(f"{name} must be {ndim}-D, got shape {value.shape}")
    if dtype is not None and value.dtype != dtype:
        raise TypeError(f"train_epochs: {name} must be {dtype}, got {value.dtype}")
    if not value.flags.c_contiguous:
        raise _fail(f"{name} must be C-contiguous")


def _check_model(model, dtype):
    if not isinstance(model, FusedModel):
        raise TypeError("train_epochs: model must be a FusedModel")
    theta, grad, layout, act_hyper = model
    _check_array(theta, "model.theta", 1, dtype)
    _check_array(grad, "model.grad", 1, dtype)
    _check_array(layout, "model.layout", 2, np.dtype(np.int64))
    _check_array(act_hyper, "model.act_hyper", 2, np.dtype(np.float64))
    if not (theta.flags.writeable and grad.flags.writeable):
        raise _fail("model.theta and model.grad must be writeable")
    if grad.shape != theta.shape:
        raise _fail(f"model.grad has shape {grad.shape}, theta {theta.shape}")
    if np.shares_memory(theta, grad):
        raise _fail("model.grad overlaps model.theta")
    n_layers = layout.shape[0]
    if n_layers == 0 or layout.shape[1] != LAYOUT_COLUMNS:
        raise _fail(f"model.layout must have shape (n_layers, 5), got {layout.shape}")
    if act_hyper.shape != (n_layers, ACT_MAX_HYPER):
        raise _fail(
            f"model.act_hyper must have shape ({n_layers}, {ACT_MAX_HYPER}), "
            f"got {act_hyper.shape}"
        )
    k, m = layout[:, L_IN], layout[:, L_OUT]
    if k.min() < 1 or m.min() < 1:
        raise _fail("model.layout widths must be positive")
    if np.any(k[1:] != m[:-1]):
        raise _fail(
            "model.layout widths do not chain (in_features of a layer "
            "must equal out_features of the one before)"
        )
    w, b = layout[:, L_W], layout[:, L_B]
    size = theta.shape[0]
    if min(w.min(), b.min()) < 0 or max((w + k * m).max(), (b + m).max()) > size:
        raise _fail(f"model.layout offsets fall outside theta ({size} values)")
    unknown = set(layout[:, L_ACT].tolist()) - set(ACT_CODES)
    if unknown:
        raise _fail(f"model.layout has unknown activation codes {sorted(unknown)}")


def _check_fused_args(X, T, labels, perms, model, loss, optimizer, batch_size, out):
    _check_data(X, T, labels, model, loss)
    n = X.shape[0]
    _check_optimizer(optimizer, model.theta)
    _check_array(perms, "perms", 2, np.dtype(np.int64))
    if perms.shape[1] not in (0, n):
        raise _fail(f"perms must have 0 or {n} columns, got {perms.shape[1]}")
    if perms.size and (perms.min() < 0 or perms.max() >= n):
        raise _fail(f"perms entries must be row indices in [0, {n})")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError("train_epochs: batch_size must be an integer")
    if batch_size < 1:
        raise _fail(f"batch_size must be positive, got {batch_size}")
    _check_array(out, "epoch_loss", 1, np.dtype(np.float64))
    if out.shape[0] != perms.shape[0]:
        raise _fail(
            f"epoch_loss has {out.shape[0]} entries for {perms.shape[0]} epochs"
        )


def _check_data(X, T, labels, model, loss):
    if not isinstance(X, np.ndarray) or X.dtype not in (np.float32, np.float64):
        got = X.dtype if isinstance(X, np.ndarray) else type(X).__name__
        raise TypeError(
            f"train_epochs: X must be a float32 or float64 array, got {got}"
        )
    dtype = X.dtype
    _check_array(X, "X", 2, dtype)
    _check_model(model, dtype)
    layout = model.layout
    n, n_out = X.shape[0], layout[-1, L_OUT]
    if n == 0:
        raise _fail("X has no rows")
    if X.shape[1] != layout[0, L_IN]:
        raise _fail(
            f"X has {X.shape[1]} columns, model.layout[0] takes {layout[0, L_IN]}"
        )
    if not isinstance(loss, FusedLoss):
        raise TypeError("train_epochs: loss must be a FusedLoss")
    _check_array(loss.hyper, "loss.hyper", 1, np.dtype(np.float64))
    if loss.code not in LOSS_HYPER:
        raise _fail(f"unknown loss code {loss.code!r}")
    names = LOSS_HYPER[loss.code]
    if loss.hyper.shape[0] != len(names):
        raise _fail(
            f"loss.hyper needs {len(names)} values {names}, got {loss.hyper.shape[0]}"
        )
    _check_array(T, "T", 2, dtype)
    _check_array(labels, "labels", 1, np.dtype(np.int64))
    if loss_takes_labels(loss.code):
        if labels.shape[0] != n:
            raise _fail(f"labels has {labels.shape[0]} entries for {n} rows of X")
        if labels.min() < 0 or labels.max() >= n_out:
            raise _fail(f"labels must lie in [0, {n_out})")
    elif T.shape != (n, n_out):
        raise _fail(f"T must have shape ({n}, {n_out}), got {T.shape}")


def _check_optimizer(optimizer, theta):
    if not isinstance(optimizer, FusedOptimizer):
        raise TypeError("train_epochs: optimizer must be a FusedOptimizer")
    code, hyper, state, step = optimizer
    if code not in OPT_SIGNATURES:
        raise _fail(f"unknown optimizer code {code!r}")
    hyper_names, state_names = OPT_SIGNATURES[code]
    _check_array(hyper, "optimizer.hyper", 1, np.dtype(np.float64))
    if hyper.shape[0] != len(hyper_names):
        raise _fail(
            f"optimizer.hyper needs {len(hyper_names)} values "
            f"{hyper_names}, got {hyper.shape[0]}"
        )
    _check_array(state, "optimizer.state", 2, theta.dtype)
    if state.shape != (len(state_names), theta.shape[0]):
        raise _fail(
            f"optimizer.state must have shape ({len(state_names)}, "
            f"{theta.shape[0]}), got {state.shape}"
        )
    if not state.flags.writeable or np.shares_memory(state, theta):
        raise _fail("optimizer.state must be writeable and apart from theta")
    if isinstance(step, bool) or not isinstance(step, int | np.integer) or step < 0:
        raise _fail(f"optimizer.step must be a count >= 0, got {step!r}")


def _check_extras(n, n_layers, n_epochs, sample_weight, l2, grad_norms, who):
    """sample_weight, l2 and grad_norms in the kernel's form (empty arrays
    for "none"), or TypeError/ValueError naming who."""
    if sample_weight is None:
        sample_weight = np.empty(0, np.float64)
    _check_array(sample_weight, "sample_weight", 1, np.dtype(np.float64))
    if sample_weight.shape[0] not in (0, n):
        raise ValueError(
            f"{who}: sample_weight has {sample_weight.shape[0]} entries for {n} rows"
        )
    if sample_weight.size and not (
        np.all(np.isfinite(sample_weight)) and sample_weight.min() >= 0
    ):
        raise ValueError(f"{who}: sample_weight must be finite and >= 0")
    if isinstance(l2, bool) or not isinstance(l2, int | float | np.floating):
        raise TypeError(f"{who}: l2 must be a float")
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError(f"{who}: l2 must be finite and >= 0, got {l2!r}")
    if grad_norms is None:
        grad_norms = np.empty((0, 0), np.float64)
    _check_array(grad_norms, "grad_norms", 2, np.dtype(np.float64))
    if grad_norms.size and grad_norms.shape != (n_epochs, n_layers):
        raise ValueError(
            f"{who}: grad_norms must have shape ({n_epochs}, {n_layers}), "
            f"got {grad_norms.shape}"
        )
    return sample_weight, float(l2), grad_norms


def train_epochs(
    X,
    T,
    labels,
    perms,
    model,
    loss,
    optimizer,
    batch_size,
    epoch_loss,
    sample_weight=None,
    l2=0.0,
    grad_norms=None,
    shuffle_key=-1,
    first_epoch=0,
    specialize=None,
    parallel=False,
    distributed=False,
    stats=None,
    sync_every=1,
):
    """Train for ``perms.shape[0]`` epochs; returns the optimizer step count.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features), float32 or float64
    T : ndarray of shape (n_samples, out_features), X's dtype
        MSE targets (any (0, 0) array of X's dtype for cross-entropy).
    labels : ndarray of shape (n_samples,), int64
        Cross-entropy class labels in [0, out_features) (any empty int64 array
        for MSE).
    perms : ndarray of shape (n_epochs, n_samples) or (n_epochs, 0), int64
        The row order of each epoch; an empty second axis means the orders
        are drawn here from shuffle_key, or no shuffling when it is -1.
    model : FusedModel; theta updated in place, grad is scratch.
    loss : FusedLoss
    optimizer : FusedOptimizer; its state is updated in place.
    batch_size : int; the last batch of an epoch may be shorter.
    epoch_loss : ndarray of shape (n_epochs,), float64; overwritten with the
        training loss of each epoch per sample: batch losses (each computed
        before that batch's update) weighted by batch size, divided by
        n_samples; for a summed loss, the summed batch losses over n_samples.

    sample_weight : ndarray of shape (n_samples,), float64, or None
        Row weights >= 0: each batch's loss is sum(w_i * l_i) / sum(w_i)
        (scikit-learn's weighted mean) and its gradient follows.
    l2 : float >= 0
        scikit-learn's alpha: each batch adds 0.5 * l2 * sum(||W||**2) / (the
        batch's total weight) over the weight matrices (not biases) to its
        loss, and the gradient of that to the weights'.
    grad_norms : ndarray of shape (n_epochs, n_layers), float64, or None
        When given, overwritten with each epoch's mean over steps of the
        Frobenius norm of every layer's weight gradient (penalty included).
        None (or an empty array) costs nothing.
    shuffle_key, first_epoch : int
        With perms of 0 columns and shuffle_key in [0, 2**63), epoch e (from
        0) is trained in the order :func:`shuffle_rows` gives for
        (shuffle_key, first_epoch + e), drawn inside the kernel.
    specialize : bool or None
        True runs a kernel generated for this architecture (special.py), False
        the generic one; None picks the specialized kernel where
        ``special.eligible`` says it pays, unless the environment variable
        FASTBP_SPECIALIZE is "0". Both compute the same, to rounding.
    parallel : bool
        True cuts each batch into chunks of consecutive rows, one per Numba
        thread (of at least _config.PARALLEL_MIN_ROWS rows), trained at
        once, their gradients summed once per step
        (parallel_step; BLAS runs on one thread meanwhile). False, the
        default, trains the whole batch on one thread and lets BLAS thread
        each product: on the 2-core reference VM that was as fast or faster
        at every benchmark size (0.7-1.0x for parallel; README,
        "Threads"). The results differ only by the rounding of the sums.
    distributed : False, True or "sharded"
        Data-parallel over MPI (kernels/distributed.py, the ``mpi`` extra):
        this process trains its share of every batch and the gradients are
        all-reduced over MPI_COMM_WORLD once per step. True: every process
        makes the same call with the same data and weights, and trains rows
        [r m / N, (r + 1) m / N) of each batch of m rows. "sharded": each
        process holds its own rows (its shard) and trains every row of its
        batches; all processes must run the same number of steps.
    sync_every : int >= 1
        With distributed: 1 all-reduces the gradients every step; K > 1 is
        local SGD, each process updating its own weights from its own rows
        and the weights averaged over the processes every K optimizer steps
        (K must divide the steps of an epoch, counted from step 0).
    stats : ndarray of shape (1,), float64, or None
        When given, stats[0] gains the seconds spent in all-reduce
        (distributed); unchanged otherwise.

    Training stops early at the first non-finite batch loss; that epoch's
    entry is then NaN and later entries are not written.

    Raises
    ------
    TypeError, ValueError
        Any argument of the wrong type, dtype, shape or range, named in the
        message; checked here, before compiled code runs.
    """
    _check_fused_args(
        X, T, labels, perms, model, loss, optimizer, batch_size, epoch_loss
    )
    extras = _check_extras(
        X.shape[0],
        model.layout.shape[0],
        perms.shape[0],
        sample_weight,
        l2,
        grad_norms,
        "train_epochs",
    )
    for name, value in (("shuffle_key", shuffle_key), ("first_epoch", first_epoch)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise TypeError(f"train_epochs: {name} must be an integer")
    if not (-1 <= shuffle_key < 2**63) or first_epoch < 0:
        raise _fail("shuffle_key must be -1 or in [0, 2**63), first_epoch >= 0")
    if stats is None:
        stats = np.zeros(1)
    _check_array(stats, "stats", 1, np.dtype(np.float64))
    if stats.shape[0] < 1:
        raise _fail("stats must have at least one entry")
    kernels = sys.modules[__name__]
    if distributed:
        from . import special

        if isinstance(sync_every, bool) or not isinstance(sync_every, int):
            raise TypeError("train_epochs: sync_every must be an integer")
        if sync_every < 1:
            raise _fail(f"sync_every must be >= 1, got {sync_every}")
        kernels = special.distributed(distributed == "sharded", sync_every)
    elif parallel:
        from . import special  # generates modules that import this one

        chunks = min(numba.get_num_threads(), int(batch_size) // PARALLEL_MIN_ROWS)
        chunks = max(1, chunks)
        if specialize or (specialize is None and specialize_by_default()):
            if specialize or special.eligible(model.layout):
                weighted = extras[0].shape[0] > 0
                kernels = special.specialized(
                    model.layout, int(loss.code), int(optimizer.code), weighted, chunks
                )
        if kernels is sys.modules[__name__]:
            kernels = special.parallel(chunks)
    elif specialize or (specialize is None and specialize_by_default()):
        from . import special

        if specialize or special.eligible(model.layout):
            weighted = extras[0].shape[0] > 0
            kernels = special.specialized(
                model.layout, int(loss.code), int(optimizer.code), weighted
            )
    args = (X, T, labels, perms, model, loss, optimizer, int(batch_size), epoch_loss)
    tail = (*extras, int(shuffle_key), int(first_epoch), stats)
    if distributed or not parallel:
        return run_epochs(kernels, *args, *tail)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):  # the threads are Numba's
        return run_epochs(kernels, *args, *tail)


def specialize_by_default() -> bool:
    """False when the environment sets FASTBP_SPECIALIZE=0: every
    architecture then runs the generic kernel (no per-architecture compile;
    the test suite runs so, bar the tests that ask for specialization)."""
    return os.environ.get("FASTBP_SPECIALIZE", "1") != "0"


def loss_and_gradient(
    X, T, labels, model, loss, sample_weight=None, l2=0.0, check=True
):
    """The loss over the whole data set and its gradient, for full-batch
    solvers such as L-BFGS; the model is not changed.

    Arguments as :func:`train_epochs`. Returns (L, g): L the (weighted) mean
    loss over all rows plus 0.5 * l2 * sum(||W||**2) / (the total weight),
    g an (n_parameters,) float64 array, dL/dtheta. Rows are processed in
    chunks of at most 4096, so memory does not grow with the data; model.grad
    is used as scratch. check=False skips the argument checks, for a solver
    that calls it many times with arguments it checked once (the first call).
    """
    chunk = 4096
    buffers = work_buffers(
        model.layout, min(chunk, X.shape[0]), model.theta.shape[0], X.dtype, None
    )
    if not check:  # the caller checked these arguments once already
        if sample_weight is None:
            sample_weight = np.empty(0, np.float64)
        return _loss_and_gradient(
            X, T, labels, model, loss, sample_weight, float(l2), chunk, buffers
        )
    _check_data(X, T, labels, model, loss)
    extras = _check_extras(
        X.shape[0],
        model.layout.shape[0],
        0,
        sample_weight,
        l2,
        None,
        "loss_and_gradient",
    )
    return _loss_and_gradient(
        X, T, labels, model, loss, extras[0], extras[1], chunk, buffers
    )
