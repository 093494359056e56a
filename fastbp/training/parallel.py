"""Data parallelism over MPI, as a strategy the training loop is given.

``fit(..., strategy=DataParallel(comm))`` (``fastbp.train(comm=...)``): every
process runs the same program on the same data (or, with ``shard=True``, on
its own share of it); rank 0's initial weights and shuffle key are
broadcast; each rank trains its share of every batch and the gradients are
all-reduced inside the fused kernel once per step (or the weights averaged
every ``sync_every`` steps: local SGD). The strategy owns everything that
differs from one process: the broadcast, a shard's padding, the period of
local SGD, and the averages over ranks of losses and validation figures.
Without it (or on one process) the loop trains alone.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from .._validate import positive_int

__all__ = ["DataParallel", "SingleProcess"]


class SingleProcess:
    """The strategy of a run in one process: nothing to share."""

    size, rank, shard, sync_every = 1, 0, False, 1
    #: The K of local SGD that runs (1: gradients all-reduced every step).
    period = 1
    distributed: bool | str = False

    def begin(self, run) -> None:
        """Before the data is bound (nothing on one process)."""

    def rank_key(self, key: int) -> int:
        """The shuffle key this process trains with."""
        return key

    def pad(self, X, T, weights, batch_size):
        """(X, T, weights, batch size, rows per epoch over all processes)."""
        return X, T, weights, batch_size, X.shape[0]

    def sync_period(self, steps_per_epoch: int, optimizer) -> int:
        return 1

    def epoch_losses(self, losses: NDArray) -> NDArray:
        return losses

    def mean_over_ranks(self, rows: int, *values: float) -> tuple[float, ...]:
        """Row-weighted means over the ranks of each rank's values."""
        return values

    def started(self) -> None:
        """All processes have compiled: training starts."""

    def finish(self, result, runner) -> None:
        """Record what the strategy measured in the result."""


class DataParallel(SingleProcess):
    """Data-parallel training over ``comm``, ``mpi4py.MPI.COMM_WORLD`` (the
    ``mpi`` extra; run the program under ``mpiexec -n N``).

    Parameters
    ----------
    comm : mpi4py.MPI.Comm
        MPI_COMM_WORLD (or a communicator congruent to it): the fused
        kernel's all-reduce runs over MPI_COMM_WORLD.
    shard : bool
        False: every process passes the same data; rank r trains rows
        [r * m / N, (r + 1) * m / N) of each batch of m rows (uneven shares
        weighted by rows), and the model is the one a single process trains,
        to the rounding of the sums. True: each process passes its own
        share (:func:`fastbp.data.shard.load_shard`); ``batch_size`` stays
        the global batch, each rank trains batches of ceil(batch_size / N)
        of its own rows, shuffled within its shard (rank r's key is the
        run's key XOR r), and a rank with fewer rows gets padding rows of
        weight 0, so every rank takes the same number of steps. Validation
        figures are row-weighted means over the ranks (for R^2 an
        approximation), so that every rank decides alike.
    sync_every : int >= 1
        1 all-reduces the gradients every step; K > 1 is local SGD: each
        rank updates its own weights and the weights are averaged every K
        steps. K is lowered to the largest divisor of the steps per epoch,
        so that the ranks agree at every epoch's end
        (``result.sync_every`` says which K ran).
    """

    def __init__(self, comm: object, *, shard: bool = False, sync_every: int = 1):
        try:
            from mpi4py import MPI
        except ImportError:
            raise ValueError(
                "train: comm needs mpi4py (pip install 'fastbp[mpi]')"
            ) from None
        if not isinstance(comm, MPI.Comm) or comm.Compare(MPI.COMM_WORLD) not in (
            MPI.IDENT,
            MPI.CONGRUENT,
        ):
            raise ValueError(
                "train: comm must be mpi4py.MPI.COMM_WORLD (the fused kernel "
                "all-reduces over MPI_COMM_WORLD)"
            )
        self.comm = comm
        self.size, self.rank = comm.Get_size(), comm.Get_rank()
        self.shard = bool(shard) and self.size > 1
        self.sync_every = positive_int(sync_every, "train", "sync_every")
        self.distributed = "sharded" if self.shard else self.size > 1

    def begin(self, run) -> None:
        """Every rank starts from rank 0's weights and shuffle key; the
        layer path cannot all-reduce (ValueError)."""
        if self.size == 1:
            return
        if not run.engine.fused:
            raise ValueError(f"train: comm needs the fused path ({run.engine.reason})")
        self.comm.Bcast(run.model.flat_data, root=0)
        run.shuffle_key = self.comm.bcast(run.shuffle_key, root=0)

    def rank_key(self, key: int) -> int:
        return key ^ self.rank if self.shard and key >= 0 else key

    def pad(self, X, T, weights, batch_size):
        """A shard ready for sharded training: (X, T, weights, local batch,
        rows over all ranks). The local batch is ceil(batch_size / N); X and
        T gain zero rows of weight 0 up to the largest shard's number of
        local batches, so every rank runs the same number of steps (each
        step all-reduces)."""
        if not self.shard:
            return X, T, weights, batch_size, X.shape[0]
        local = -(-batch_size // self.size)
        n = X.shape[0]
        counts = self.comm.allgather(n)
        rows = max(-(-c // local) for c in counts) * local
        if weights is None:
            weights = np.ones(n)
        pad = rows - n
        X = np.concatenate([X, np.zeros((pad, *X.shape[1:]), X.dtype)])
        T = np.concatenate([T, np.zeros((pad, *T.shape[1:]), T.dtype)])
        weights = np.concatenate([weights, np.zeros(pad)])
        return X, T, weights, local, sum(counts)

    def sync_period(self, steps_per_epoch: int, optimizer) -> int:
        """The K of local SGD that runs: the largest divisor of the steps
        per epoch not above sync_every (1 on one process)."""
        if self.size == 1 or self.sync_every == 1:
            return 1
        if optimizer.step_count % steps_per_epoch:
            raise ValueError(
                "train: sync_every needs an optimizer whose step count is a "
                "whole number of epochs (a fresh one)"
            )
        self.period = max(
            k for k in range(1, self.sync_every + 1) if steps_per_epoch % k == 0
        )
        return self.period

    def epoch_losses(self, losses: NDArray) -> NDArray:
        """Under local SGD each rank's loss is its own rows': the mean."""
        if self.period > 1:
            return self.comm.allreduce(losses) / self.size
        return losses

    def mean_over_ranks(self, rows: int, *values: float) -> tuple[float, ...]:
        """Row-weighted means over the ranks of each rank's values (for a
        shard's figures; the values of unsharded ranks are equal)."""
        if not self.shard:
            return values
        figures = self.comm.allgather((rows, *values))
        total = sum(f[0] for f in figures)
        return tuple(
            sum(f[0] * f[1 + i] for f in figures) / total if total else float("nan")
            for i in range(len(values))
        )

    def started(self) -> None:
        """The ranks meet before the clock starts: the first step's
        all-reduce would otherwise count the slowest rank's start-up."""
        if self.size > 1:
            self.comm.Barrier()

    def finish(self, result, runner) -> None:
        if self.size > 1:
            result.processes = self.size
            result.allreduce_seconds = float(runner.stats[0])
