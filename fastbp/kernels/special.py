"""Per-architecture training kernels: the fused epoch loop with every layer
width written into the source as a literal.

The generic fused kernel (epoch.py) serves every architecture with one
compiled loop, so its layer loops run to widths known only at run time: for
a network as small as XOR's 2-8-1 the step is mostly loop set-up, remainder
handling and calls. :func:`specialized` writes, once per architecture, a
module whose training step is the generic one unrolled over the layers, with
the widths, parameter offsets and activation codes as literals:

- tiny layers (``in * out <= MICRO_MAX_WEIGHTS``) and layers of one output
  call the inline loops of micro.py, which LLVM unrolls completely at these
  literal sizes;
- larger ones call the same BLAS-backed kernels as the generic step (a
  hand-written loop loses to OpenBLAS there).

Where it pays, measured 2026-11-25 (2-core AMD EPYC, 1 thread, float32 SGD,
µs per step, generic -> specialized): 2-8-1 batch 4: 0.75 -> 0.31;
4-4-4-4-1 batch 8: 1.85 -> 0.68; 8-16-8-2 batch 16: 2.27 -> 1.51;
16-16-16-1 batch 32: 5.26 -> 2.54; 32-64-1 batch 64: 8.4 -> 7.6; but ten
64-wide layers (39k weights): 184 -> 185, and 20-256-256-1 (71k): 1140 ->
1143, hence SPECIAL_MAX_WEIGHTS. Letting every layer up to 4,096 weights
take the micro-loops made things worse (16-16-16-1: 8.45; 32-32-32-1: 46.6
against 10.5), hence MICRO_MAX_WEIGHTS.

The epoch loop around the step is the generic one's own source
(:func:`epoch.epoch_loop_source`), so both paths share every line but the
step's, and compute the same (to rounding: the generic step may take BLAS
where the special one loops).

The module is written to ``<kernel cache>/special/fastbp_special_<hash>.py``
(atomically: temporary file and rename, so concurrent processes agree),
imported from there, and its kernel compiled with Numba's on-disk cache like
every other kernel: the first run of an architecture compiles it (about 3
s), later processes load it. The hash covers the architecture and, through
the cache directory's stamp, the kernel sources, so an edit to fastbp never
reuses an old module.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from ._jit import CACHE_DIR, SOURCE_STAMP
from .activations import ACT_IDENTITY, grad_from_input
from .epoch import EPOCH_LOOP_GLOBALS, L_ACT, L_B, L_IN, L_OUT, L_W, epoch_loop_source

__all__ = [
    "MICRO_MAX_WEIGHTS",
    "MAX_LAYERS",
    "SPECIAL_MAX_WEIGHTS",
    "eligible",
    "specialized",
]

#: Layers with at most this many weights (in * out), and layers of one
#: output, run the micro-kernels; the rest call the generic (BLAS) kernels.
MICRO_MAX_WEIGHTS = 64
#: Deeper networks use the generic kernel: the step's source grows with depth
#: and with it the compile time.
MAX_LAYERS = 16
#: Networks with more weights (sum of in * out) use the generic kernel: their
#: steps are BLAS-bound and specialization measured no gain (see above).
SPECIAL_MAX_WEIGHTS = 16384

#: Generated modules by name, and each layout's kernel by its bytes: a call
#: for a layout seen before in this process is one dict lookup.
_modules: dict[str, object] = {}
_kernels: dict[bytes, object] = {}


def eligible(layout: np.ndarray) -> bool:
    """Whether a specialized kernel pays for this layout: some layer is small
    enough for the micro-kernels, and the network has at most MAX_LAYERS
    layers and SPECIAL_MAX_WEIGHTS weights."""
    sizes = [(int(k), int(n)) for k, n in layout[:, [L_IN, L_OUT]]]
    return (
        len(sizes) <= MAX_LAYERS
        and sum(k * n for k, n in sizes) <= SPECIAL_MAX_WEIGHTS
        and any(_micro(k, n) for k, n in sizes)
    )


def _micro(k: int, n: int) -> bool:
    """Whether a Linear(k, n) layer runs the micro-kernels."""
    return n == 1 or k * n <= MICRO_MAX_WEIGHTS


def _micro_call(k: int, n: int) -> tuple[str, str]:
    """(name suffix, size arguments) of micro.py's kernels for Linear(k, n):
    layers of one output have their own versions, which take k alone."""
    return ("_1", f"{k}") if n == 1 else ("", f"{k}, {n}")


def _step_source(layout: np.ndarray) -> str:
    """The source of ``_train_step`` for this layout: _train_step of
    epoch.py with the layer loops unrolled and the sizes as literals."""
    rows = [tuple(int(v) for v in row) for row in layout]
    last = len(rows) - 1
    out = [
        '@kernel(inline="always")',
        "def _train_step(",
        "    x, xo, t, to, labels, lo, sw, swo, m, model, loss, l2, buffers, norms",
        "):",
        "    theta, grad, layout, act_hyper = model",
        "    hoff, h, z, d0, d1 = buffers",
    ]
    source = "x, xo"
    for layer, row in enumerate(rows):
        k, n, w, b, act = (row[c] for c in (L_IN, L_OUT, L_W, L_B, L_ACT))
        micro, (one, sizes) = _micro(k, n), _micro_call(k, n)
        span = f"hoff[{layer}] : hoff[{layer}] + m * {n}"
        out.append(f"    # layer {layer}: Linear({k}, {n}), activation code {act}")
        out.append(f"    p{layer} = hyper_row(act_hyper, {layer})")
        target = f"z, hoff[{layer}]" if grad_from_input(act) else f"h, hoff[{layer}]"
        fused_act = ACT_IDENTITY if grad_from_input(act) else act
        bias = f"theta[{b}:{b + n}]"
        if micro:
            out.append(
                f"    mm_forward{one}({source}, theta, {w}, {bias}, {target}, m, "
                f"{sizes})"
            )
            if fused_act != ACT_IDENTITY:
                out.append(
                    f"    activate_inplace(h[{span}], np.int64({act}), p{layer})"
                )
        else:
            out.append(
                f"    dense_forward_flat({source}, theta, np.int64({w}), {bias}, "
                f"{target}, m, np.int64({k}), np.int64({n}), np.int64({fused_act}), "
                f"p{layer})"
            )
        if grad_from_input(act):
            out.append(
                f"    activate_into(z[{span}], h[{span}], np.int64({act}), p{layer})"
            )
        source = f"h, hoff[{layer}]"
    n_out = rows[last][L_OUT]
    out.append(f"    out = h[hoff[{last}] : hoff[{last}] + m * {n_out}]")
    out.append(
        "    value, decay = step_loss("
        f"loss, out, t, to, labels, lo, sw, swo, d0[: m * {n_out}], m, {n_out}, l2)"
    )
    for layer in range(last, -1, -1):
        k, n, w, b, act = (rows[layer][c] for c in (L_IN, L_OUT, L_W, L_B, L_ACT))
        micro, (one, sizes) = _micro(k, n), _micro_call(k, n)
        span = f"hoff[{layer}] : hoff[{layer}] + m * {n}"
        out.append(f"    # layer {layer}, backward")
        if act != ACT_IDENTITY:
            keep = "z" if grad_from_input(act) else "h"
            out.append(
                f"    activate_backward_inplace({keep}[{span}], d0[: m * {n}], "
                f"np.int64({act}), p{layer})"
            )
        source = "x, xo" if layer == 0 else f"h, hoff[{layer - 1}]"
        grad_b = f"grad[{b}:{b + n}]"
        if micro:
            out.append(
                f"    mm_backward_params{one}({source}, d0, 0, grad, {w}, {grad_b}, "
                f"m, {sizes})"
            )
        else:
            out.append(
                f"    dense_backward_params_flat({source}, d0, np.int64(0), grad, "
                f"np.int64({w}), {grad_b}, m, np.int64({k}), np.int64({n}))"
            )
        out.append(
            f"    value += step_penalty(theta, grad, {w}, {k * n}, decay, norms, "
            f"{layer})"
        )
        if layer > 0:
            if micro:
                out.append(
                    f"    mm_backward_input{one}(d0, 0, theta, {w}, d1, 0, m, {sizes})"
                )
            else:
                out.append(
                    f"    dense_backward_input_flat(d0, np.int64(0), theta, "
                    f"np.int64({w}), d1, np.int64(0), m, np.int64({k}), "
                    f"np.int64({n}))"
                )
            out.append("    d0, d1 = d1, d0")
    out.append("    return value")
    return "\n".join(out) + "\n"


def module_source(layout: np.ndarray) -> str:
    """The whole generated module for a layout (see the module docstring)."""
    widths = [int(layout[0, L_IN]), *(int(v) for v in layout[:, L_OUT])]
    acts = [int(v) for v in layout[:, L_ACT]]
    imports = ", ".join((*EPOCH_LOOP_GLOBALS, "work_buffers"))
    return (
        f'"""fastbp: training kernel generated for widths {widths}, activation '
        f'codes {acts}.\n\nWritten by fastbp.kernels.special; do not edit."""\n\n'
        "import numpy as np\n\n"
        "from fastbp.kernels._jit import kernel\n"
        "from fastbp.kernels.activations import activate_backward_inplace, "
        "activate_inplace, activate_into, hyper_row\n"
        "from fastbp.kernels.dense import dense_backward_input_flat, "
        "dense_backward_params_flat, dense_forward_flat\n"
        f"from fastbp.kernels.epoch import step_loss, step_penalty, {imports}\n"
        "from fastbp.kernels.micro import (\n    mm_backward_input,\n"
        "    mm_backward_input_1,\n    mm_backward_params,\n"
        "    mm_backward_params_1,\n    mm_forward,\n    mm_forward_1,\n)\n\n\n"
        + _step_source(layout)
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


