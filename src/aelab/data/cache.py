"""The caches aelab keeps under $AELAB_CACHE (default ~/.cache/aelab): the MNIST IDX files
written back from the wheel, decoded image folders, the reference classifiers and their
features of the test images.

Everything in a cache can be made again, so every entry is read through `cached`: an entry
that is missing is built; one that cannot be read (cut short by a kill or a full disk,
damaged in any way) is built again, with one warning line naming the file. Entries are
written atomically (files.write_atomic), so a kill during the write leaves the old entry or
none, never half of one.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, TypeVar

T = TypeVar("T")


def cache_dir() -> Path:
    return Path(os.environ.get("AELAB_CACHE") or Path.home() / ".cache" / "aelab")


class Unreadable(Exception):
    """Raised by a cache entry's reader for an entry that is there but not what it should be."""


def cached(path: Path, read: Callable[[Path], T], build: Callable[[], T], write: Callable[[Path, T], None]) -> T:
    """`read(path)`; where the entry is missing, `build()` and `write(path, value)` it; where it
    cannot be read (any exception of the reader's, AelabError too: a checkpoint's reader says
    so with one), the same, after one warning naming it."""
    if path.is_file():
        try:
            return read(path)
        except Exception as e:  # noqa: BLE001 - a torn file raises many kinds (BadZipFile, EOFError, ...)
            print(f"warning: {path}: damaged cache entry ({_why(e, path)}); building it again", file=sys.stderr)
    value = build()
    write(path, value)
    return value


def _why(error: Exception, path: Path) -> str:
    """The reader's complaint, short: its first sentence, without the path said again."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = text.removeprefix(f"{path}: ")
    text = text.split(". ")[0]
    return text if len(text) <= 120 else text[:117] + "..."
