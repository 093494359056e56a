"""Files with one-line errors: opening a user's file, checking that an output
can be written, writing atomically (temporary file + rename) and reading
fastbp's pickle-free ``.npz`` archives (model files, checkpoints)."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from typing import IO

import numpy as np

from ._version import __version__


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


def file_kind(path: str) -> str | None:
    """What the file at path is, read from its first bytes: "fastbp-model"
    or "fastbp-checkpoint" (fastbp's archives, by their 'format' entry),
    "npz" (another zip archive, or one that cannot be read), "other" (a
    file that is not a zip archive), or None when there is no file there or
    it is empty. Lets an output refuse to replace a file of another kind."""
    try:
        with open(path, "rb") as f:
            head = f.read(2)
    except OSError:
        return None
    if not head:
        return None
    if head != b"PK":
        return "other"
    try:
        with np.load(path, allow_pickle=False) as npz:
            kind = str(npz["format"][()]) if "format" in npz.files else "npz"
    except Exception:  # a zip that is not .npz data: not ours to judge
        return "npz"
    return kind if kind in ("fastbp-model", "fastbp-checkpoint") else "npz"


#: How file_kind's answers read in a message.
KIND_WORDS = {
    "fastbp-model": "a fastbp model file",
    "fastbp-checkpoint": "a fastbp checkpoint",
    "npz": "an .npz archive",
    "other": "a file of another kind",
}


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[IO[bytes]]:
    """A binary file to write ``path`` through, atomically: the data goes to a
    temporary file beside path, which replaces path (synced, with path's
    permissions or the umask's) when the block ends normally. If the block
    raises, the temporary file is removed and path is untouched, so a reader
    sees the old file or the whole new one, never a partial file."""
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    mode = _new_file_mode(target)
    tmp = tempfile.NamedTemporaryFile(
        dir=directory,
        prefix=f".{os.path.basename(target)}.",
        suffix=".tmp",
        delete=False,
    )
    try:
        with tmp:
            yield tmp
            tmp.flush()
            os.fsync(tmp.fileno())
        os.chmod(tmp.name, mode)  # NamedTemporaryFile creates it 0o600
        os.replace(tmp.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    _fsync_directory(directory)


def _new_file_mode(target: str) -> int:
    """The existing target's permissions, else 0o666 less the umask."""
    with contextlib.suppress(OSError):
        return stat.S_IMODE(os.stat(target).st_mode)
    umask = 0o022
    # Reading the umask with os.umask() would change it process-wide for a moment.
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Umask:"):
                umask = int(line.split()[1], 8)
    return 0o666 & ~umask


def _fsync_directory(directory: str) -> None:
    """Make the rename durable where the OS allows syncing a directory."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if empty)."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


class NpzEntries:
    """Typed access to the entries of an open ``.npz`` archive; every misuse
    (missing entry, pickled objects, wrong kind) is ``error`` with a one-line
    message naming the file."""

    def __init__(
        self, npz: np.lib.npyio.NpzFile, path: str, error: type[Exception]
    ) -> None:
        self.npz = npz
        self.path = path
        self.error = error

    @property
    def files(self) -> list[str]:
        """The archive's entry names."""
        return self.npz.files

    def fail(self, problem: str) -> Exception:
        """``error("<path>: <problem>")``, to raise."""
        return self.error(f"{self.path}: {problem}")

    def array(self, key: str) -> np.ndarray:
        """The entry ``key`` as an array, never unpickled."""
        if key not in self.npz.files:
            raise self.fail(f"missing entry {key!r}")
        try:
            arr = self.npz[key]
        except ValueError as exc:
            if "allow_pickle" in str(exc):
                raise self.fail(
                    f"entry {key!r} holds pickled Python objects, which fastbp "
                    "never loads"
                ) from None
            raise self.fail(
                f"entry {key!r} is unreadable ({first_line(exc)})"
            ) from None
        except Exception as exc:
            raise self.fail(
                f"entry {key!r} is unreadable ({first_line(exc)})"
            ) from None
        if not isinstance(arr, np.ndarray):  # a zip member that is not .npy data
            raise self.fail(f"entry {key!r} is not a NumPy array")
        return arr

    def text(self, key: str) -> str:
        """The entry ``key``, a text scalar."""
        arr = self.array(key)
        if arr.ndim != 0 or arr.dtype.kind != "U":
            raise self.fail(
                f"entry {key!r} must be a text scalar, got {arr.dtype} array of "
                f"shape {arr.shape}"
            )
        return str(arr[()])

    def json(self, key: str) -> object:
        """The entry ``key``, a text scalar holding JSON, parsed."""
        text = self.text(key)
        try:
            return json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self.fail(f"entry {key!r} is not valid JSON ({exc})") from None

    def header(self, kind: str, version: int, what: str) -> None:
        """Check the entries ``format`` == kind and ``format_version`` ==
        version (an integer scalar) that fastbp's files start with; what
        names the kind of file ("a fastbp model file")."""
        if "format" not in self.npz.files:
            raise self.fail(f"not {what} (an .npz archive without 'format')")
        if self.text("format") != kind:
            raise self.fail(
                f"not {what} (format {self.text('format')!r}, expected {kind!r})"
            )
        found = self.array("format_version")
        if found.ndim != 0 or found.dtype.kind not in "iu":
            raise self.fail("entry 'format_version' must be an integer scalar")
        if int(found) != version:
            raise self.fail(
                f"format version {int(found)} is not supported (fastbp "
                f"{__version__} reads version {version})"
            )


@contextlib.contextmanager
def open_npz(path: str, error: type[Exception], what: str) -> Iterator[NpzEntries]:
    """The ``.npz`` archive at path, opened without pickle support, as
    :class:`NpzEntries`; a missing, unreadable, non-zip, truncated or
    corrupt file is ``error`` with one line naming path (``what`` names the
    kind of file expected, "a fastbp model file")."""
    f = open_input(path, error, what, mode="rb")
    with f:
        if f.read(2) != b"PK":
            raise error(f"{path}: not {what} (not a .npz/zip archive)")
        f.seek(0)
        try:
            npz = np.load(f, allow_pickle=False)
        except Exception as exc:
            raise error(
                f"{path}: corrupt or truncated .npz archive ({first_line(exc)})"
            ) from None
        if not isinstance(npz, np.lib.npyio.NpzFile):
            raise error(f"{path}: not {what} (not a .npz archive)")
        with npz:
            yield NpzEntries(npz, path, error)
