"""Writing files all or nothing: the model files of :func:`lifted_idl.save` and the outputs of
the ``lifted-idl`` command."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__: list[str] = []


def _umask() -> int:
    """The process's umask: from ``/proc/self/status`` where the system has it (Linux), else
    by setting it and restoring it at once (``os.umask`` returns the previous mask)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_file_mode(path: Path) -> int:
    """The permissions ``open(path, "w")`` would leave: those of the file already at ``path``,
    else ``0o666`` less the umask."""
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        return 0o666 & ~_umask()


@contextlib.contextmanager
def atomic_write(path, mode: str = "w"):
    """Write ``path`` all or nothing: a file object on a temporary file beside it.

    The temporary file is created in ``path``'s directory with the permissions ``open(path,
    "w")`` would give (those of the file it replaces, else ``0o666`` less the umask). When the
    ``with`` block ends without an exception it is flushed, synced to disk and renamed over
    ``path`` (:func:`os.replace`, atomic on POSIX file systems); on any exception, Ctrl-C
    included, it is removed and ``path`` is left as it was. ``mode`` is ``"w"`` (text, UTF-8)
    or ``"wb"``.

    Raises
    ------
    OSError
        When the file cannot be created, written or renamed.
    """
    path = Path(path)
    perm = _new_file_mode(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp",
                               dir=path.parent if str(path.parent) else ".")
    try:
        if hasattr(os, "fchmod"):  # mkstemp creates the file with mode 0600
            os.fchmod(fd, perm)
        fh = os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"}))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    try:
        with fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