def specialized(layout: np.ndarray):
    """The specialized ``_train_epochs`` for this layout (same arguments as
    epoch._train_epochs), generated and imported on first use."""
    known = _kernels.get(layout.tobytes())
    if known is not None:
        return known
    return _load(layout.tobytes(), module_source(layout))


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
        "@kernel\n"
        "def work_buffers(layout, rows, n_parameters, dtype, stats):\n"
        "    return chunk_buffers(\n"
        f"        layout, rows, n_parameters, dtype, stats, {n_chunks}\n    )\n"
        "\n\n" + epoch_loop_source()
    )


def parallel(n_chunks: int):
    """The batch-parallel ``_train_epochs`` for n_chunks chunks per batch
    (same arguments as epoch._train_epochs), generated and imported on first
    use. It lives in a module of its own so that its compilation (several
    seconds: Numba's parallel passes) is paid only by runs that use it."""
    key = f"parallel {n_chunks}".encode()
    known = _kernels.get(key)
    if known is not None:
        return known
    return _load(key, parallel_source(n_chunks))


def distributed_source(sharded: bool, sync_every: int = 1) -> str:
    """The module of the data-parallel epoch loop: epoch._train_epochs'
    source around distributed.mpi_step (mpi_shard_step for sharded data),
    or, for sync_every K > 1, around local_step (local_shard_step) with the
    optimizer's update followed every K steps by average_weights (any
    architecture)."""
    imports = ",\n    ".join(EPOCH_LOOP_GLOBALS)
    shard = "_shard" if sharded else ""
    buffers = f"mpi{shard}_buffers"
    head = (
        '"""fastbp: the data-parallel (MPI) fused epoch loop.\n\n'
        'Written by fastbp.kernels.special; do not edit."""\n\n'
        "import numpy as np\n\n"
        "from fastbp.kernels._jit import uncached_kernel as kernel\n"
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
        "        n = theta.shape[0] + theta.shape[0] % 2\n"
        "        average_weights(theta, np.empty(n, theta.dtype), "
        "np.empty(n, theta.dtype))\n\n\n" + epoch_loop_source()
    ).replace("{K}", str(sync_every))


def distributed(sharded: bool = False, sync_every: int = 1):
    """The data-parallel ``_train_epochs`` (same arguments as
    epoch._train_epochs), generated and imported on first use; it imports
    numba-mpi."""
    key = f"distributed {sharded} {sync_every}".encode()
    known = _kernels.get(key)
    if known is not None:
        return known
    return _load(key, distributed_source(sharded, sync_every))


def _load(key: bytes, text: str):
    """Write (once), import and remember the module holding text; its
    ``_train_epochs``."""
    digest = hashlib.sha256(f"{SOURCE_STAMP}\n{text}".encode()).hexdigest()[:16]
    name = f"fastbp_special_{digest}"
    if name in _modules:
        return _kernels.setdefault(key, _modules[name]._train_epochs)
    base = CACHE_DIR if CACHE_DIR is not None else Path(tempfile.gettempdir())
    path = base / "special" / f"{name}.py"
    _write_once(path, text)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # Numba's cache pickles by module name
    spec.loader.exec_module(module)
    _modules[name] = module
    return _kernels.setdefault(key, module._train_epochs)
