"""Data-parallel training over MPI, inside the fused kernel.

Every process (rank) holds the whole model and the same data, draws the
same row order, and trains on its share of each global batch: rank r of N
takes rows [r m / N, (r + 1) m / N) of a batch of m rows (uneven shares
allowed; a rank may get none). After its forward and backward pass the
gradients are summed over the ranks by one MPI all-reduce per step, from
inside the compiled loop (numba-mpi), so no Python runs per step:

    send = [W_r g_r, W_r L_r, W_r]   ->  allreduce(SUM)  ->  recv
    g = recv[:P] / W,  L = recv[P] / W,  W = recv[P + 1] = sum_r W_r

with g_r and L_r the mean gradient and loss over rank r's rows and W_r
their weight (row count or sample-weight sum); a summed loss adds g_r and
L_r as they are. This is parallel_step's rule (epoch.py) with processes
for threads, so every rank ends each step with the gradient of the whole
batch, and the same weights as one process up to the rounding of the sums.
The send and receive buffers are separate arrays (an in-place all-reduce
is not used), of the model's dtype: float32 goes over the wire as pairs in
complex64 (numba-mpi has no float32 type; a complex sum adds real and
imaginary parts apart, so the sums are those of float32).

Local SGD (``sync_every`` K > 1) trades exactness for fewer messages: each
rank updates its own copy of the weights from its own rows' gradient
(local_step), and every K steps, K dividing the steps of an epoch, the
weights are averaged over the ranks (average_weights): one all-reduce per K
steps. The ranks agree again at every average and at every epoch's end.

numba-mpi's functions call MPI through pointers found at run time, which
Numba cannot cache: the distributed kernel compiles in every process (a few
seconds), unlike the others. This module imports numba_mpi, the ``mpi``
extra; nothing imports it unless distributed training is asked for.
"""

import numba_mpi as mpi
import numpy as np
from numba.core import types
from numba.extending import overload

from ._jit import uncached_kernel
from .epoch import FusedModel, batch_penalty, chunk_step, work_buffers
from .losses import loss_is_summed

__all__ = [
    "mpi_buffers",
    "mpi_shard_buffers",
    "mpi_step",
    "mpi_shard_step",
    "local_step",
    "local_shard_step",
    "average_weights",
]

#: stats[ALLREDUCE_SECONDS] accumulates the seconds spent in all-reduce.
ALLREDUCE_SECONDS = 0


def allreduce_sum(send, recv):
    """Inside a kernel: recv = the sum over the ranks of send (float32 or
    float64 arrays of even length)."""


@overload(allreduce_sum)
def _allreduce_sum(send, recv):
    if send.dtype == types.float32:

        def pairs(send, recv):
            mpi.allreduce(
                send.view(np.complex64), recv.view(np.complex64), mpi.Operator.SUM
            )

        return pairs

    def plain(send, recv):
        mpi.allreduce(send, recv, mpi.Operator.SUM)

    return plain


@uncached_kernel
def mpi_buffers(layout, rows, n_parameters, dtype, stats):
    """Buffers of mpi_step: work_buffers' for this rank's share of a batch of
    up to ``rows`` rows, the send and receive vectors (n_parameters + 2,
    rounded up to even) and stats (where the all-reduce time is added)."""
    share = (rows + mpi.size() - 1) // mpi.size()
    return _reduced_buffers(layout, share, n_parameters, dtype, stats)


@uncached_kernel
def mpi_shard_buffers(layout, rows, n_parameters, dtype, stats):
    """mpi_buffers for mpi_shard_step, which trains all ``rows`` rows here."""
    return _reduced_buffers(layout, rows, n_parameters, dtype, stats)


@uncached_kernel(inline="always")
def _reduced_buffers(layout, rows, n_parameters, dtype, stats):
    hoff, h, z, d0, d1 = work_buffers(layout, rows, n_parameters, dtype, stats)
    length = n_parameters + 2 + n_parameters % 2  # even: see allreduce_sum
    send = np.zeros(length, dtype)
    recv = np.zeros(length, dtype)
    return hoff, h, z, d0, d1, send, recv, stats


@uncached_kernel(inline="always")
def my_share(m):
    """(first row, row count) of this rank's share of a batch of m rows:
    rows [r m / N, (r + 1) m / N) for rank r of N."""
    rank, size = mpi.rank(), mpi.size()
    start = (rank * m) // size
    return start, ((rank + 1) * m) // size - start


