"""The IDX reader and the embedded-MNIST cache, on real MNIST bytes."""

import gzip
import hashlib
import pickle
import shutil

import numpy as np
import pytest

from aelab.data import idx
from aelab.data import sources as datasets
from aelab.errors import AelabError


@pytest.fixture(scope="module")
def mnist_dir(mnist):
    return datasets.embedded_mnist_dir()


def test_real_mnist_shapes_and_known_labels(mnist):
    assert mnist.train_images.shape == (60000, 28, 28) and mnist.test_images.shape == (10000, 28, 28)
    assert mnist.train_images.dtype == np.uint8 and mnist.train_images.max() == 255
    # The first training digits are 5 0 4 1 9 and the first test digits 7 2 1 0 4.
    assert mnist.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert mnist.test_labels[:5].tolist() == [7, 2, 1, 0, 4]
    assert np.bincount(mnist.train_labels).tolist()[1] == 6742  # the count of ones


def test_cache_has_the_original_md5s(mnist_dir):
    for stem, md5 in datasets.MNIST_MD5.items():
        assert hashlib.md5((mnist_dir / datasets.idx_name(stem)).read_bytes()).hexdigest() == md5


def test_cache_rebuilds_a_tampered_file(tmp_path, monkeypatch, mnist_dir):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path))
    shutil.copytree(mnist_dir, tmp_path / "mnist")
    victim = tmp_path / "mnist" / datasets.idx_name("t10k-labels")
    victim.write_bytes(victim.read_bytes()[:-1] + b"\x03")
    assert datasets.embedded_mnist_dir() == tmp_path / "mnist"
    assert hashlib.md5(victim.read_bytes()).hexdigest() == datasets.MNIST_MD5["t10k-labels"]


def test_hub_file_with_wrong_sha256_is_not_unpickled(tmp_path, monkeypatch):
    fake = tmp_path / "mnist.pkl.gz"
    fake.write_bytes(gzip.compress(pickle.dumps(([1], [2]))))
    monkeypatch.setattr(datasets, "_hub_file", lambda: fake)
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "cache"))
    with pytest.raises(AelabError, match="sha256 .* refusing to unpickle"):
        datasets.embedded_mnist_dir()


def test_restricted_unpickler_refuses_other_globals():
    import io
    evil = pickle.dumps(shutil.rmtree)  # a global that is not numpy's
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global shutil"):
        datasets._NumpyOnly(io.BytesIO(evil)).load()
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    assert np.array_equal(datasets._NumpyOnly(io.BytesIO(pickle.dumps(arr, protocol=4))).load(), arr)


def test_gz_plain_and_torchvision_layouts_read_alike(tmp_path, mnist_dir, mnist):
    raw = tmp_path / "tv" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for stem in datasets.FILES:
        src = (mnist_dir / datasets.idx_name(stem)).read_bytes()
        (raw / (datasets.idx_name(stem) + ".gz")).write_bytes(gzip.compress(src, compresslevel=1))
    got = datasets.read_idx_dir(tmp_path / "tv")
    assert np.array_equal(got.test_images, mnist.test_images)
    assert np.array_equal(got.train_labels, mnist.train_labels)


def _copy_labels_dir(tmp_path, mnist_dir):
    """A data directory with real test files and a small real training set."""
    d = tmp_path / "data"
    d.mkdir()
    for stem in ("t10k-images", "t10k-labels"):
        shutil.copy(mnist_dir / datasets.idx_name(stem), d)
    imgs = idx.read(mnist_dir / datasets.idx_name("t10k-images"), 3)[:100]
    labels = idx.read(mnist_dir / datasets.idx_name("t10k-labels"), 1)[:100]
    (d / datasets.idx_name("train-images")).write_bytes(idx.encode(imgs))
    (d / datasets.idx_name("train-labels")).write_bytes(idx.encode(labels))
    return d


@pytest.mark.parametrize("damage, message", [
    (lambda b: b[:-10], r"truncated: 7840006 bytes, but its header \(10000, 28, 28\) says 7840016"),
    (lambda b: b[:3], "truncated: 3 bytes, shorter than an IDX header"),
    (lambda b: b + b"\0", "has trailing bytes"),
    (lambda b: b"\x00\x00\x08\x01" + b[4:], "wrong magic number 0x00000801; expected 0x00000803"),
    (lambda b: b"\x50\x4b\x08\x03" + b[4:], "wrong magic number 0x504b0803"),
])
def test_damaged_image_file_is_named(tmp_path, mnist_dir, damage, message):
    d = _copy_labels_dir(tmp_path, mnist_dir)
    f = d / datasets.idx_name("t10k-images")
    f.write_bytes(damage(f.read_bytes()))
    with pytest.raises(AelabError, match=f"^{f}: {message}"):
        datasets.read_idx_dir(d)


def test_label_out_of_range_and_count_mismatch(tmp_path, mnist_dir):
    d = _copy_labels_dir(tmp_path, mnist_dir)
    f = d / datasets.idx_name("train-labels")
    labels = idx.read(f, 1).copy()
    labels[17] = 12
    f.write_bytes(idx.encode(labels))
    with pytest.raises(AelabError, match=f"^{f}: label 12 at index 17 is out of range 0-9"):
        datasets.read_idx_dir(d)
    f.write_bytes(idx.encode(labels[:50] % 10))
    with pytest.raises(AelabError, match=f"^{f}: 50 labels for 100 images"):
        datasets.read_idx_dir(d)


def test_missing_and_corrupt_gzip(tmp_path, mnist_dir):
    d = _copy_labels_dir(tmp_path, mnist_dir)
    (d / datasets.idx_name("train-labels")).unlink()
    with pytest.raises(AelabError, match="train-labels-idx1-ubyte: no such file"):
        datasets.read_idx_dir(d)
    (d / (datasets.idx_name("train-labels") + ".gz")).write_bytes(b"\x1f\x8b\x08garbage")
    with pytest.raises(AelabError, match="train-labels-idx1-ubyte.gz: cannot read"):
        datasets.read_idx_dir(d)
    with pytest.raises(AelabError, match="nowhere: no such data directory"):
        datasets.read_idx_dir(tmp_path / "nowhere")


@pytest.mark.skipif(not datasets.Path(datasets.FASHION_ROOT).is_dir(), reason="Debian dataset-fashion-mnist not installed")
def test_fashion_mnist_through_the_same_reader():
    f = datasets.load_fashion_mnist("")
    assert f.train_images.shape == (60000, 28, 28) and f.test_images.shape == (10000, 28, 28)
    assert np.bincount(f.test_labels).tolist() == [1000] * 10
