"""Faults a user meets that must end in aelab's one-line error (exit 2) or be repaired with one
warning, never in a traceback: an output path under a file, a damaged cache, a full disk."""

import dataclasses
import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aelab import files
from aelab.cli import main
from aelab.data import folders
from aelab.data.sources import Arrays
from aelab.evaluation import classifier
from aelab.runs import checkpoint
from conftest import channel_cnn_toml, write_photos

TINY = ["--set", "data.val_size=256", "--set", "data.train_size=512", "--set", "model.network.hidden=[32]",
        "--set", "model.latent_dim=4", "--quiet"]


def _fails(capsys, argv, *words) -> str:
    """Exit 2, and the error is one line (training's progress lines may come before it)."""
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    last = err.splitlines()[-1]
    assert last.startswith("aelab: error: ") and "Traceback" not in err and err.count("error") == 1, err
    assert all(w in last for w in words), err
    return last


def _tree(path: Path) -> dict:
    return {str(p): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory, mnist):
    root = tmp_path_factory.mktemp("faults")
    assert main(["train", "configs/vae_mnist.toml", *TINY, "--set", "train.epochs=1", "--no-eval",
                 "--out", str(root / "vae")]) == 0
    return root / "vae"


def test_an_output_path_under_a_file_is_one_line_and_touches_nothing(run, tmp_path, capsys):
    before = _tree(run)
    _fails(capsys, ["sample", str(run), "--n", "4", "--out", str(run / "config.toml" / "s.png")],
           "config.toml is a file, not a folder")
    _fails(capsys, ["train", "configs/vae_mnist.toml", *TINY, "--out", str(run / "config.toml" / "x")],
           "config.toml is a file, not a folder")
    _fails(capsys, ["report", str(run), "--out", str(run / "meta.json" / "report")], "meta.json is a file, not a folder")
    _fails(capsys, ["study", "latent_size", "--out", str(run / "meta.json" / "deeper" / "study")],
           "meta.json is a file, not a folder")
    assert _tree(run) == before


