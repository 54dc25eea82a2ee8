"""Ctrl-C and SIGTERM during training: finish the step, keep the work, exit.

While `catching()` is active (one process training, in its main thread), the first SIGINT or
SIGTERM only raises a flag; the training loop sees it after the step under way, writes
last.pt (with what resuming mid-epoch needs) and raises `Interrupted`, which the command line
turns into one line and exit code 130 (SIGINT) or 143 (SIGTERM). A second signal stops at
once: KeyboardInterrupt or SystemExit(143), raised wherever the program is. Checkpoints are
written to a temporary file and renamed (files.write_atomic), so even then no file is half written.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """Training stopped on a signal after writing its checkpoint."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum

    def __reduce__(self):  # raised in a study's worker process, re-raised in the parent
        return Interrupted, (self.signum, str(self))

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


class Flag:
    def __init__(self):
        self.signum = 0  # the first signal received, 0 for none

    def __bool__(self) -> bool:
        return bool(self.signum)


NEVER = Flag()  # where no handler is installed (a thread, a torchrun process): never raised


@contextmanager
def catching() -> Iterator[Flag]:
    """Install the handlers for the duration; yields the flag the loop checks."""
    if threading.current_thread() is not threading.main_thread():
        yield NEVER
        return
    flag = Flag()

    def handle(signum, frame):
        if flag.signum:  # the second: stop now
            for s in SIGNALS:
                signal.signal(s, signal.SIG_DFL)
            if signum == signal.SIGINT:
                raise KeyboardInterrupt
            raise SystemExit(128 + signum)
        flag.signum = signum

    before = {s: signal.signal(s, handle) for s in SIGNALS}
    try:
        yield flag
    finally:
        for s, h in before.items():
            signal.signal(s, h)
