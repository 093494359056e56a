"""Model files: save a Sequential with its metadata to ``.npz``, load it back.

A model file is an uncompressed NumPy ``.npz`` archive holding only numeric
and text arrays, so loading never unpickles anything:

=================  =========================================================
entry              content
=================  =========================================================
format             "fastbp-model"
format_version     1 (integer)
fastbp_version     version of fastbp that wrote the file
architecture       JSON of :meth:`Sequential.architecture`
dtype              "float32" or "float64"
param/<name>       one array per parameter, named as by
                   :meth:`Sequential.named_parameters` ("param/0.weight")
meta               JSON object, as the caller stored it (fastbp.problem's:
                   feature_names, target_name, task, classes, standardizer,
                   loss, metric)
=================  =========================================================

Saving is atomic: the archive is written to a temporary file in the target's
directory, synced, then renamed over the target, so a failure never leaves a
half-written model or damages an existing one. Loading checks everything and
raises :class:`ModelFileError` with a one-line message naming the file and the
problem.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from numbers import Integral
from typing import IO

import numpy as np

from .._files import NpzEntries, atomic_file, first_line, open_npz
from .._version import __version__
from ..nn.layers import Sequential

__all__ = [
    "ModelFileError",
    "save_model",
    "load_model",
    "atomic_file",
    "write_text_atomic",
    "FORMAT",
    "FORMAT_VERSION",
]

FORMAT = "fastbp-model"
FORMAT_VERSION = 1
_HEADER_KEYS = ("format", "format_version", "fastbp_version", "architecture", "dtype")
_PARAM = "param/"
#: How many more parameters than a file stores its architecture may ask for
#: before load_model refuses to build it (the mismatch is reported anyway).
_SLACK = 1 << 20


class ModelFileError(ValueError):
    """A model file that cannot be loaded; the message is one line naming the
    file and what is wrong with it."""


def _jsonable(value: object) -> object:
    """json.dumps fallback for NumPy arrays and scalars."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


def save_model(
    path: str | os.PathLike, model: Sequential, *, meta: dict | None = None
) -> None:
    """Write model and meta to path as a fastbp ``.npz`` model file, atomically.

    Parameters
    ----------
    path : str or path-like
        Target file, used exactly as given (".npz" is not appended). An
        existing file is replaced only once the new one is complete.
    model : Sequential
        Its parameters must all be finite.
    meta : dict or None
        Stored as given (an empty object when None): any JSON-serializable
        dict, NumPy arrays and scalars converted. Its schema (feature names,
        task, classes, standardizer) is :mod:`fastbp.problem`'s:
        :func:`fastbp.problem.save` checks it against the model and fills in
        what is missing before calling this.

    Raises
    ------
    TypeError
        model is not a Sequential or meta not a dict.
    ValueError
        meta is not JSON-serializable, or a parameter holds NaN or infinity.
    OSError
        The file cannot be written; nothing is left behind and an existing
        target is unchanged.
    """
    if not isinstance(model, Sequential):
        raise TypeError(
            f"save_model: model must be a fastbp Sequential, got {type(model).__name__}"
        )
    if meta is None:
        meta = {}
    if not isinstance(meta, dict):
        raise TypeError(f"save_model: meta must be a dict, got {type(meta).__name__}")
    try:
        meta_json = json.dumps(meta, default=_jsonable, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"save_model: meta is not JSON-serializable: {exc}") from None
    arrays = {
        "format": np.array(FORMAT),
        "format_version": np.array(FORMAT_VERSION, dtype=np.int64),
        "fastbp_version": np.array(__version__),
        "architecture": np.array(json.dumps(model.architecture())),
        "dtype": np.array(model.flat_data.dtype.name),
        "meta": np.array(meta_json),
    }
    for name, p in model.named_parameters():
        if not np.all(np.isfinite(p.data)):
            raise ValueError(
                f"save_model: parameter {name!r} contains NaN or infinity "
                "(the model diverged)"
            )
        arrays[_PARAM + name] = p.data
    # A file object, not a name: np.savez would append ".npz" to a name.
    _write_atomic(os.fspath(path), lambda f: np.savez(f, **arrays))


