"""The statistics a column plan is made of, each written once and mergeable.

Every statistic here is built chunk by chunk with ``add`` and combined with
``merge``: reading a table into memory is one chunk, a streamed table's first
pass is many, and a shard's statistics are merged over the MPI ranks. So the
three ways of reading a table make the same plan.

- :class:`Moments`: count, mean and sum of squared deviations (Chan, Golub
  and LeVeque's pairwise update), in float64. One chunk gives NumPy's
  ``col.mean()`` and ``sum((col - mean)**2)`` bit for bit.
- :class:`BottomK`: a uniform sample of a column's values for its median:
  the values of the ``k`` rows with the smallest hash of their row number,
  so the sample does not depend on how rows are chunked. Up to ``k`` values
  (``MEDIAN_SAMPLE`` = 2**16 by default) the median is exact; beyond, it is
  the median of that sample (its rank error is about 1 / sqrt(k), 0.4 %).
  A column's sample is 16 bytes a value: 1 MB each, so that a streamed
  table of many columns keeps its first pass within a few hundred MB.
- :class:`Levels`: the distinct values of a text column and their counts,
  up to a cap.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
from numpy.typing import NDArray

__all__ = ["Moments", "BottomK", "Levels", "MEDIAN_SAMPLE", "row_hash", "SQUARE_SAFE"]

#: Values a median is computed from exactly (more are sampled).
MEDIAN_SAMPLE = 1 << 16

#: Up to this magnitude a column's sum of squared deviations stays finite in
#: float64 for any feasible row count (1e100 squared is 1e200, far below the
#: 1.8e308 limit); beyond it, a column is scaled by a power of two first.
SQUARE_SAFE = 1e100

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)


def _splitmix(z: NDArray) -> NDArray:
    """The splitmix64 finalizer of uint64 z (wrapping arithmetic)."""
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return z ^ (z >> np.uint64(31))


def row_hash(rows: NDArray, seed: int) -> NDArray:
    """A fixed uniform uint64 per (seed, row): splitmix64(splitmix64(seed) +
    (row + 1) * golden), the row numbers counted from 0 in the whole table."""
    key = _splitmix(np.array([seed % (1 << 64)], dtype=np.uint64))[0]
    with np.errstate(over="ignore"):
        return _splitmix((rows.astype(np.uint64) + np.uint64(1)) * _GOLDEN + key)


def _power_of_two_above(value: float) -> float:
    return math.ldexp(1.0, math.frexp(value)[1] - 1)


class Moments:
    """Count, mean and sum of squared deviations (m2) of each of ``width``
    columns, float64; mean and m2 are kept in units of ``scale`` (a power of
    two, 1 unless a value passed SQUARE_SAFE), so squares never overflow."""

    def __init__(self, width: int) -> None:
        self.n = 0
        self.mean = np.zeros(width)
        self.m2 = np.zeros(width)
        self.scale = np.ones(width)

    def add(self, X: NDArray) -> None:
        """Merge the rows of X, (m, width) (or (m,) for one column), each
        column taken in float64 as ``col.mean()``, then the sum of squared
        deviations from it."""
        X = np.asarray(X).reshape(len(X), -1)
        m = X.shape[0]
        if m == 0:
            return
        chunk = Moments(X.shape[1])
        chunk.n = m
        for j in range(X.shape[1]):
            col = X[:, j].astype(np.float64)
            big = float(np.max(np.abs(col)))
            if big > SQUARE_SAFE and math.isfinite(big):
                chunk.scale[j] = _power_of_two_above(big)
                col = col / chunk.scale[j]
            chunk.mean[j] = col.mean()
            d = col - chunk.mean[j]
            chunk.m2[j] = np.sum(d * d)
        self.merge(chunk)

    def _rescale(self, scale: NDArray) -> None:
        ratio = self.scale / scale
        self.mean *= ratio
        self.m2 *= ratio * ratio
        self.scale = scale

    def merge(self, other: Moments) -> None:
        """Add another Moments' rows (Chan et al.'s pairwise update)."""
        if other.n == 0:
            return
        if self.n == 0:
            self.n = other.n
            self.mean, self.m2 = other.mean.copy(), other.m2.copy()
            self.scale = other.scale.copy()
            return
        scale = np.maximum(self.scale, other.scale)
        other_mean, other_m2 = other.mean, other.m2
        if not np.array_equal(scale, other.scale):
            ratio = other.scale / scale
            other_mean, other_m2 = other.mean * ratio, other.m2 * ratio * ratio
        if not np.array_equal(scale, self.scale):
            self._rescale(scale)
        n = self.n + other.n
        delta = other_mean - self.mean
        self.mean = self.mean + delta * (other.n / n)
        self.m2 = self.m2 + other_m2 + delta * delta * (self.n * other.n / n)
        self.n = n

    def mean_std(self) -> tuple[NDArray, NDArray]:
        """(mean, std) of each column (ddof 0; a constant column's std is 1,
        so it standardizes to 0)."""
        std = (
            np.sqrt(self.m2 / self.n) * self.scale if self.n else np.ones_like(self.m2)
        )
        std[std == 0] = 1.0
        return self.mean * self.scale, std


class BottomK:
    """The values of the k rows with the smallest row hash (see
    :func:`row_hash`): a sample for a median that any chunking of the rows,
    and any merge order, gives alike."""

    def __init__(self, k: int = MEDIAN_SAMPLE, seed: int = 0) -> None:
        self.k, self.seed = k, seed
        self.hashes = np.empty(0, np.uint64)
        self.values = np.empty(0)

    def add(self, values: NDArray, rows: NDArray) -> None:
        """Take ``values`` of the table's rows ``rows`` (0-based)."""
        self._keep(row_hash(rows, self.seed), np.asarray(values, np.float64))

    def merge(self, other: BottomK) -> None:
        self._keep(other.hashes, other.values)

    def _keep(self, hashes: NDArray, values: NDArray) -> None:
        hashes = np.concatenate([self.hashes, hashes])
        values = np.concatenate([self.values, values])
        if len(hashes) > self.k:
            keep = np.argpartition(hashes, self.k - 1)[: self.k]
            hashes, values = hashes[keep], values[keep]
        self.hashes, self.values = hashes, values

    def median(self) -> float:
        """The median of the sample (NaN when empty)."""
        return float(np.median(self.values)) if len(self.values) else math.nan


class Levels:
    """Distinct values of a column (as text) and how often each occurs; past
    ``cap`` distinct values only the count of values goes on (``overflow``)."""

    def __init__(self, cap: int = 1 << 16) -> None:
        self.cap = cap
        self.counts: Counter = Counter()
        self.overflow = False

    def add(self, values: list, counts: list[int] | None = None) -> None:
        """Count values (each once, or counts[i] times)."""
        if self.overflow:
            return
        if counts is None:
            self.counts.update(values)
        else:
            for value, count in zip(values, counts, strict=True):
                self.counts[value] += count
        if len(self.counts) > self.cap:
            self.overflow = True

    def merge(self, other: Levels) -> None:
        if other.overflow:
            self.overflow = True
        if not self.overflow:
            self.counts.update(other.counts)
            if len(self.counts) > self.cap:
                self.overflow = True

    @property
    def distinct(self) -> int:
        return len(self.counts)

    def most_common(self, k: int) -> list[str]:
        """The k most frequent values, ties in sorted order."""
        ranked = sorted(self.counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
        return [value for value, _ in ranked[:k]]
