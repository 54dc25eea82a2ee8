"""One writer per run directory: an exclusive lock on RUN/.lock while a process trains it.

The lock is the operating system's (`fcntl.flock`), taken without waiting: a second process
that asks for it is refused at once with the holder's process id, which the holder writes
into the file. The kernel drops the lock when its holder dies, however it dies (kill -9
included), so a lock left by a dead process is simply taken by the next one; no stale file
needs cleaning. It is taken once, by the one owner of training a run (training/owner.py), and
not re-entrant: a second request in the same process is refused like another process's. Where
the platform has no flock (Windows), runs are not locked.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from aelab.errors import AelabError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


@dataclass(frozen=True)
class Held:
    """A run directory this process holds: what `locked` gives, for a caller to pass on to the
    code that trains the run (training/owner.py) instead of locking it again."""

    path: Path


def holder(path: Path) -> str:
    """The process id written by the lock's holder, or '?'."""
    try:
        return (path / ".lock").read_text().strip() or "?"
    except OSError:
        return "?"


@contextmanager
def locked(path: Path) -> Iterator[Held]:
    """Hold the run directory `path` for this process, or raise AelabError naming the process
    that holds it. The lock is not re-entrant: a second `locked` on the same directory, in
    this process or another, is refused; hold it once and pass the `Held` on."""
    key = Path(path).resolve()
    if fcntl is None:
        yield Held(key)
        return
    fd = os.open(key / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AelabError(f"{path}: being trained by another process (pid {holder(key)}); "
                         "wait for it, or stop it (a lock left by a dead process is taken over)") from None
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield Held(key)
    finally:
        os.close(fd)  # releases the lock; the file stays, empty of meaning
