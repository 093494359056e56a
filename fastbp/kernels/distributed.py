"""Data-parallel training over MPI, inside the fused kernel.

Every process (rank) holds the whole model and the same data, draws the
same row order, and trains on its share of each global batch: rank r of N
takes rows [r m / N, (r + 1) m / N) of a batch of m rows (uneven shares
allowed; a rank may get none). After its forward and backward pass the
gradients are summed over the ranks by one MPI all-reduce per step, from
inside the compiled loop, so no Python runs per step:

    send = [W_r g_r, W_r L_r, W_r]   ->  allreduce(SUM)  ->  recv
    g = recv[:P] / W,  L = recv[P] / W,  W = recv[P + 1] = sum_r W_r

with g_r and L_r the mean gradient and loss over rank r's rows and W_r
their weight (row count or sample-weight sum); a summed loss adds g_r and
L_r as they are. This is parallel_step's rule (epoch.py) with processes
for threads, so every rank ends each step with the gradient of the whole
batch, and the same weights as one process up to the rounding of the sums.
The send and receive buffers are separate arrays (an in-place all-reduce
is not used), of the model's dtype (MPI_FLOAT or MPI_DOUBLE).

Local SGD (``sync_every`` K > 1) trades exactness for fewer messages: each
rank updates its own copy of the weights from its own rows' gradient
(local_step), and every K steps, K dividing the steps of an epoch, the
weights are averaged over the ranks (average_weights): one all-reduce per K
steps. The ranks agree again at every average and at every epoch's end.

How MPI is called, and why the kernels can be cached
----------------------------------------------------
numba-mpi (which this module used before) calls MPI through ctypes function
objects and reads the handles (MPI_COMM_WORLD, the datatypes, MPI_SUM) from
addresses found at run time: Numba writes those addresses into the machine
code, and so refuses to cache it: every ``mpiexec`` run compiled the
distributed kernel again (7-9 s per run in the issue). Here, as blas.py
does for GEMM:

- the four MPI functions the kernel needs are called by fastbp's own names
  (``fastbp_MPI_Allreduce``, ...), whose addresses, those of the MPI
  library mpi4py loaded, :func:`register_symbols` gives LLVM before any
  distributed kernel compiles or loads from the cache;
- the four handles are read at run time from a small table, the global
  symbol ``fastbp_mpi_handles``, which register_symbols fills from mpi4py
  (``MPI._handleof``: an integer in MPICH, a pointer in Open MPI) and
  registers the same way.

So the machine code holds names, not addresses, and Numba caches it. What
it does depend on, the width of an MPI handle (32 bits in MPICH, 64 in Open
MPI) and the MPI library, is written into the generated module
(special.distributed_source, :func:`abi_tag`), whose hash names the module
and with it its cache entry: another MPI gets its own kernel. Every kernel
here is inline (compiled as part of that module's functions), so nothing
MPI-dependent is cached under this file's name.

This module imports mpi4py (the ``mpi`` extra); nothing imports it unless
distributed training is asked for.
"""

from __future__ import annotations

import ctypes
import functools

import numpy as np
from llvmlite import binding as llvm
from llvmlite import ir
from mpi4py import MPI
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._jit import kernel
from .epoch import FusedModel, batch_penalty, chunk_step, work_buffers
from .losses import loss_is_summed

__all__ = [
    "abi_tag",
    "mpi_kernel",
    "mpi_buffers",
    "mpi_shard_buffers",
    "mpi_step",
    "mpi_shard_step",
    "local_step",
    "local_shard_step",
    "average_weights",
    "register_symbols",
]

#: stats[ALLREDUCE_SECONDS] accumulates the seconds spent in all-reduce.
ALLREDUCE_SECONDS = 0

#: The MPI functions the kernels call, and the handles they read, in the
#: order of the handle table.
_FUNCTIONS = ("MPI_Allreduce", "MPI_Comm_rank", "MPI_Comm_size", "MPI_Wtime")
_HANDLES = ("COMM_WORLD", "FLOAT", "DOUBLE", "SUM")
_COMM, _FLOAT, _DOUBLE, _SUM = range(4)
_TABLE = "fastbp_mpi_handles"


def _handle_bits() -> int:
    """Bits of an MPI handle (communicator, datatype and operation alike)."""
    sizes = {MPI._sizeof(cls) for cls in (MPI.Comm, MPI.Datatype, MPI.Op)}
    if len(sizes) != 1 or sizes.pop() not in (4, 8):
        raise RuntimeError("fastbp: MPI handles of unequal or unknown sizes")
    return 8 * MPI._sizeof(MPI.Comm)


