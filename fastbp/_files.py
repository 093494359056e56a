"""Opening a user's file with a one-line error instead of a traceback."""

from __future__ import annotations

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
