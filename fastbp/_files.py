"""Opening a user's file with a one-line error instead of a traceback."""

from __future__ import annotations

import os
import tempfile
from typing import IO


def open_input(path: str, error: type[Exception], what: str, **kwargs) -> IO:
    """``open(path, **kwargs)``; the usual failures become ``error`` with a one-line
    message naming the file (``what`` names the kind of file expected)."""
    try:
        return open(path, **kwargs)
    except FileNotFoundError:
        raise error(f"{path}: no such file") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot open ({exc.strerror})") from None


def unwritable_reason(path: str, *, folder: bool = False) -> str | None:
    """Why ``path`` cannot be written (as a file, or a folder to create files
    in when ``folder``), or None when it can.

    Tried for real: a temporary file is created and removed in the folder that
    would hold the output, so read-only mounts and pseudo-filesystems such as
    /proc are caught before any work is done.
    """
    if not path:
        return "the path is empty"
    target = os.path.abspath(path)
    if folder:
        if os.path.exists(target) and not os.path.isdir(target):
            return f"{path!r} exists and is not a folder"
        # The folder is created if missing: its nearest existing parent must
        # take new entries.
        probe = target
        while not os.path.exists(probe):
            probe = os.path.dirname(probe)
    else:
        if os.path.isdir(target):
            return f"{path!r} is a folder, not a file"
        probe = os.path.dirname(target)
        if not os.path.isdir(probe):
            return f"folder {probe!r} does not exist"
    try:
        tempfile.TemporaryFile(dir=probe).close()
    except OSError as exc:
        return f"cannot write in folder {probe!r} ({exc.strerror})"
    return None