def _write_atomic(target: str, write: Callable[[IO[bytes]], None]) -> None:
    """write(file) through :func:`atomic_file`."""
    with atomic_file(target) as f:
        write(f)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write text (UTF-8) to path atomically: a reader sees the old file or the
    whole new one, never a partial file."""
    _write_atomic(os.fspath(path), lambda f: f.write(text.encode("utf-8")))


def load_model(path: str | os.PathLike) -> tuple[Sequential, dict]:
    """Read a model file written by :func:`save_model`.

    Parameters
    ----------
    path : str or path-like

    Returns
    -------
    model : Sequential
        Built from the stored architecture and dtype, with the stored weights.
    meta : dict
        The stored metadata (JSON types: lists, not tuples or arrays).

    Raises
    ------
    ModelFileError
        The file is missing, unreadable, not a zip/npz archive, corrupt or
        truncated, not a fastbp model (no or wrong ``format``), of an
        unsupported format version, or any entry is missing, unexpected,
        malformed (architecture, dtype, meta), of the wrong shape or dtype,
        non-finite, or an object (pickle) array. Nothing is ever unpickled.
    """
    path = os.fspath(path)
    with open_npz(path, ModelFileError, "a fastbp model file") as r:
        return _read_model(r)


def _read_model(r: NpzEntries) -> tuple[Sequential, dict]:
    r.header(FORMAT, FORMAT_VERSION, "a fastbp model file")
    for key in r.files:
        if key not in _HEADER_KEYS and key != "meta" and not key.startswith(_PARAM):
            raise r.fail(f"unexpected entry {key!r}")
    r.text("fastbp_version")
    dtype = r.text("dtype")
    if dtype not in ("float32", "float64"):
        raise r.fail(f"dtype must be 'float32' or 'float64', got {dtype!r}")
    arch = r.json("architecture")
    stored = {
        key[len(_PARAM) :]: r.array(key) for key in r.files if key.startswith(_PARAM)
    }
    # Precise shape errors come after building; this only stops a forged file
    # from making us allocate a model far larger than the file.
    n_stored = sum(arr.size for arr in stored.values())
    n_needed = _arch_size(arch)
    if n_needed > n_stored + _SLACK:
        raise r.fail(
            f"architecture needs {n_needed} parameters, the file stores {n_stored}"
        )
    try:
        model = Sequential.from_architecture(arch, dtype=dtype, rng=0)
    except Exception as exc:
        raise r.fail(f"invalid architecture ({first_line(exc)})") from None
    expected = dict(model.named_parameters())
    extra = sorted(set(stored) - set(expected))
    if extra:
        raise r.fail(f"unexpected parameter {_PARAM + extra[0]!r}")
    for name, p in expected.items():
        key = _PARAM + name
        if name not in stored:
            raise r.fail(f"missing parameter {key!r}")
        arr = stored[name]
        if arr.shape != p.data.shape:
            raise r.fail(
                f"parameter {key!r} has shape {arr.shape}, the architecture needs "
                f"{p.data.shape}"
            )
        if arr.dtype != p.data.dtype:
            raise r.fail(
                f"parameter {key!r} has dtype {arr.dtype}, the model dtype is {dtype}"
            )
        if not np.all(np.isfinite(arr)):
            raise r.fail(f"parameter {key!r} contains NaN or infinity")
        p.data[...] = arr
    meta = r.json("meta")
    if not isinstance(meta, dict):
        raise r.fail(f"meta must be a JSON object, got {type(meta).__name__}")
    return model, meta


def _arch_size(arch: object) -> int:
    """Parameter count implied by the Linear layers of arch (0 where unclear),
    checked before building so a forged file cannot make us allocate a huge
    model."""
    total = 0
    for spec in arch if isinstance(arch, list) else ():
        if isinstance(spec, dict) and spec.get("type") == "linear":
            n_in, n_out = spec.get("in_features"), spec.get("out_features")
            if isinstance(n_in, Integral) and isinstance(n_out, Integral):
                total += max(int(n_in), 0) * max(int(n_out), 0) + max(int(n_out), 0)
    return total
