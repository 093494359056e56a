"""Per-architecture training kernels: the fused epoch loop with every layer
width, offset and activation written into the source as a literal.

The generic fused kernel (epoch.py) serves every architecture with one
compiled loop, so its layer loops run to widths known only at run time and
its products go to BLAS, whose call overhead alone exceeds a small layer's
arithmetic. :func:`specialized` writes, once per architecture, loss,
optimizer and row weighting, a module whose training step is the generic
one unrolled over the layers:

- layers of at most SIMD_MAX_WEIGHTS weights run simd.py's products,
  generated for their exact sizes, with ReLU fused into the forward product
  and its derivative into the next layer's input gradient;
- larger ones call the same BLAS-backed kernels as the generic step;
- the loss and the optimizer are called by name (``mse_backward_flat``,
  ``sgd_flat``, ...), and each other activation by its own inline function
  (activations.ACT_FUNCTIONS): nothing the run does not use is compiled.

Measured 2026-12-07 on an Intel Xeon (Emerald Rapids, AVX-512), 1 thread,
float32 SGD, µs per step, generic -> specialized, medians of 15 interleaved
rounds on a shared machine (load 4.4 on 2 cores: medians swing, the ratio
holds): 2-8-1 batch 4: 1.4 -> 0.2; 4-4-4-4-1 batch 8: 3.3 -> 0.4;
16-16-16-1 batch 32: 10.2 -> 2.0; 32-64-1 batch 64: 13.2 -> 9.5; ten
64-wide layers batch 64: 295 -> 225 (minima 141 -> 107); 20-256-256-1
batch 256 (its 256x256 layer on BLAS): 1160 -> 871 (minima 847 -> 820).
784-256-10 has no layer small enough to gain and 203k weights: it keeps the
generic kernel (SPECIAL_MAX_WEIGHTS).

The epoch loop around the step is the generic one's own source
(:func:`epoch.epoch_loop_source`), so both paths share every line but the
step's, and compute the same (to rounding: the products add their terms in
another order).

The module is written to ``<kernel cache>/special/fastbp_special_<hash>.py``
(atomically: temporary file and rename, so concurrent processes agree),
imported from there, and its kernel compiled with Numba's on-disk cache like
every other kernel: the first run of an architecture compiles it (about 2
s), later processes load it. The hash covers the architecture, loss,
optimizer and, through the cache directory's stamp, the kernel sources, so
an edit to fastbp never reuses an old module.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ._jit import CACHE_DIR, SOURCE_STAMP
from .activations import ACT_FUNCTIONS
from .codes import (
    ACT_IDENTITY,
    ACT_RELU,
    LOSS_BINARY_CROSS_ENTROPY,
    LOSS_CROSS_ENTROPY,
    LOSS_MSE,
    LOSS_SQUARED_ERROR,
    OPT_ADAM,
    OPT_SGD,
    keeps_input,
)
from .epoch import (
    EPOCH_LOOP_GLOBALS,
    L_ACT,
    L_B,
    L_IN,
    L_OUT,
    L_W,
    epoch_loop_source,
    parallel_sources,
)

__all__ = [
    "MAX_LAYERS",
    "SIMD_MAX_WEIGHTS",
    "SPECIAL_MAX_WEIGHTS",
    "KernelStatus",
    "eligible",
    "kernel_status",
    "generic_cached",
    "specialized",
]

#: Layers with at most this many weights (in * out) run the SIMD products of
#: simd.py; larger ones call the generic (BLAS) kernels. At 256x256 (65,536)
#: OpenBLAS was faster, at 128x128 and 256x64 (16,384) the SIMD products
#: (simd.py's docstring).
SIMD_MAX_WEIGHTS = 16384
#: Deeper networks use the generic kernel: the step's source grows with depth
#: and with it the compile time.
MAX_LAYERS = 16
#: Networks with more weights (sum of in * out) use the generic kernel: most
#: of their time is in BLAS-sized layers, which run the same calls either way.
SPECIAL_MAX_WEIGHTS = 131072

#: Generated modules by name, and each kernel by its key: a call for a key
#: seen before in this process is one dict lookup.
_modules: dict[str, object] = {}
_kernels: dict[bytes, object] = {}


def _sizes(layout: np.ndarray) -> list[tuple[int, int]]:
    return [(int(k), int(n)) for k, n in layout[:, [L_IN, L_OUT]]]


def eligible(layout: np.ndarray) -> bool:
    """Whether a specialized kernel pays for this layout: at most MAX_LAYERS
    layers and SPECIAL_MAX_WEIGHTS weights, and some layer small enough for
    the SIMD products."""
    sizes = _sizes(layout)
    return (
        len(sizes) <= MAX_LAYERS
        and sum(k * n for k, n in sizes) <= SPECIAL_MAX_WEIGHTS
        and any(_simd(k, n) for k, n in sizes)
    )


def _simd(k: int, n: int) -> bool:
    """Whether a Linear(k, n) layer runs the SIMD products."""
    return k * n <= SIMD_MAX_WEIGHTS


#: The loss call of a step for each loss code: out, t (targets at to), labels
#: (at lo), dout, m rows, c columns.
_LOSS_CALLS = {
    LOSS_MSE: "mse_backward_flat(out, t[to : to + m * {c}], dout, "
    "loss.hyper[0] != 0.0)",
    LOSS_SQUARED_ERROR: "squared_error_backward_flat(out, t[to : to + m * {c}], "
    "dout, m, {c})",
    LOSS_BINARY_CROSS_ENTROPY: "binary_cross_entropy_backward_flat(out, "
    "t[to : to + m * {c}], dout, m, {c})",
    LOSS_CROSS_ENTROPY: "softmax_cross_entropy_backward_flat(out, "
    "labels[lo : lo + m], dout, m, {c})",
}

#: The update of each optimizer code (optim.optimizer_step_flat's branches).
_OPTIMIZER_CALLS = {
    OPT_SGD: "sgd_flat(theta, grad, state0, hyper[0], hyper[1], hyper[2], "
    "hyper[3] != 0.0)",
    OPT_ADAM: "adam_flat(theta, grad, state0, state1, hyper[0], hyper[1], "
    "hyper[2], hyper[3], hyper[4], step)",
}


def _transposed_size(rows) -> int:
    """Length of the scratch holding W.T for simd.input_grad: the largest
    weight matrix of a SIMD layer after the first with more than one output
    (one output: W is its own transpose)."""
    sizes = [r[L_IN] * r[L_OUT] for r in rows[1:] if r[L_OUT] > 1]
    return max([0, *(s for s in sizes if s <= SIMD_MAX_WEIGHTS)])


def _step_source(rows, loss_code: int, weighted: bool) -> str:
    """The source of ``_train_step`` for these layout rows: _train_step of
    epoch.py unrolled over the layers with sizes, offsets and activations as
    literals, and the loss called directly."""
    last = len(rows) - 1
    out = [
        '@kernel(inline="always")',
        "def _train_step(",
        "    x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms",
        "):",
        "    theta, grad, layout, act_hyper = model",
        "    hoff, h, z, d0, d1, wt = buffers",
    ]
    source = "x, xo"
    for layer, row in enumerate(rows):
        k, n, w, b, act = (row[c] for c in (L_IN, L_OUT, L_W, L_B, L_ACT))
        keep_z = keeps_input(act)
        target = f"z, hoff[{layer}]" if keep_z else f"h, hoff[{layer}]"
        span = f"hoff[{layer}] : hoff[{layer}] + m * {n}"
        out.append(f"    # layer {layer}: Linear({k}, {n}), activation code {act}")
        out.append(f"    p{layer} = hyper_row(act_hyper, {layer})")
        if not _simd(k, n):
            fused = ACT_IDENTITY if keep_z else act
            out.append(
                f"    dense_forward_flat({source}, theta, np.int64({w}), "
                f"theta[{b}:{b + n}], {target}, m, np.int64({k}), np.int64({n}), "
                f"np.int64({fused}), p{layer})"
            )
            done = not keep_z
        else:
            relu = int(act == ACT_RELU)
            out.append(
                f"    simd.forward({source}, theta, {w}, {b}, {target}, m, {k}, {n}, "
                f"{relu})"
            )
            done = act in (ACT_IDENTITY, ACT_RELU)
        if not done:
            # In place: one slice passed twice, so that LLVM sees one
            # pointer (two slices of one buffer looked like two arrays that
            # might overlap: 4.6 ns per element instead of a vector loop).
            forward = ACT_FUNCTIONS[act][0]
            out.append(f"    hl = h[{span}]")
            a = f"z[{span}]" if keep_z else "hl"
            out.append(f"    {forward}({a}, hl, p{layer})")
        source = f"h, hoff[{layer}]"

    c = rows[last][L_OUT]
    out.append(f"    out = h[hoff[{last}] : hoff[{last}] + m * {c}]")
    out.append(f"    dout = d0[: m * {c}]")
    if weighted:
        out.append(
            "    value, total = _weighted_loss(loss, out, t, to, labels, lo, sw, "
            f"swo, dout, m, {c})"
        )
        out.append("    decay = l2 / total if l2 != 0.0 and total > 0.0 else 0.0")
    else:
        out.append(f"    value = {_LOSS_CALLS[loss_code].format(c=c)}")
        out.append("    decay = l2 / m if l2 != 0.0 else 0.0")
    act = rows[last][L_ACT]
    if act != ACT_IDENTITY:  # an activation after the last layer
        backward = ACT_FUNCTIONS[act][1]
        keep = "z" if keeps_input(act) else "h"
        out.append(
            f"    {backward}({keep}[hoff[{last}] : hoff[{last}] + m * {c}], dout, "
            f"dout, p{last})"
        )

    for layer in range(last, -1, -1):
        k, n, w, b, act = (rows[layer][c_] for c_ in (L_IN, L_OUT, L_W, L_B, L_ACT))
        source = "x, xo" if layer == 0 else f"h, hoff[{layer - 1}]"
        out.append(f"    # layer {layer}, backward")
        if _simd(k, n):
            out.append(
                f"    simd.weight_grad({source}, d0, 0, grad, {w}, {b}, m, {k}, {n})"
            )
        else:
            out.append(
                f"    dense_backward_params_flat({source}, d0, np.int64(0), grad, "
                f"np.int64({w}), grad[{b}:{b + n}], m, np.int64({k}), np.int64({n}))"
            )
        if layer == 0:
            continue
        before = rows[layer - 1][L_ACT]
        if _simd(k, n):
            mask = int(before == ACT_RELU)
            if n == 1:
                transposed = f"theta, {w}"
            else:
                out.append(f"    simd.transpose(theta, {w}, wt, {k}, {n})")
                transposed = "wt, 0"
            out.append(
                f"    simd.input_grad(d0, 0, {transposed}, d1, 0, h, hoff[{layer - 1}],"
                f" m, {k}, {n}, {mask})"
            )
        else:
            mask = 0
            out.append(
                f"    dense_backward_input_flat(d0, np.int64(0), theta, "
                f"np.int64({w}), d1, np.int64(0), m, np.int64({k}), np.int64({n}))"
            )
        out.append("    d0, d1 = d1, d0")
        if before != ACT_IDENTITY and not mask:
            backward = ACT_FUNCTIONS[before][1]
            keep = "z" if keeps_input(before) else "h"
            span = f"hoff[{layer - 1}] : hoff[{layer - 1}] + m * {k}"
            out.append(f"    dl = d0[: m * {k}]")  # in place, as forward
            out.append(f"    {backward}({keep}[{span}], dl, dl, p{layer - 1})")
    # The L2 penalty and the gradient norms, for every layer at once (no
    # layer's gradient changes once computed): one call site whatever the
    # depth.
    out.append("    return value + batch_penalty(theta, grad, layout, decay, norms)")
    return "\n".join(out) + "\n"


def module_source(
    layout: np.ndarray,
    loss_code: int,
    optimizer_code: int,
    weighted: bool = False,
    n_chunks: int = 1,
) -> str:
    """The whole generated module for a layout, loss, optimizer and whether
    rows are weighted (see the module docstring). n_chunks > 1: the
    batch-parallel variant, each batch cut into n_chunks chunks trained at
    once on Numba's threads (epoch.parallel_step around this step)."""
    rows = [tuple(int(v) for v in row) for row in layout]
    widths = [rows[0][L_IN], *(r[L_OUT] for r in rows)]
    acts = [r[L_ACT] for r in rows]
    own = ("optimizer_step_flat",)  # defined in the module
    imports = ", ".join(name for name in EPOCH_LOOP_GLOBALS if name not in own)
    activations = sorted({f for r in rows for f in ACT_FUNCTIONS[r[L_ACT]]})
    step = _step_source(rows, loss_code, weighted)
    if n_chunks > 1:
        parallel = f", {n_chunks} chunks per batch on Numba's threads"
        step = step.replace("def _train_step(", "def _chunk_train_step(") + (
            '\n\n@kernel(inline="always")\n'
            "def chunk_of(buffers, c):\n"
            "    hoff, h, z, d0, d1, wt = buffers\n"
            "    return hoff, h[c], z[c], d0[c], d1[c], wt[c]\n\n\n"
            + parallel_sources()
            + "\n\n_train_step = parallel_step\n"
        )
        buffers = (
            "def work_buffers(layout, rows, n_parameters, dtype, stats):\n"
            "    return chunk_buffers(\n"
            "        layout, rows, n_parameters, dtype, stats, "
            f"{n_chunks}, _step_buffers\n    )\n\n\n"
        )
        name = "_step_buffers"
    else:
        parallel, buffers, name = "", "", "work_buffers"
    return (
        f'"""fastbp: training kernel generated for widths {widths}, activation '
        f"codes {acts}, loss code {loss_code}, optimizer code {optimizer_code}"
        f"{', weighted rows' if weighted else ''}{parallel}.\n\nWritten by "
        'fastbp.kernels.special; do not edit."""\n\n'
        "import numpy as np\n"
        "from numba import prange\n\n"
        "from fastbp.kernels import simd\n"
        "from fastbp.kernels._jit import kernel\n"
        "from fastbp.kernels.activations import hyper_row\n"
        f"from fastbp.kernels.activations import {', '.join(activations)}\n"
        "from fastbp.kernels.dense import dense_backward_input_flat, "
        "dense_backward_params_flat, dense_forward_flat\n"
        "from fastbp.kernels.epoch import L_IN, FusedModel, _weighted_loss, "
        "batch_penalty, chunk_buffers\n"
        f"from fastbp.kernels.epoch import {imports}\n"
        "from fastbp.kernels.epoch import work_buffers as _work_buffers\n"
        "from fastbp.kernels.losses import binary_cross_entropy_backward_flat, "
        "mse_backward_flat, softmax_cross_entropy_backward_flat, "
        "squared_error_backward_flat\n"
        "from fastbp.kernels.optim import adam_flat, sgd_flat\n\n\n"
        f"def {name}(layout, rows, n_parameters, dtype, stats):\n"
        '    """epoch.work_buffers\' and the scratch for W.T (simd.transpose)."""\n'
        "    hoff, h, z, d0, d1 = _work_buffers(layout, rows, n_parameters, dtype, "
        "stats)\n"
        f"    return hoff, h, z, d0, d1, np.empty({_transposed_size(rows)}, dtype)\n"
        "\n\n" + buffers + '@kernel(inline="always")\n'
        "def optimizer_step_flat(code, hyper, theta, grad, state0, state1, step):\n"
        f"    {_OPTIMIZER_CALLS[optimizer_code]}\n\n\n"
        + step
        + "\n\n"
        + epoch_loop_source()
    )


