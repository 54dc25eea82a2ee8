"""Images from a folder: any directory of JPEG or PNG files (searched recursively), decoded
once into a uint8 array of square RGB images and cached.

Each file is converted to RGB (greyscale replicated, alpha dropped), resized so that its
shorter side is `size` and centre-cropped to size x size. The array is cached under
AELAB_CACHE/folders, keyed by a hash of the file list (relative paths, byte sizes,
modification times) and the size, so a changed folder is decoded again and an unchanged one
is read back in a fraction of a second. Files that cannot be decoded are skipped and counted
in one warning line. Labels are the index of each file's top-level subfolder (sorted by name)
where the images sit in subfolders, else 0.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aelab.data.cache import cache_dir, cached
from aelab.data.sources import Arrays
from aelab.errors import AelabError
from aelab.files import write_atomic

EXTENSIONS = {".jpg", ".jpeg", ".png"}
VERSION = 1  # bump when decoding changes: old caches are then not used


@dataclass(frozen=True)
class Folder:
    images: np.ndarray  # (N, 3, size, size) uint8
    labels: np.ndarray  # (N,) int64
    classes: list[str]  # subfolder names, label order ([] when the images are not in subfolders)
    skipped: int  # files that could not be decoded


def image_files(root: Path) -> list[Path]:
    """The JPEG and PNG files under `root`, in a fixed (sorted) order."""
    return [root.joinpath(*parts) for parts, _ in _listing(root)]


def _listing(root: Path) -> list[tuple[tuple[str, ...], os.stat_result]]:
    """(path relative to `root` as its parts, stat) of each JPEG or PNG file under `root`,
    sorted as their paths sort. The walk is `root.rglob("*")`'s, one stat a file (it says
    both that the entry is a file and what the cache key needs): links to files are followed,
    linked folders are not descended into, broken links and unreadable folders are left out."""
    found: list[tuple[tuple[str, ...], os.stat_result]] = []

    def visit(folder: str, parts: tuple[str, ...]) -> None:
        try:
            entries = list(os.scandir(folder))
        except PermissionError:
            return
        for entry in entries:
            if entry.is_dir():
                if not entry.is_symlink():
                    visit(entry.path, (*parts, entry.name))
            elif os.path.splitext(entry.name)[1].lower() in EXTENSIONS:
                try:
                    st = entry.stat()  # through a link
                except OSError:  # a broken link
                    continue
                if stat.S_ISREG(st.st_mode):
                    found.append(((*parts, entry.name), st))

    visit(str(root), ())
    return sorted(found, key=lambda f: f[0])


def _key(listing: list[tuple[tuple[str, ...], os.stat_result]], size: int) -> str:
    h = hashlib.sha256(f"v{VERSION} size={size}\n".encode())
    for parts, st in listing:
        h.update(f"{'/'.join(parts)}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def decode(path: Path, size: int) -> np.ndarray:
    """One file as a (3, size, size) uint8 array: RGB, shorter side resized, centre-cropped."""
    from PIL import Image, ImageOps

    with Image.open(path) as img:
        img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale where it is still >= size
        rgb = img.convert("RGB")
    fitted = ImageOps.fit(rgb, (size, size), method=Image.Resampling.BICUBIC, centering=(0.5, 0.5))
    return np.asarray(fitted, dtype=np.uint8).transpose(2, 0, 1)


def load_folder(root: str | Path, size: int) -> Folder:
    """Every readable image under `root` at size x size; see the module's docstring."""
    root = Path(root)
    if not root.is_dir():
        raise AelabError(f"{root}: no such folder")
    listing = _listing(root)
    if not listing:
        raise AelabError(f"{root}: no JPEG or PNG files in this folder or below it")
    files = [parts for parts, _ in listing]
    subdirs = sorted({parts[0] for parts in files if len(parts) > 1})
    cache = cache_dir() / "folders" / f"{_key(listing, size)}.npz"
    return cached(cache, lambda path: _read(path, subdirs), lambda: _decode_all(root, files, subdirs, size), _write)


def _read(path: Path, subdirs: list[str]) -> Folder:
    with np.load(path, allow_pickle=False) as z:
        return Folder(z["images"], z["labels"], subdirs, int(z["skipped"]))


def _write(path: Path, folder: Folder) -> None:
    buf = io.BytesIO()
    np.savez(buf, images=folder.images, labels=folder.labels, skipped=np.int64(folder.skipped))
    write_atomic(path, buf.getvalue())


def _decode_all(root: Path, files: list[tuple[str, ...]], subdirs: list[str], size: int) -> Folder:
    """`files` as their paths' parts below `root`."""
    images, labels, bad = [], [], []
    for parts in files:
        try:
            images.append(decode(root.joinpath(*parts), size))
        except Exception as e:  # noqa: BLE001 - PIL raises many kinds for a broken file
            bad.append(f"{Path(*parts)} ({type(e).__name__})")
            continue
        labels.append(subdirs.index(parts[0]) if len(parts) > 1 else 0)
    if bad:
        print(f"warning: {root}: skipped {len(bad)} of {len(files)} image files that could not be decoded "
              f"(first: {bad[0]})", file=sys.stderr)
    if not images:
        raise AelabError(f"{root}: none of its {len(files)} image files could be decoded")
    return Folder(np.stack(images), np.asarray(labels, dtype=np.int64), subdirs, len(bad))


def load_arrays(root: str, test_root: str, test_fraction: float, size: int) -> Arrays:
    """Train and test arrays from image folders: the test split is a second folder, or a
    fixed random `test_fraction` of the first. The training images are put in a fixed random
    order, so that a validation split taken from their end is a random sample too."""
    train = load_folder(root, size)
    rng = np.random.default_rng(0)
    if test_root:
        test = load_folder(test_root, size)
        if test.classes != train.classes:
            raise AelabError(f"{test_root}: its subfolders {test.classes} are not those of {root}: {train.classes}")
        order = rng.permutation(len(train.labels))
    else:
        n = len(train.labels)
        n_test = round(n * test_fraction)
        if not 1 <= n_test < n:
            raise AelabError(f"data.test_fraction: {test_fraction} of the {n} images of {root} leaves no "
                             "test image or no training image")
        order = rng.permutation(n)
        test_idx = np.sort(order[:n_test])
        test = Folder(train.images[test_idx], train.labels[test_idx], train.classes, 0)
        order = order[n_test:]
    return Arrays(train.images[order], train.labels[order], test.images, test.labels,
                  class_names=tuple(train.classes) or ("image",))