@functools.cache
def abi_tag() -> str:
    """What the compiled code depends on: the handle width and the library
    (its version line), e.g. ``"32-bit handles, MPICH Version: 5.0.2"``."""
    version = MPI.Get_library_version().strip().splitlines()[0].strip()
    return f"{_handle_bits()}-bit handles, {version}"


_table = None  # the handle table, kept alive while LLVM may read it


def register_symbols() -> None:
    """Give LLVM the addresses of the MPI functions (in the library mpi4py
    loaded) and of the handle table, under fastbp's names, once per process;
    called before a distributed kernel compiles or loads (mpi_kernel)."""
    global _table
    if _table is not None:
        return
    library = ctypes.CDLL(MPI.__file__)  # mpi4py's module; MPI is among its needs
    for name in _FUNCTIONS:
        address = ctypes.cast(getattr(library, name), ctypes.c_void_p).value
        llvm.add_symbol(f"fastbp_{name}", address)
    cell = ctypes.c_int32 if _handle_bits() == 32 else ctypes.c_uint64
    handles = [MPI._handleof(getattr(MPI, h)) for h in _HANDLES]
    table = (cell * len(handles))(*handles)
    llvm.add_symbol(_TABLE, ctypes.addressof(table))
    _table = table


#: ``kernel`` for the distributed loop: registers the MPI symbols before it
#: compiles or loads.
mpi_kernel = functools.partial(kernel, register=register_symbols)


def _handle(builder, index: int):
    """The handle at ``index`` of the table, loaded at run time."""
    bits = _handle_bits()
    cell = ir.IntType(bits)
    module = builder.module
    table = module.globals.get(_TABLE)
    if table is None:
        table = ir.GlobalVariable(module, ir.ArrayType(cell, len(_HANDLES)), _TABLE)
    zero = ir.Constant(ir.IntType(32), 0)
    return builder.load(builder.gep(table, [zero, ir.Constant(ir.IntType(32), index)]))


def _function(builder, name: str, result, arguments):
    kind = ir.FunctionType(result, arguments)
    return cgutils.get_or_insert_function(builder.module, kind, f"fastbp_{name}")


@intrinsic
def _allreduce_sum(typingctx, send, recv):
    """MPI_Allreduce(send, recv, len(send), dtype, MPI_SUM, MPI_COMM_WORLD);
    the status (0: success)."""
    if not (isinstance(send, types.Array) and send.dtype == recv.dtype):
        return None
    if send.dtype not in (types.float32, types.float64):
        return None
    dtype_index = _FLOAT if send.dtype == types.float32 else _DOUBLE
    sig = types.int32(send, recv)

    def codegen(context, builder, signature, args):
        send_, recv_ = (
            context.make_array(t)(context, builder, a)
            for t, a in zip(signature.args, args, strict=True)
        )
        handle = ir.IntType(_handle_bits())
        i8p, i32 = ir.IntType(8).as_pointer(), ir.IntType(32)
        fn = _function(
            builder, "MPI_Allreduce", i32, [i8p, i8p, i32, handle, handle, handle]
        )
        count = builder.trunc(send_.nitems, i32)
        return builder.call(
            fn,
            [
                builder.bitcast(send_.data, i8p),
                builder.bitcast(recv_.data, i8p),
                count,
                _handle(builder, dtype_index),
                _handle(builder, _SUM),
                _handle(builder, _COMM),
            ],
        )

    return sig, codegen


def _comm_query(name: str):
    """An intrinsic returning MPI_<name>(MPI_COMM_WORLD, &value)'s value."""

    @intrinsic
    def query(typingctx):
        def codegen(context, builder, signature, args):
            i32 = ir.IntType(32)
            handle = ir.IntType(_handle_bits())
            fn = _function(builder, name, i32, [handle, i32.as_pointer()])
            value = cgutils.alloca_once_value(builder, ir.Constant(i32, 0))
            builder.call(fn, [_handle(builder, _COMM), value])
            return builder.sext(builder.load(value), ir.IntType(64))

        return types.int64(), codegen

    return query


_rank = _comm_query("MPI_Comm_rank")
_size = _comm_query("MPI_Comm_size")


@intrinsic
def _wtime(typingctx):
    """MPI_Wtime(): seconds."""

    def codegen(context, builder, signature, args):
        fn = _function(builder, "MPI_Wtime", ir.DoubleType(), [])
        return builder.call(fn, [])

    return types.float64(), codegen