def _write_once(path: Path, text: str) -> None:
    """Write text to path unless it holds exactly that already; atomically
    (a temporary file beside it, renamed over it), so a process importing it
    meanwhile sees the old file or the whole new one. (fastbp._files has the
    general helper, but the kernels sit below it and import nothing above.)"""
    if path.exists() and path.read_text() == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _key(
    layout: np.ndarray,
    loss_code: int,
    optimizer_code: int,
    weighted: bool,
    n_chunks: int = 1,
):
    head = bytes([loss_code, optimizer_code, weighted])
    return layout.tobytes() + head + n_chunks.to_bytes(4, "little")


def specialized(
    layout: np.ndarray,
    loss_code: int,
    optimizer_code: int,
    weighted: bool = False,
    n_chunks: int = 1,
):
    """The module of the specialized kernel for this layout, loss code,
    optimizer code and row weighting (batch-parallel over n_chunks chunks
    when n_chunks > 1), generated and imported on first use:
    epoch.run_epochs(module, ...) trains with it (its loss and optimizer
    must be those, with sample weights when weighted)."""
    key = _key(layout, loss_code, optimizer_code, weighted, n_chunks)
    known = _kernels.get(key)
    if known is not None:
        return known
    text = module_source(layout, loss_code, optimizer_code, weighted, n_chunks)
    return _load(key, text)


