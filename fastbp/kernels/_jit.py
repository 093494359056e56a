"""The one place kernels get their Numba options, their cache and their errors.

Every kernel is declared with :func:`kernel`, which is ``numba.njit`` with

- ``fastmath`` from :data:`fastbp._config.FASTMATH` (never a literal, so the NaN
  checks keep working) and ``error_model="numpy"`` (no ZeroDivisionError branch
  in the inner loops);
- an on-disk cache in a per-user directory (below), and
- a readable ``TypeError`` in place of Numba's typing traceback when a kernel is
  called with argument types it has no implementation for.

Where the cache goes, and how it is kept fresh
----------------------------------------------
Numba's default cache lives in ``__pycache__`` beside the source and is
invalidated by the hash of the *one* file that defines a function. Two things
go wrong with that for a package like this (numba issues #1833, #9483): a kernel
that calls a helper from another file (``epoch.py`` calls ``dense.py``), or reads
a threshold from ``_config.py``, keeps running stale machine code after that
other file changes; and an installed, read-only package falls back to
``~/.cache/numba`` or, with a read-only home too, fails to import.

So every kernel is cached under

    $FASTBP_CACHE_DIR, else $NUMBA_CACHE_DIR/fastbp, else
    $XDG_CACHE_HOME/fastbp, else ~/.cache/fastbp

in a sub-directory named after :data:`SOURCE_STAMP`, one hash of the Numba
version, the BLAS the kernels call (``blas.GEMM``), ``_config.py`` and every
file in ``fastbp/kernels``. Editing any of
them moves every kernel to a fresh directory, so nothing stale is ever loaded.
When no candidate is writable the kernels still work, compiled afresh in every
process (a warning says so).

The directory is handed to Numba through its documented setting
``numba.config.CACHE_DIR`` (the ``NUMBA_CACHE_DIR`` variable; Numba's
``UserProvidedCacheLocator`` reads it once, when ``njit(cache=True)`` builds a
function's cache). :func:`kernel` sets it only around that ``njit`` call and
restores it in ``finally``, so importing fastbp changes no Numba setting and
registers nothing inside Numba. Trade-offs:

- any edit to one kernel file recompiles all kernels (a few seconds, once);
- directories of old stamps are left behind (delete the cache directory to
  reclaim the space; a few hundred KB each);
- a Python thread defining Numba functions in another library at the very
  moment fastbp defines a kernel could see fastbp's directory;
- ``NUMBA_CACHE_LOCATOR_CLASSES``, if set, is honoured: a list without
  ``UserProvidedCacheLocator`` puts the cache where that list says, and one
  that finds no usable place leaves the kernels uncached instead of failing.

Numba's supported alternatives were weighed: the default ``__pycache__`` (or
``NUMBA_CACHE_DIR`` alone) keys each function on its own file only, which is
the stale-cache bug above; a locator class of our own can only be added by
editing ``numba.core.caching.CacheImpl._locator_classes`` (private, and global
to the process) or through ``NUMBA_CACHE_LOCATOR_CLASSES`` (an environment
variable the user owns, which fastbp must not set on import).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import numba
from numba.core import errors, types
from numba.extending import overload

from .._config import FASTMATH
from .blas import GEMM, register_symbols

_PACKAGE_DIR = Path(__file__).resolve().parent.parent
_KERNEL_DIR = Path(__file__).resolve().parent


def _source_hash() -> str:
    digest = hashlib.sha256(numba.__version__.encode())
    digest.update(GEMM.encode())  # the BLAS compiled kernels call (blas.py)
    sources = [_PACKAGE_DIR / "_config.py", *sorted(_KERNEL_DIR.glob("*.py"))]
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _candidate_dirs() -> list[Path]:
    env = os.environ
    dirs = []
    if env.get("FASTBP_CACHE_DIR"):
        dirs.append(Path(env["FASTBP_CACHE_DIR"]))
    if env.get("NUMBA_CACHE_DIR"):
        dirs.append(Path(env["NUMBA_CACHE_DIR"]) / "fastbp")
    if env.get("XDG_CACHE_HOME"):
        dirs.append(Path(env["XDG_CACHE_HOME"]) / "fastbp")
    dirs.append(Path.home() / ".cache" / "fastbp")
    return dirs


def _writable_cache_dir(stamp: str) -> Path | None:
    for base in _candidate_dirs():
        path = base / stamp
        try:
            path.mkdir(parents=True, exist_ok=True)
            tempfile.TemporaryFile(dir=path).close()
        except OSError:
            continue
        return path
    return None


#: Hash of the Numba version, the kernels' BLAS, ``_config.py`` and every kernel
#: source file.
SOURCE_STAMP = _source_hash()
#: Directory holding the compiled kernels, or None when caching is off. Numba
#: puts each source directory's files in a sub-directory of it.
CACHE_DIR = _writable_cache_dir(SOURCE_STAMP)

if CACHE_DIR is None:
    warnings.warn(
        "fastbp: no writable cache directory (set FASTBP_CACHE_DIR); kernels will "
        "be compiled again in every process",
        RuntimeWarning,
        stacklevel=2,
    )


@contextlib.contextmanager
def _numba_cache_dir(path: Path) -> Iterator[None]:
    """numba.config.CACHE_DIR set to path inside the block, restored after."""
    saved = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(path)
    try:
        yield
    finally:
        numba.config.CACHE_DIR = saved


def _describe(value) -> str:
    try:
        return str(numba.typeof(value))
    except ValueError:
        return type(value).__name__


def _friendly_typing_errors(dispatcher, register=None):
    """Replace Numba's typing traceback with a one-line TypeError, and
    register the BLAS symbols (blas.register_symbols), and those of
    ``register`` when given, before the dispatcher compiles or loads a
    version, whether called from Python or typed inside another jitted
    function.

    Numba calls ``dispatcher._compile_for_args`` and ``compile`` only when no
    compiled version matches the argument types, so this costs nothing on
    the hot path.
    """
    if not hasattr(dispatcher, "_compile_for_args"):
        return dispatcher  # NUMBA_DISABLE_JIT=1: a plain Python function
    compile_for_args = dispatcher._compile_for_args
    name = dispatcher.py_func.__name__

    def _compile_for_args(*args, **kwargs):
        try:
            return compile_for_args(*args, **kwargs)
        except errors.TypingError:
            got = ", ".join(_describe(a) for a in args)
            raise TypeError(
                f"{name}() has no implementation for ({got}); kernels take "
                "C-contiguous float32 or float64 arrays of one dtype, as the "
                "docstring lists"
            ) from None

    dispatcher._compile_for_args = _compile_for_args
    compile_signature = dispatcher.compile

    def compile(sig):  # from Python, or when another jitted function types it
        register_symbols()  # what the machine code links against (blas.py)
        if register is not None:
            register()
        return compile_signature(sig)

    dispatcher.compile = compile
    return dispatcher


def kernel(func=None, register=None, **options):
    """``numba.njit`` with fastbp's cache, fastmath set and error messages.

    ``register``, if given, is called before the kernel compiles or loads
    from the cache, to give LLVM the addresses of symbols its code calls by
    name (distributed.register_symbols: MPI's), as blas.register_symbols is
    for every kernel.

    ``_nrt`` (Numba's reference counting and allocation) is set explicitly,
    True unless the options say otherwise: a kernel compiled because an
    ``_nrt=False`` kernel calls it would otherwise inherit False (Numba's
    ``CPUTargetOptions.finalize``), and then fail if it allocates.
    """
    options = {
        "cache": CACHE_DIR is not None,
        "fastmath": set(FASTMATH),
        "error_model": "numpy",
        "_nrt": True,
        **options,
    }

    def decorate(f):
        if options["cache"] and CACHE_DIR is not None:
            try:
                with _numba_cache_dir(CACHE_DIR):
                    dispatcher = numba.njit(**options)(f)
                return _friendly_typing_errors(dispatcher, register)
            except RuntimeError:
                pass  # "no locator available": NUMBA_CACHE_LOCATOR_CLASSES
        dispatcher = numba.njit(**{**options, "cache": False})(f)
        return _friendly_typing_errors(dispatcher, register)

    return decorate if func is None else decorate(func)


def same_dtype(a, b):
    """Inside a kernel: reject, at compile time, arrays of two different dtypes.

    Kernels mix no dtypes (a float64 scalar path through float32 data would
    silently promote, numba #888), so a call such as ``relu_forward(x32, y64)``
    becomes a typing error, which :func:`kernel` turns into a TypeError.
    """


@overload(same_dtype)
def _same_dtype(a, b):
    if not (isinstance(a, types.Array) and isinstance(b, types.Array)):
        raise errors.TypingError(f"expected two arrays, got {a} and {b}")
    if a.dtype != b.dtype:
        raise errors.TypingError(f"arrays of different dtypes: {a.dtype} and {b.dtype}")
    return lambda a, b: None
