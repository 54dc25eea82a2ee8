"""Writing files so that a crash never leaves half of one behind, and so that a write the
file system refuses (a full disk, a quota, a read-only mount, no permission) ends in one line
naming the file, not a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from pathlib import Path

from aelab.errors import AelabError

# errno of a refused write -> what it means, in the error line
REFUSED = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.ENOTDIR: "a part of the path is a file, not a folder",
    errno.EEXIST: "a part of the path is a file, not a folder",
}


class WriteError(AelabError):
    """A file could not be written because the file system refused it. What was written
    before is whole (writes are atomic); the caller may add how to go on."""

    def __init__(self, path: Path, error: OSError):
        self.path, self.errno = Path(path), error.errno
        why = REFUSED.get(error.errno, "cannot write")
        super().__init__(f"{path}: cannot write: {why} ({error.strerror or error})")


@contextlib.contextmanager
def writing(path: Path):
    """Turn an OSError of the file system's refusal (REFUSED) inside the block into a WriteError naming `path`."""
    try:
        yield
    except OSError as e:
        if e.errno in REFUSED:
            raise WriteError(path, e) from None
        raise


def check_output(path: str | Path, option: str = "--out", folder: bool = False) -> Path:
    """An output path a user gave, checked before any work starts: the nearest part of it that
    exists (the path itself too, for a `folder` such as a run or report directory) must be a
    folder we may write in; the rest is created when written."""
    path = Path(path)
    for part in [*([path] if folder else []), *path.parents]:
        if part.exists():
            if not part.is_dir():
                raise AelabError(f"{option} {path}: {part} is a file, not a folder")
            if not os.access(part, os.W_OK | os.X_OK):
                raise AelabError(f"{option} {path}: cannot write in {part} (permission denied)")
            return path
    return path


def _umask() -> int:
    """The process's umask, read when a file is written (Linux reports it in /proc; elsewhere
    it can only be read by setting it, which this sets straight back)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write `data` to `path` through a temporary file and a rename: never half a file. A write
    the file system refuses raises WriteError, and no temporary file is left behind."""
    if isinstance(data, str):
        data = data.encode()
    path = Path(path)
    with writing(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o666 & ~_umask())  # the usual mode, not mkstemp's 0o600
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def append_line(path: Path, line: str) -> None:
    """Append one line (a line cut short by a kill or a full disk is dropped by its readers)."""
    with writing(path), path.open("a") as f:
        f.write(line + "\n")