def parallel_source(n_chunks: int) -> str:
    """The module of the batch-parallel epoch loop: epoch._train_epochs'
    source around epoch.parallel_step, which trains each batch as n_chunks
    chunks at once, one per thread (any architecture). The chunk count is a
    literal of the module, not a call to numba.get_num_threads() inside it,
    which Numba could not cache."""
    imports = ",\n    ".join(EPOCH_LOOP_GLOBALS)
    return (
        f'"""fastbp: the batch-parallel fused epoch loop, {n_chunks} chunks.\n\n'
        'Written by fastbp.kernels.special; do not edit."""\n\n'
        "import numpy as np\n\n"
        "from fastbp.kernels._jit import kernel\n"
        "from fastbp.kernels.epoch import (\n"
        f"    {imports},\n)\n"
        "from fastbp.kernels.epoch import chunk_buffers\n"
        "from fastbp.kernels.epoch import parallel_step as _train_step\n\n\n"
        "def work_buffers(layout, rows, n_parameters, dtype, stats):\n"
        "    return chunk_buffers(\n"
        f"        layout, rows, n_parameters, dtype, stats, {n_chunks}\n    )\n"
        "\n\n" + epoch_loop_source()
    )


def parallel(n_chunks: int):
    """The module of the batch-parallel epoch loop for n_chunks chunks per
    batch (for epoch.run_epochs), generated and imported on first
    use. It lives in a module of its own so that its compilation (several
    seconds: Numba's parallel passes) is paid only by runs that use it."""
    key = f"parallel {n_chunks}".encode()
    known = _kernels.get(key)
    if known is not None:
        return known
    return _load(key, parallel_source(n_chunks))


