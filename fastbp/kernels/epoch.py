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
from .losses import mse_backward, softmax_cross_entropy_backward
from .optim import adam_update, sgd_update

__all__ = ["train_epochs"]

LOSS_MSE_MEAN = 0
LOSS_MSE_SUM = 1
LOSS_CROSS_ENTROPY = 2

OPT_SGD = 0
OPT_ADAM = 1

# Positions in the float64 ``hyper`` vector of optimizer settings.
H_LR, H_MOMENTUM, H_WEIGHT_DECAY, H_NESTEROV, H_BETA1, H_BETA2, H_EPS = range(7)


@kernel
def _matrix(flat, offset, rows, cols):
    """A (rows, cols) C-contiguous view of flat[offset:offset + rows * cols]."""
    return flat[offset : offset + rows * cols].reshape((rows, cols))


@kernel
def _train_step(xb, tb, lb, theta, grad, layout, loss_kind, hwork, hoff, d0, d1):
    """Forward, loss and backward for one batch; returns the batch loss.

    xb: (m, in) input rows; tb: (m, out) float targets (MSE) or lb: (m,) int64
    labels (cross-entropy). Activations of layer l go to hwork at hoff[l];
    gradients flow through the ping-pong buffers d0 and d1.
    """
    m = xb.shape[0]
    n_layers = layout.shape[0]
    A = xb
    for layer in range(n_layers):
        n_in, n_out, w, b, act = layout[layer]
        H = _matrix(hwork, hoff[layer], m, n_out)
        _dense_forward(A, _matrix(theta, w, n_in, n_out), theta[b : b + n_out], H, act)
        A = H

    n_out = layout[n_layers - 1, 1]
    D = _matrix(d0, 0, m, n_out)
    if loss_kind == LOSS_CROSS_ENTROPY:
        loss = softmax_cross_entropy_backward(A, lb, D)
    else:
        loss = mse_backward(A, tb, loss_kind == LOSS_MSE_MEAN, D)

    for layer in range(n_layers - 1, -1, -1):
        n_in, n_out, w, b, act = layout[layer]
        H = _matrix(hwork, hoff[layer], m, n_out)
        if act != ACT_IDENTITY:
            # dZ = dH * act'(Z), from the output H, in place in D.
            D1 = D.reshape(D.size)
            _activate_backward(H.reshape(H.size), D1, D1, act)
        A = xb if layer == 0 else _matrix(hwork, hoff[layer - 1], m, n_in)
        _dense_backward_params(A, D, _matrix(grad, w, n_in, n_out), grad[b : b + n_out])
        if layer > 0:
            D_prev = _matrix(d1, 0, m, n_in)
            _dense_backward_input(D, _matrix(theta, w, n_in, n_out), D_prev)
            D = D_prev
            d0, d1 = d1, d0
    return loss


@kernel
def train_epochs(
    X, T, labels, perms, theta, grad, layout, loss_kind, optimizer, batch_size,
    epoch_loss,
):  # fmt: skip
    """Train for ``perms.shape[0]`` epochs; returns the Adam step count reached.

    Parameters
    ----------
    X : ndarray of shape (n_samples, in_features), float32 or float64
    T : ndarray of shape (n_samples, out_features), X's dtype
        MSE targets (any (0, 0) array of X's dtype for cross-entropy).
    labels : ndarray of shape (n_samples,), int64
        Cross-entropy class labels (any empty int64 array for MSE).
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
    n_samples = X.shape[0]
    n_layers = layout.shape[0]
    widest = max(layout[:, 0].max(), layout[:, 1].max())
    hoff = np.zeros(n_layers + 1, np.int64)
    for layer in range(n_layers):
        hoff[layer + 1] = hoff[layer] + batch_size * layout[layer, 1]
    dtype = theta.dtype
    hwork = np.empty(hoff[n_layers], dtype)
    d0 = np.empty(batch_size * widest, dtype)
    d1 = np.empty(batch_size * widest, dtype)
    shuffle = perms.shape[1] > 0
    xbuf = np.empty((batch_size, X.shape[1]), dtype)
    tbuf = np.empty((batch_size, T.shape[1]), dtype)
    lbuf = np.empty(batch_size, np.int64)
    use_labels = loss_kind == LOSS_CROSS_ENTROPY

    for e in range(perms.shape[0]):
        total = 0.0
        for s in range(0, n_samples, batch_size):
            m = min(batch_size, n_samples - s)
            if shuffle:
                for r in range(m):
                    i = perms[e, s + r]
                    for k in range(X.shape[1]):
                        xbuf[r, k] = X[i, k]
                    if use_labels:
                        lbuf[r] = labels[i]
                    else:
                        for j in range(T.shape[1]):
                            tbuf[r, j] = T[i, j]
                xb, tb, lb = xbuf[:m], tbuf[:m], lbuf[:m]
            else:
                xb = X[s : s + m]
                tb = T[s : s + m] if not use_labels else tbuf[:0]
                lb = labels[s : s + m] if use_labels else lbuf[:0]
            loss = _train_step(xb, tb, lb, theta, grad, layout, loss_kind, hwork,
                               hoff, d0, d1)  # fmt: skip
            if not np.isfinite(loss):
                epoch_loss[e] = np.nan
                return step
            # Per-sample mean: a mean-reduced batch loss counts m times, a
            # summed one (0.5 * sum over the batch) once.
            total += loss if loss_kind == LOSS_MSE_SUM else loss * m
            if kind == OPT_ADAM:
                step += 1
                adam_update(theta, grad, state1, state2, hyper[H_LR], hyper[H_BETA1],
                            hyper[H_BETA2], hyper[H_EPS], hyper[H_WEIGHT_DECAY],
                            step)  # fmt: skip
            else:
                sgd_update(theta, grad, state1, hyper[H_LR], hyper[H_MOMENTUM],
                           hyper[H_WEIGHT_DECAY], hyper[H_NESTEROV] != 0.0)  # fmt: skip
        epoch_loss[e] = total / n_samples
    return step
