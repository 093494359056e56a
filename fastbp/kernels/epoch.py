"""The fused training path: whole epochs of mini-batch SGD/Adam in one njit call.

Forward pass, loss, backward pass and optimizer update of every mini-batch run
inside one compiled function, so no Python executes per step. It handles a
Sequential MLP of any depth, described by a small integer table instead of
Python objects, so one compiled version serves every architecture:

``layout`` : int64 array of shape (n_layers, 5), one row per Linear layer:
    (in_features, out_features, weight offset, bias offset, activation code).
    The weight of layer l is ``theta[w:w + in*out].reshape(in, out)`` and its
    bias ``theta[b:b + out]``; the activation code (``activations.ACT_*``) says
    what follows that Linear.

All parameters live in one flat vector ``theta`` (and gradients in ``grad``),
exactly as ``fastbp.Sequential`` stores them, so the optimizer update is one
loop over the whole model and the fused path and the layer-by-layer path do
the same arithmetic. Work buffers are allocated once per call, never per step.
"""

import numpy as np

from ._jit import kernel
from .activations import ACT_IDENTITY, _activate_backward
from .dense import _dense_backward_input, _dense_backward_params, _dense_forward
from .losses import _mse_backward, _softmax_cross_entropy_backward
from .optim import _adam, _sgd

__all__ = ["train_epochs"]

LOSS_MSE_MEAN = 0
LOSS_MSE_SUM = 1
LOSS_CROSS_ENTROPY = 2

OPT_SGD = 0
OPT_ADAM = 1

# Positions in the float64 ``hyper`` vector of optimizer settings.
H_LR, H_MOMENTUM, H_WEIGHT_DECAY, H_NESTEROV, H_BETA1, H_BETA2, H_EPS = range(7)

# Columns of ``layout``.
L_IN, L_OUT, L_W, L_B, L_ACT = range(5)


@kernel
def _train_step(
    x, xo, t, to, labels, lo, m, theta, grad, layout, loss_kind, h, hoff, d0, d1
):
    """Forward, loss and backward for one batch of m rows; returns its loss.

    The batch is m rows of the flat input x from offset xo, with float targets
    at t[to:] (MSE) or int64 labels at labels[lo:] (cross-entropy). Layer l
    writes its activations to h at hoff[l]; gradients flow through the
    ping-pong buffers d0 and d1. Every buffer is flat and addressed by offset,
    so no array view is made per step (see dense.py).
    """
    n_layers = layout.shape[0]
    a, ao = x, xo
    for layer in range(n_layers):
        k, n_out = layout[layer, L_IN], layout[layer, L_OUT]
        w, act = layout[layer, L_W], layout[layer, L_ACT]
        b = layout[layer, L_B]
        _dense_forward(
            a, ao, theta, w, theta[b : b + n_out], h, hoff[layer], m, k, n_out, act
        )
        a, ao = h, hoff[layer]

    n_out = layout[n_layers - 1, L_OUT]
    size = m * n_out
    out, dout = h[ao : ao + size], d0[:size]
    if loss_kind == LOSS_CROSS_ENTROPY:
        loss = _softmax_cross_entropy_backward(out, labels[lo : lo + m], dout, m, n_out)
    else:
        loss = _mse_backward(out, t[to : to + size], dout, loss_kind == LOSS_MSE_MEAN)

    for layer in range(n_layers - 1, -1, -1):
        k, n_out = layout[layer, L_IN], layout[layer, L_OUT]
        w, act = layout[layer, L_W], layout[layer, L_ACT]
        if act != ACT_IDENTITY:
            # dZ = dH * act'(Z), from the output H, in place in d0.
            size = m * n_out
            hl, dl = h[hoff[layer] : hoff[layer] + size], d0[:size]
            _activate_backward(hl, dl, dl, act)
        if layer == 0:
            a, ao = x, xo
        else:
            a, ao = h, hoff[layer - 1]
        b = layout[layer, L_B]
        _dense_backward_params(a, ao, d0, 0, grad, w, grad[b : b + n_out], m, k, n_out)
        if layer > 0:
            _dense_backward_input(d0, 0, theta, w, d1, 0, m, k, n_out)
            d0, d1 = d1, d0
    return loss


@kernel
def _check_epoch_inputs(X, T, labels, perms, theta, grad, layout, use_labels):
    """ValueError unless every index the epoch loop computes stays in bounds."""
    n_samples = X.shape[0]
    n_layers = layout.shape[0]
    if n_layers == 0 or layout.shape[1] != 5 or X.shape[1] != layout[0, L_IN]:
        raise ValueError("train_epochs: X.shape[1] must equal layout[0, L_IN]")
    n_out = layout[n_layers - 1, L_OUT]
    for layer in range(n_layers):
        k, m = layout[layer, L_IN], layout[layer, L_OUT]
        if k < 1 or m < 1 or (layer > 0 and k != layout[layer - 1, L_OUT]):
            raise ValueError("train_epochs: layer widths do not chain")
        w, b = layout[layer, L_W], layout[layer, L_B]
        if min(w, b) < 0 or max(w + k * m, b + m) > theta.shape[0]:
            raise ValueError("train_epochs: layout offsets outside theta")
    if grad.shape[0] != theta.shape[0]:
        raise ValueError("train_epochs: grad must have the shape of theta")
    if use_labels:
        if labels.shape[0] != n_samples:
            raise ValueError("train_epochs: labels must have one entry per row of X")
        for i in range(n_samples):
            if labels[i] < 0 or labels[i] >= n_out:
                raise ValueError("train_epochs: labels must lie in [0, out_features)")
    elif T.shape[0] != n_samples or T.shape[1] != n_out:
        raise ValueError("train_epochs: T must have shape (n_samples, out_features)")
    if perms.shape[1] != 0:
        if perms.shape[1] != n_samples:
            raise ValueError("train_epochs: perms must have n_samples columns")
        for e in range(perms.shape[0]):
            for i in range(n_samples):
                if perms[e, i] < 0 or perms[e, i] >= n_samples:
                    raise ValueError("train_epochs: perms entries must be row indices")