def distributed_source(sharded: bool, sync_every: int = 1, abi: str = "") -> str:
    """The module of the data-parallel epoch loop: epoch._train_epochs'
    source around distributed.mpi_step (mpi_shard_step for sharded data),
    or, for sync_every K > 1, around local_step (local_shard_step) with the
    optimizer's update followed every K steps by average_weights (any
    architecture). ``abi`` (distributed.abi_tag()) is written into it, so
    that each MPI (handle width, library) has its own module and cache."""
    imports = ",\n    ".join(EPOCH_LOOP_GLOBALS)
    shard = "_shard" if sharded else ""
    buffers = f"mpi{shard}_buffers"
    head = (
        '"""fastbp: the data-parallel (MPI) fused epoch loop, for MPI with '
        f'{abi}.\n\nWritten by fastbp.kernels.special; do not edit."""\n\n'
        "import numpy as np\n\n"
        "from fastbp.kernels.distributed import mpi_kernel as kernel\n"
        f"from fastbp.kernels.distributed import {buffers} as work_buffers\n"
        "from fastbp.kernels.epoch import (\n"
        f"    {imports},\n)\n"
    )
    if sync_every == 1:
        return (
            head + f"from fastbp.kernels.distributed import mpi{shard}_step as "
            "_train_step\n\n\n" + epoch_loop_source()
        )
    return (
        head + f"from fastbp.kernels.distributed import average_weights\n"
        f"from fastbp.kernels.distributed import local{shard}_step as _train_step\n"
        "from fastbp.kernels.epoch import optimizer_step_flat as _update\n\n\n"
        "@kernel\n"
        "def optimizer_step_flat(code, hyper, theta, grad, state0, state1, step):\n"
        '    """The update, then every {K} steps the weights averaged."""\n'
        "    _update(code, hyper, theta, grad, state0, state1, step)\n"
        f"    if step % {sync_every} == 0:\n"
        "        n = theta.shape[0]\n"
        "        average_weights(theta, np.empty(n, theta.dtype), "
        "np.empty(n, theta.dtype))\n\n\n" + epoch_loop_source()
    ).replace("{K}", str(sync_every))