def mpi_buffers(layout, rows, n_parameters, dtype, stats):
    """Buffers of mpi_step: work_buffers' for this rank's share of a batch of
    up to ``rows`` rows, the send and receive vectors (n_parameters + 2)
    and stats (where the all-reduce time is added). NumPy, as
    epoch.work_buffers."""
    size = MPI.COMM_WORLD.Get_size()
    return _reduced_buffers(layout, -(-rows // size), n_parameters, dtype, stats)


def mpi_shard_buffers(layout, rows, n_parameters, dtype, stats):
    """mpi_buffers for mpi_shard_step, which trains all ``rows`` rows here."""
    return _reduced_buffers(layout, rows, n_parameters, dtype, stats)


def _reduced_buffers(layout, rows, n_parameters, dtype, stats):
    hoff, h, z, d0, d1 = work_buffers(layout, rows, n_parameters, dtype, stats)
    send = np.zeros(n_parameters + 2, dtype)
    recv = np.zeros(n_parameters + 2, dtype)
    return hoff, h, z, d0, d1, send, recv, stats


@mpi_kernel(inline="always")
def my_share(m):
    """(first row, row count) of this rank's share of a batch of m rows:
    rows [r m / N, (r + 1) m / N) for rank r of N."""
    rank, size = _rank(), _size()
    start = (rank * m) // size
    return start, ((rank + 1) * m) // size - start


@mpi_kernel(inline="always")
def mpi_step(x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms):
    """_train_step for one global batch of m rows shared by the ranks; every
    rank returns the batch's loss and leaves the batch's gradient in
    model.grad (see the module docstring)."""
    start, rows = my_share(m)
    return _reduced_step(
        x, xo, t, to, labels, lo, sw, swo, start, rows, model, loss, l2, buffers, norms
    )


@mpi_kernel(inline="always")
def mpi_shard_step(
    x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms
):
    """mpi_step for sharded data: the m rows are this rank's own batch (from
    its shard), all of them trained here; the gradient is that of the union
    of the ranks' batches."""
    return _reduced_step(
        x, xo, t, to, labels, lo, sw, swo, 0, m, model, loss, l2, buffers, norms
    )


@mpi_kernel(inline="always")
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
        FusedModel(theta, grad, layout, act_hyper), loss, (hoff, h, z, d0, d1),
    )  # fmt: skip
    n_parameters = theta.shape[0]
    summed = loss_is_summed(loss.code, loss.hyper)
    scale = 1.0 if summed else weight
    if rows == 0:
        for i in range(send.shape[0]):
            send[i] = 0.0
    else:
        s = send.dtype.type(scale)
        for i in range(n_parameters):
            send[i] = s * grad[i]
        send[n_parameters] = scale * value
        send[n_parameters + 1] = weight
    start_time = _wtime()
    _allreduce_sum(send, recv)
    stats[ALLREDUCE_SECONDS] += _wtime() - start_time
    total = np.float64(recv[n_parameters + 1])
    divide = 1.0 if summed else total
    inverse = recv.dtype.type(1.0 / divide if divide > 0.0 else 0.0)
    for i in range(n_parameters):
        grad[i] = recv[i] * inverse
    value = np.float64(recv[n_parameters]) / divide if divide > 0.0 else 0.0
    decay = l2 / total if l2 != 0.0 and total > 0.0 else 0.0
    return value + batch_penalty(theta, grad, layout, decay, norms)


@mpi_kernel(inline="always")
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


@mpi_kernel(inline="always")
def local_shard_step(
    x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms
):
    """local_step for sharded data: all m rows are this rank's batch."""
    return _local(
        x, xo, t, to, labels, lo, sw, swo, 0, m, model, loss, l2, buffers, norms
    )


@mpi_kernel(inline="always")
def _local(
    x, xo, t, to, labels, lo, sw, swo, start, rows, model, loss, l2, buffers, norms
):
    theta, grad, layout, act_hyper = model
    hoff, h, z, d0, d1, send, recv, stats = buffers
    value, weight = chunk_step(
        x, xo, t, to, labels, lo, sw, swo, start, rows,
        FusedModel(theta, grad, layout, act_hyper), loss, (hoff, h, z, d0, d1),
    )  # fmt: skip
    if rows == 0:
        for i in range(grad.shape[0]):
            grad[i] = 0.0
    decay = l2 / weight if l2 != 0.0 and weight > 0.0 else 0.0
    value += batch_penalty(theta, grad, layout, decay, norms)
    if not np.isfinite(value):
        for i in range(grad.shape[0]):
            grad[i] = np.nan
        return 0.0
    return value


@mpi_kernel(inline="always")
def average_weights(theta, send, recv):
    """theta = the mean of theta over the ranks (send and recv: scratch of
    theta's dtype and length theta's)."""
    n = theta.shape[0]
    for i in range(n):
        send[i] = theta[i]
    _allreduce_sum(send, recv)
    inverse = theta.dtype.type(1.0 / _size())
    for i in range(n):
        theta[i] = recv[i] * inverse