@uncached_kernel
def mpi_step(x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms):
    """_train_step for one global batch of m rows shared by the ranks; every
    rank returns the batch's loss and leaves the batch's gradient in
    model.grad (see the module docstring)."""
    start, rows = my_share(m)
    return _reduced_step(
        x, xo, t, to, labels, lo, sw, swo, start, rows, model, loss, l2, buffers, norms
    )


@uncached_kernel
def mpi_shard_step(
    x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms
):
    """mpi_step for sharded data: the m rows are this rank's own batch (from
    its shard), all of them trained here; the gradient is that of the union
    of the ranks' batches."""
    return _reduced_step(
        x, xo, t, to, labels, lo, sw, swo, 0, m, model, loss, l2, buffers, norms
    )


@uncached_kernel(inline="always")
def _reduced_step(
    x, xo, t, to, labels, lo, sw, swo, start, rows, model, loss, l2, buffers, norms
):
    """Forward and backward on rows [start, start + rows) of the batch here,
    then the all-reduce and the penalty; returns the loss of all ranks'
    rows."""
    theta, grad, layout, act_hyper = model
    hoff, h, z, d0, d1, send, recv, stats = buffers
    value, weight = chunk_step(
        x, xo, t, to, labels, lo, sw, swo, start, rows,
        FusedModel(theta, grad, layout, act_hyper), loss, h, hoff, z, d0, d1,
    )  # fmt: skip
    n_parameters = theta.shape[0]
    summed = loss_is_summed(loss.code, loss.hyper)
    scale = 1.0 if summed else weight
    if rows == 0:
        send[:] = 0.0
    else:
        s = send.dtype.type(scale)
        for i in range(n_parameters):
            send[i] = s * grad[i]
        send[n_parameters] = scale * value
        send[n_parameters + 1] = weight
    start_time = mpi.wtime()
    allreduce_sum(send, recv)
    stats[ALLREDUCE_SECONDS] += mpi.wtime() - start_time
    total = np.float64(recv[n_parameters + 1])
    divide = 1.0 if summed else total
    inverse = recv.dtype.type(1.0 / divide if divide > 0.0 else 0.0)
    for i in range(n_parameters):
        grad[i] = recv[i] * inverse
    value = np.float64(recv[n_parameters]) / divide if divide > 0.0 else 0.0
    decay = l2 / total if l2 != 0.0 and total > 0.0 else 0.0
    return value + batch_penalty(theta, grad, layout, decay, norms)


@uncached_kernel
def local_step(x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms):
    """Local SGD (--sync-every): _train_step on this rank's share of the
    batch (split as mpi_step does), with no communication; the weights are
    averaged every K steps instead (average_weights). A non-finite loss
    makes this rank's gradient NaN, so that the next average spreads it to
    every rank and all stop at the same step (one stopping alone would leave
    the others waiting in the all-reduce); 0 is returned meanwhile."""
    start, rows = my_share(m)
    return _local(
        x, xo, t, to, labels, lo, sw, swo, start, rows, model, loss, l2, buffers, norms
    )


@uncached_kernel
def local_shard_step(
    x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms
):
    """local_step for sharded data: all m rows are this rank's batch."""
    return _local(
        x, xo, t, to, labels, lo, sw, swo, 0, m, model, loss, l2, buffers, norms
    )


@uncached_kernel(inline="always")
def _local(
    x, xo, t, to, labels, lo, sw, swo, start, rows, model, loss, l2, buffers, norms
):
    theta, grad, layout, act_hyper = model
    hoff, h, z, d0, d1, send, recv, stats = buffers
    value, weight = chunk_step(
        x, xo, t, to, labels, lo, sw, swo, start, rows,
        FusedModel(theta, grad, layout, act_hyper), loss, h, hoff, z, d0, d1,
    )  # fmt: skip
    if rows == 0:
        grad[:] = 0.0
    decay = l2 / weight if l2 != 0.0 and weight > 0.0 else 0.0
    value += batch_penalty(theta, grad, layout, decay, norms)
    if not np.isfinite(value):
        grad[:] = np.nan
        return 0.0
    return value


@uncached_kernel
def average_weights(theta, send, recv):
    """theta = the mean of theta over the ranks (send and recv: scratch of
    theta's dtype and even length >= theta's)."""
    n = theta.shape[0]
    send[:n] = theta
    allreduce_sum(send, recv)
    inverse = theta.dtype.type(1.0 / mpi.size())
    for i in range(n):
        theta[i] = recv[i] * inverse