@kernel
def train_epochs(
    X,
    T,
    labels,
    perms,
    theta,
    grad,
    layout,
    loss_kind,
    optimizer,
    batch_size,
    epoch_loss,
):
    """Train for ``perms.shape[0]`` epochs; returns the Adam step count reached.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features), float32 or float64
    T : ndarray of shape (n_samples, out_features), X's dtype
        MSE targets (any (0, 0) array of X's dtype for cross-entropy).
    labels : ndarray of shape (n_samples,), int64
        Cross-entropy class labels in [0, out_features) (any empty int64 array
        for MSE).
    perms : ndarray of shape (n_epochs, n_samples) or (n_epochs, 0), int64
        The row order of each epoch; an empty second axis means no shuffling.
    theta, grad : ndarray of shape (n_parameters,), X's dtype
        All weights and biases (see the module docstring); theta is updated
        in place, grad is scratch.
    layout : ndarray of shape (n_layers, 5), int64; see the module docstring.
    loss_kind : int, LOSS_MSE_MEAN, LOSS_MSE_SUM or LOSS_CROSS_ENTROPY.
    optimizer : tuple (kind, hyper, state1, state2, step)
        kind OPT_SGD or OPT_ADAM; hyper a float64 vector indexed by the H_*
        constants; state1/state2 the momentum buffer (SGD) or Adam's m and v,
        shape of theta, updated in place; step the number of Adam steps done.
    batch_size : int; the last batch of an epoch may be shorter.
    epoch_loss : ndarray of shape (n_epochs,), float64; overwritten with the
        training loss of each epoch per sample: batch losses (each computed
        before that batch's update) weighted by batch size, divided by
        n_samples; with LOSS_MSE_SUM, the summed batch losses over n_samples.

    Training stops early at the first non-finite batch loss; that epoch's
    entry is then NaN and later entries are not written.
    """
    kind, hyper, state1, state2, step = optimizer
    n_samples, n_in = X.shape
    n_layers = layout.shape[0]
    n_out = layout[n_layers - 1, L_OUT]
    use_labels = loss_kind == LOSS_CROSS_ENTROPY
    _check_epoch_inputs(X, T, labels, perms, theta, grad, layout, use_labels)
    widest = max(layout[:, L_IN].max(), layout[:, L_OUT].max())
    hoff = np.zeros(n_layers + 1, np.int64)
    for layer in range(n_layers):
        hoff[layer + 1] = hoff[layer] + batch_size * layout[layer, L_OUT]
    dtype = theta.dtype
    h = np.empty(hoff[n_layers], dtype)
    d0 = np.empty(batch_size * widest, dtype)
    d1 = np.empty(batch_size * widest, dtype)
    x, t = X.reshape(X.size), T.reshape(T.size)
    # Shuffled batches are gathered into these; unshuffled ones are read in
    # place from x, t and labels at the batch's offset.
    xbuf = np.empty(batch_size * n_in, dtype)
    tbuf = np.empty(batch_size * T.shape[1], dtype)
    lbuf = np.empty(batch_size, np.int64)
    shuffle = perms.shape[1] > 0
    lr, wd = hyper[H_LR], hyper[H_WEIGHT_DECAY]

    for e in range(perms.shape[0]):
        total = 0.0
        for s in range(0, n_samples, batch_size):
            m = min(batch_size, n_samples - s)
            if shuffle:
                for r in range(m):
                    i = perms[e, s + r]
                    for q in range(n_in):
                        xbuf[r * n_in + q] = x[i * n_in + q]
                    if use_labels:
                        lbuf[r] = labels[i]
                    else:
                        for q in range(n_out):
                            tbuf[r * n_out + q] = t[i * n_out + q]
                batch = (xbuf, 0, tbuf, 0, lbuf, 0)
            else:
                batch = (x, s * n_in, t, s * n_out, labels, s)
            xs, xo, ts, to, ls, lo = batch
            loss = _train_step(
                xs,
                xo,
                ts,
                to,
                ls,
                lo,
                m,
                theta,
                grad,
                layout,
                loss_kind,
                h,
                hoff,
                d0,
                d1,
            )
            if not np.isfinite(loss):
                epoch_loss[e] = np.nan
                return step
            # Per-sample mean: a mean-reduced batch loss counts m times, a
            # summed one (0.5 * sum over the batch) once.
            total += loss if loss_kind == LOSS_MSE_SUM else loss * m
            if kind == OPT_ADAM:
                step += 1
                _adam(
                    theta,
                    grad,
                    state1,
                    state2,
                    lr,
                    hyper[H_BETA1],
                    hyper[H_BETA2],
                    hyper[H_EPS],
                    wd,
                    step,
                )
            else:
                _sgd(
                    theta,
                    grad,
                    state1,
                    lr,
                    hyper[H_MOMENTUM],
                    wd,
                    hyper[H_NESTEROV] != 0.0,
                )
        epoch_loss[e] = total / n_samples
    return step