def _damage(path: Path, how: str) -> None:
    data = path.read_bytes()
    path.write_bytes({"cut": data[: len(data) // 3], "empty": b"", "noise": bytes(reversed(data[:4096]))}[how])


def test_a_damaged_image_folder_cache_is_rebuilt_with_one_warning(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "cache"))
    (tmp_path / "photos").mkdir()
    photos = write_photos(tmp_path / "photos", 40, (20, 20))
    (tmp_path / "dogs.toml").write_text(channel_cnn_toml(photos, image_size=16, val_size=8, latent_dim=64, epochs=1,
                                                         batch_size=16))
    assert main(["train", str(tmp_path / "dogs.toml"), "--out", str(tmp_path / "a"), "--quiet", "--no-eval"]) == 0
    (entry,) = (tmp_path / "cache" / "folders").glob("*.npz")
    good = entry.read_bytes()
    _damage(entry, "cut")  # as a kill during its write, or a full disk, leaves it
    capsys.readouterr()
    assert main(["train", str(tmp_path / "dogs.toml"), "--out", str(tmp_path / "b"), "--quiet", "--no-eval"]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "damaged cache entry" in line]
    assert len(warnings) == 1 and str(entry) in warnings[0] and "building it again" in warnings[0]
    assert entry.read_bytes() == good and not [p for p in entry.parent.iterdir() if p.name.startswith(".")]
    a, b = (torch.load(tmp_path / r / "last.pt", weights_only=True)["model"] for r in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # the same images as before


@settings(max_examples=25, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(cut=st.integers(min_value=0, max_value=10_000), flip=st.integers(min_value=0, max_value=10_000))
def test_any_damage_to_a_folder_cache_entry_is_repaired(tmp_path_factory, cut, flip):
    """Fuzz: cut at any length or one byte changed anywhere, the entry reads as the images (a
    change that still reads is the zip's to notice: np.load checks each member's CRC)."""
    root = tmp_path_factory.mktemp("fuzzcache")
    os.environ["AELAB_CACHE"] = str(root / "cache")
    try:
        (root / "photos").mkdir()
        photos = write_photos(root / "photos", 3, (9, 9))
        first = folders.load_folder(photos, 8)
        (entry,) = (root / "cache" / "folders").glob("*.npz")
        data = bytearray(entry.read_bytes())
        if cut % 2:
            data = data[: cut % len(data)]
        else:
            data[flip % len(data)] ^= 0xFF
        entry.write_bytes(bytes(data))
        again = folders.load_folder(photos, 8)
        assert np.array_equal(again.images, first.images) and np.array_equal(again.labels, first.labels)
    finally:
        del os.environ["AELAB_CACHE"]


def test_a_damaged_reference_classifier_is_retrained_with_one_warning(tmp_path, monkeypatch, capsys, mnist):
    """What `aelab eval` reads for its sample scores (the run's evaluation goes through here)."""
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "cache"))
    quick = dataclasses.replace(classifier.Judging.from_env().classifier, train_size=1000)
    mnist = Arrays(mnist.train_images, mnist.train_labels, mnist.test_images[:500], mnist.test_labels[:500],
                   mnist.class_names)
    first, _ = classifier.reference_classifier(mnist, "mnist", quick)
    (weights,) = (tmp_path / "cache" / "classifiers").glob("mnist-*.pt")
    _damage(weights, "cut")
    capsys.readouterr()
    again, _ = classifier.reference_classifier(mnist, "mnist", quick)
    err = capsys.readouterr().err
    warnings = [line for line in err.splitlines() if "damaged cache entry" in line]
    assert len(warnings) == 1 and str(weights) in warnings[0] and "training the reference classifier" in err, err
    assert checkpoint.load(weights)["model"].keys() == first.state_dict().keys()
    assert all(torch.equal(p, q) for p, q in zip(first.state_dict().values(), again.state_dict().values()))  # seeded


class _FullDisk:
    """os, as aelab.files sees it, but writing a file named `victim` fails with ENOSPC from
    its `after`-th time on (a disk that fills up while a run trains)."""

    def __init__(self, victim: str, after: int):
        self.victim, self.after, self.seen = victim, after, 0

    def __getattr__(self, name):
        return getattr(os, name)

    def fdopen(self, fd, mode="r", *args, **kwargs):
        f = os.fdopen(fd, mode, *args, **kwargs)
        if f".{self.victim}." in os.readlink(f"/proc/self/fd/{fd}"):
            self.seen += 1
            if self.seen >= self.after:
                def write(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                f.write = write
        return f


def test_a_full_disk_while_a_checkpoint_is_written(tmp_path, monkeypatch, capsys, mnist):
    """The one-line error names the file and the resume command; what was written before holds
    (last.pt of epoch 1 loads, no temporary file is left) and the resume finishes the run with
    the weights of a run that never met a full disk."""
    sets = [*TINY, "--set", "train.epochs=3", "--no-eval"]
    assert main(["train", "configs/vae_mnist.toml", *sets, "--out", str(tmp_path / "whole")]) == 0
    run = tmp_path / "run"
    with monkeypatch.context() as mp:
        mp.setattr(files, "os", _FullDisk("last.pt", after=2))
        err = _fails(capsys, ["train", "configs/vae_mnist.toml", *sets, "--out", str(run)],
                     f"{run / 'last.pt'}: cannot write: the disk is full", f"resume with: aelab train --resume {run}")
    assert not [p.name for p in run.iterdir() if p.name.startswith(".last.pt")], err
    assert checkpoint.load(run / "last.pt")["epoch"] == 1
    assert main(["train", "--resume", str(run), "--quiet", "--no-eval"]) == 0
    a, b = (torch.load(p / "last.pt", weights_only=True)["model"] for p in (tmp_path / "whole", run))
    assert all(torch.equal(a[k], b[k]) for k in a)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    return done.returncode == 0


def test_a_real_small_file_system_fills_up(tmp_path, mnist, capsys):
    """A run directory on a 256 KB tmpfs: the first checkpoint does not fit. One line, exit 2;
    after the file system grows, --resume trains the run to its end."""
    disk = tmp_path / "disk"
    if os.geteuid() != 0 or not _mount_tmpfs(disk, "256k"):
        pytest.skip("cannot mount a small tmpfs here (needs root and mount permission)")
    try:
        run = disk / "run"
        last = _fails(capsys, ["train", "configs/vae_mnist.toml", *TINY, "--set", "train.epochs=2", "--no-eval",
                               "--out", str(run)], "cannot write: the disk is full",
                      f"resume with: aelab train --resume {run}")
        assert "(No space left on device)" in last
        assert not [p for p in run.iterdir() if p.name.startswith(".last.pt")]
        subprocess.run(["mount", "-o", "remount,size=64m", str(disk)], check=True)
        assert main(["train", "--resume", str(run), "--quiet", "--no-eval"]) == 0
        assert checkpoint.load(run / "last.pt")["epoch"] == 2 and (run / "done.json").is_file()
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)