def distributed(sharded: bool = False, sync_every: int = 1):
    """The module of the data-parallel epoch loop (for epoch.run_epochs),
    generated and imported on first use; it imports mpi4py. Cached on disk
    like every kernel (see distributed.py on how)."""
    key = f"distributed {sharded} {sync_every}".encode()
    known = _kernels.get(key)
    if known is not None:
        return known
    from .distributed import abi_tag

    return _load(key, distributed_source(sharded, sync_every, abi_tag()))


def _module_name(text: str) -> str:
    digest = hashlib.sha256(f"{SOURCE_STAMP}\n{text}".encode()).hexdigest()[:16]
    return f"fastbp_special_{digest}"


def _load(key: bytes, text: str):
    """Write (once), import and remember the module holding text; the
    module (its ``_train_epochs`` and ``work_buffers`` are what
    epoch.run_epochs calls)."""
    name = _module_name(text)
    if name in _modules:
        return _kernels.setdefault(key, _modules[name])
    base = CACHE_DIR if CACHE_DIR is not None else Path(tempfile.gettempdir())
    path = base / "special" / f"{name}.py"
    _write_once(path, text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Numba's cache pickles by module name
    spec.loader.exec_module(module)
    _modules[name] = module
    return _kernels.setdefault(key, module)


# Whether a kernel is on disk, and what compiling it would cost
# -------------------------------------------------------------
#
# The training loop decides from kernel_status whether to compile the
# specialized kernel of an architecture (worth it for a long job), or to
# run the generic one from the cache (a short job), and what to tell the
# user. It must not compile anything to find out. So every process that
# runs a kernel for the first time writes a ledger entry beside the kernel
# cache, <cache>/ledger/<kernel>-<dtype>-<cpu>.json, with the seconds it
# spent compiling (0 when it loaded the kernel); a kernel counts as cached
# when its entry exists and so does Numba's index file for it (both go when
# the cache directory does). Numba's cache key also holds the CPU, hence the
# CPU in the entry's name: a home directory shared by two machines caches
# each one's code apart.

#: Compile seconds of a specialized module, measured 2026-12-07 on the
#: Intel Xeon (Emerald Rapids), float32, with an empty cache, one process
#: training one architecture after another (Numba's numba:compile events
#: around train_epochs): 2.3 s for 2-16-1 after 2-8-1, 2.7-3.0 for two and
#: three layers with Adam, 3.3 for five 64-wide layers, 4.1 for eleven; the
#: first kernel of a process also compiles what every kernel shares (the
#: loss, the optimizer, the shuffle, the finite check) and pays Numba's
#: start-up: 5.3 s for 2-8-1.
_SPECIAL_BASE_S, _SPECIAL_PER_LAYER_S, _SHARED_S = 1.9, 0.2, 2.0
#: The generic kernel compiles every activation, loss and optimizer, and the
#: BLAS and loop paths of every product: 17.7 s on the same machine.
_GENERIC_S = 17.0


class KernelStatus(NamedTuple):
    """What kernel_status finds; seconds are estimates for this machine."""

    #: The widths, e.g. "20-32-1", for messages.
    label: str
    #: Whether a specialized kernel serves this layout (eligible).
    specialize: bool
    #: The specialized kernel is on disk: loading it costs well under 1 s.
    cached: bool
    #: Estimated seconds to compile it (when not cached).
    compile_seconds: float
    #: The same for the generic kernel (any layout, this dtype).
    generic_cached: bool
    generic_compile_seconds: float


def kernel_status(
    layout: np.ndarray,
    loss_code: int,
    optimizer_code: int,
    dtype,
    weighted: bool = False,
) -> KernelStatus:
    """Whether the specialized kernel for this layout, loss code, optimizer
    code, dtype and row weighting (and the generic kernel for this dtype) is
    already compiled on disk, and an estimate of the seconds compiling it
    would take, without compiling or importing anything (microseconds: it
    hashes the module's source and looks for two files).

    The estimates come from measured constants (above), scaled by the ratio
    of measured to estimated seconds over the ledger's earlier compilations
    on this machine, if any."""
    dtype = np.dtype(dtype).name
    rows = [tuple(int(v) for v in row) for row in layout]
    label = "-".join(str(w) for w in [rows[0][L_IN], *(r[L_OUT] for r in rows)])
    ledger = _ledger()
    scale = _machine_scale(ledger)
    shared_cached = any(
        e.get("loss") == loss_code
        and e.get("optimizer") == optimizer_code
        and e.get("dtype") == dtype
        for e in ledger.values()
    )
    special = eligible(layout)
    name = _module_name(module_source(layout, loss_code, optimizer_code, weighted))
    estimate = _SPECIAL_BASE_S + _SPECIAL_PER_LAYER_S * len(rows)
    if not shared_cached:
        estimate += _SHARED_S
    generic = "generic"
    return KernelStatus(
        label=label,
        specialize=special,
        cached=_on_disk(ledger, name, dtype, name),
        compile_seconds=round(scale * estimate, 1),
        generic_cached=_on_disk(ledger, generic, dtype, "epoch"),
        generic_compile_seconds=round(scale * _GENERIC_S, 1),
    )


def generic_cached(dtype) -> bool:
    """Whether the generic kernel for ``dtype`` is compiled on disk for this
    CPU (what kernel_status reports as ``generic_cached``)."""
    return _on_disk(_ledger(), "generic", np.dtype(dtype).name, "epoch")


@functools.cache
def _cpu() -> str:
    from llvmlite import binding as llvm

    features = llvm.get_host_cpu_features().flatten()
    digest = hashlib.sha256(features.encode()).hexdigest()[:8]
    return f"{llvm.get_host_cpu_name()}.{digest}"


def _ledger_dir() -> Path | None:
    return None if CACHE_DIR is None else CACHE_DIR / "ledger"


def _ledger() -> dict[str, dict]:
    """Ledger entries of this CPU by file stem (<kernel>-<dtype>-<cpu>)."""
    folder = _ledger_dir()
    if folder is None or not folder.is_dir():
        return {}
    entries = {}
    for path in folder.glob(f"*-{_cpu()}.json"):
        with contextlib.suppress(OSError, ValueError):
            entries[path.stem] = json.loads(path.read_text())
    return entries


def _machine_scale(ledger: dict[str, dict]) -> float:
    """Median of measured / estimated compile seconds in the ledger, within
    [0.3, 5]; 1 without measurements."""
    ratios = [
        e["seconds"] / e["estimate"]
        for e in ledger.values()
        if e.get("seconds") and e.get("estimate")
    ]
    if not ratios:
        return 1.0
    ratios.sort()
    return min(5.0, max(0.3, ratios[len(ratios) // 2]))


def _on_disk(ledger: dict[str, dict], name: str, dtype: str, module: str) -> bool:
    """A ledger entry for this kernel and dtype on this CPU, and Numba's
    index of ``module._train_epochs`` in the cache."""
    if f"{name}-{dtype}-{_cpu()}" not in ledger or CACHE_DIR is None:
        return False
    return any(CACHE_DIR.glob(f"*/{module}._train_epochs-*.nbi"))


#: (kernel, dtype) pairs this process has run: only the first run of each is
#: timed and recorded.
_recorded: set[tuple[str, str]] = set()


def record_first_run(kernels, layout, loss_code, optimizer_code, dtype, call):
    """call() (which runs kernels._train_epochs) and, the first time in this
    process for this kernel and dtype, the seconds Numba spent compiling
    during it (numba:compile events, outermost only), written to the ledger;
    returns call()'s result."""
    name = getattr(kernels, "__name__", "")
    name = name if name.startswith("fastbp_special_") else "generic"
    key = (name, np.dtype(dtype).name)
    folder = _ledger_dir()
    if key in _recorded or folder is None:
        return call()
    from numba.core import event

    spent = [0.0]
    depth = [0, 0.0]

    class _Timer(event.Listener):
        def on_start(self, ev):
            if depth[0] == 0:
                depth[1] = time.perf_counter()
            depth[0] += 1

        def on_end(self, ev):
            depth[0] -= 1
            if depth[0] == 0:
                spent[0] += time.perf_counter() - depth[1]

    with event.install_listener("numba:compile", _Timer()):
        result = call()
    _recorded.add(key)
    n_layers = len(layout)
    estimate = (
        _GENERIC_S
        if name == "generic"
        else _SPECIAL_BASE_S + _SPECIAL_PER_LAYER_S * n_layers
    )
    entry = {
        "kernel": name,
        "dtype": key[1],
        "loss": int(loss_code),
        "optimizer": int(optimizer_code),
        "layers": n_layers,
        "seconds": round(spent[0], 3),
        "estimate": estimate,
    }
    path = folder / f"{name}-{key[1]}-{_cpu()}.json"
    if spent[0] > 0 or not path.exists():
        with contextlib.suppress(OSError):
            _write_once(path, json.dumps(entry) + "\n")
    return result
