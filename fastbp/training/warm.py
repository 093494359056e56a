"""Compile the generic training kernel of a dtype in the background.

A job on a new architecture runs the cached generic kernel when a
specialized one would not repay its compile (:mod:`.compiling`). The first
jobs on a machine find no generic kernel cached and compile a specialized
one (2-5 s, against ~17 s for the generic); so that later new architectures
wait for nothing, ``fastbp train`` then calls :func:`compile_generic_later`,
which starts ``python -m fastbp.training.warm DTYPE LOCK`` at the lowest
priority, detached: it trains a 1-1 network on the generic kernel for one
epoch (compiling it into the kernel cache and the ledger) and exits. One
such process per dtype at a time (a lock file beside the ledger); none when
the kernel is cached, under MPI, off POSIX, or when the environment sets
FASTBP_BACKGROUND_COMPILE=0 (the test suite does).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

import numpy as np

__all__ = ["compile_generic_later", "main"]

#: A lock older than this is left from a process that died: taken over.
STALE_LOCK_S = 600


def compile_generic_later(dtype) -> int | None:
    """Start compiling the generic kernel for ``dtype`` in a detached
    background process; its pid, or None when nothing was started (cached,
    already being compiled, no cache directory, not POSIX, or
    FASTBP_BACKGROUND_COMPILE=0)."""
    from ..kernels import special
    from ..kernels._jit import CACHE_DIR

    dtype = np.dtype(dtype).name
    if (
        os.environ.get("FASTBP_BACKGROUND_COMPILE", "1") == "0"
        or os.name != "posix"
        or CACHE_DIR is None
        or special.generic_cached(dtype)
    ):
        return None
    lock = CACHE_DIR / "ledger" / f"compiling-generic-{dtype}.lock"
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            if time.time() - lock.stat().st_mtime > STALE_LOCK_S:
                lock.unlink()
        os.close(os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except OSError:  # another process is compiling it, or no write access
        return None
    env = {**os.environ, "FASTBP_SPECIALIZE": "0", "FASTBP_BACKGROUND_COMPILE": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "fastbp.training.warm", dtype, str(lock)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env,
    )
    return process.pid


def main(argv: list[str]) -> None:
    """``DTYPE LOCK``: one epoch of a 1-1 network on the generic kernel of
    DTYPE, then remove LOCK."""
    dtype, lock = argv
    try:
        from ..nn.layers import Linear, Sequential
        from ..nn.losses import MSELoss
        from ..nn.optim import SGD
        from .api import train

        model = Sequential(Linear(1, 1, rng=0, dtype=dtype))
        x = np.zeros((1, 1), dtype)
        train(model, MSELoss(), SGD(model.parameters(), lr=0.1), x, x, epochs=1)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)


if __name__ == "__main__":
    with contextlib.suppress(OSError):
        os.nice(19)  # the lowest priority: the user's next command comes first
    main(sys.argv[1:])
