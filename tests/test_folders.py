"""The image-folder loader: odd sizes, greyscale and RGBA files, a corrupt file, subfolders
as labels, the cache, and the errors."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aelab.data import folders
from aelab.errors import AelabError
from conftest import channel_cnn_toml

DOGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "dogs64"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _folder(root: Path) -> Path:
    (root / "b").mkdir(parents=True)
    (root / "a").mkdir()
    wide = np.zeros((30, 50, 3), np.uint8)
    wide[:, 10:40] = (200, 100, 50)  # the centre 30 columns coloured, 10 black columns each side
    Image.fromarray(wide).save(root / "a" / "wide.jpg", quality=95)
    Image.fromarray(np.full((40, 20), 128, np.uint8), mode="L").save(root / "a" / "grey.PNG")
    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 1], rgba[..., 3] = 255, 0  # green, fully transparent: the alpha is dropped
    Image.fromarray(rgba, mode="RGBA").save(root / "b" / "rgba.png")
    (root / "b" / "broken.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "b" / "notes.txt").write_text("not an image")
    return root


def test_every_readable_file_becomes_a_square_rgb_image(tmp_path, cache, capsys):
    got = folders.load_folder(_folder(tmp_path / "imgs"), 24)
    assert got.images.shape == (3, 3, 24, 24) and got.images.dtype == np.uint8
    assert got.classes == ["a", "b"] and got.labels.tolist() == [0, 0, 1] and got.skipped == 1
    grey, wide, rgba = got.images  # sorted paths: a/grey.PNG, a/wide.jpg, b/rgba.png
    assert (grey == 128).all()  # greyscale replicated in three channels
    assert (rgba[1] == 255).all() and (rgba[0] == 0).all()
    # the wide image is cropped to its centre square: the coloured middle fills it
    assert abs(int(wide[0].mean()) - 200) < 8 and abs(int(wide[2].mean()) - 50) < 8
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "skipped 1 of 4 image files" in err and "broken.jpg" in err


def test_the_cache_is_used_and_a_changed_folder_is_decoded_again(tmp_path, cache, monkeypatch):
    root = _folder(tmp_path / "imgs")
    first = folders.load_folder(root, 16)
    assert len(list((cache / "folders").glob("*.npz"))) == 1
    monkeypatch.setattr(folders, "decode", lambda *a: pytest.fail("decoded although cached"))
    again = folders.load_folder(root, 16)
    assert np.array_equal(first.images, again.images) and again.skipped == 1
    monkeypatch.undo()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(root / "a" / "new.png")
    assert len(folders.load_folder(root, 16).images) == 4


def test_the_walk_finds_what_rglob_finds_in_its_order_and_keys_it_as_before(tmp_path):
    """The one-stat walk against its definition, `root.rglob("*")` filtered to image files
    and sorted as paths sort, on a tree of the odd cases: upper-case and hidden names, a
    folder named like an image, folder names that sort otherwise as strings than as parts
    ("a-b" against "a/b"), links to a file and to a folder, and a broken link. The cache key
    is the one the folder's earlier caches were written under."""
    import hashlib

    root = tmp_path / "tree"
    for folder in ("a/b", "a/c", "a-b", "x.jpg", ".hidden", "Z"):
        (root / folder).mkdir(parents=True)
    for name in ("a/b/1.jpg", "a/2.PNG", "a/c/3.Jpg", "a-b/4.jpeg", "a-b/.jpg", ".hidden/5.jpg", "Z/6.jpg",
                 "7.jpg", "8.txt", "x.jpg/9.png"):
        (root / name).write_bytes(name.encode())
    (root / "linked").symlink_to(root / "a" / "b", target_is_directory=True)
    (root / "link.png").symlink_to(root / "a" / "2.PNG")
    (root / "broken.jpg").symlink_to(tmp_path / "nowhere.jpg")
    want = sorted(p for p in root.rglob("*") if p.suffix.lower() in folders.EXTENSIONS and p.is_file())
    assert folders.image_files(root) == want and len(want) == 9
    h = hashlib.sha256(b"v%d size=16\n" % folders.VERSION)
    for p in want:
        st = p.stat()
        h.update(f"{p.relative_to(root).as_posix()}\t{st.st_size}\t{st.st_mtime_ns}\n".encode())
    assert folders._key(folders._listing(root), 16) == h.hexdigest()[:24]


@pytest.mark.parametrize("make, words", [
    (lambda p: None, "no such folder"),
    (lambda p: p.mkdir(), "no JPEG or PNG files"),
    (lambda p: (p.mkdir(), (p / "x.png").write_bytes(b"junk")), "none of its 1 image files could be decoded"),
])
def test_bad_folders_are_refused_naming_the_folder(tmp_path, cache, make, words):
    root = tmp_path / "empty"
    make(root)
    with pytest.raises(AelabError, match=words) as e:
        folders.load_folder(root, 16)
    assert str(root) in str(e.value)


@pytest.mark.skipif(not DOGS.is_dir(), reason=f"{DOGS} is not here")
def test_the_dogs_test_folder(cache):
    dogs = folders.load_folder(DOGS / "test", 64)
    assert dogs.images.shape == (500, 3, 64, 64) and dogs.skipped == 0 and dogs.classes == []
    assert 60 < dogs.images.mean() < 160 and dogs.images.std() > 40  # real photos, not blank
    with Image.open(folders.image_files(DOGS / "test")[0]) as img:  # 64x64 files pass through unchanged in size
        assert np.abs(np.asarray(img.convert("RGB")).transpose(2, 0, 1).astype(int) - dogs.images[0]).max() <= 2


def test_a_folder_dataset_through_the_registry(tmp_path, cache):
    from aelab import config, registry

    root = tmp_path / "pics"
    for cls, colour in (("cats", 30), ("dogs", 220)):
        (root / cls).mkdir(parents=True)
        for i in range(10):
            Image.fromarray(np.full((20 + i, 24, 3), colour, np.uint8)).save(root / cls / f"{i}.png")
    cfg = config.from_dict({"data": {"name": "folder", "root": str(root), "test_fraction": 0.2, "image_size": 16,
                                     "val_size": 4}}, "t")
    data = registry.build_data(cfg)
    assert data.image_shape == (3, 16, 16) and data.class_names == ("cats", "dogs")
    assert (len(data.train), len(data.val), len(data.test)) == (12, 4, 4)
    # each image keeps its label through the shuffles: cats are dark, dogs light
    for split in (data.train, data.val, data.test):
        assert ((split.images.float().mean((1, 2, 3)) > 128).long() == split.labels).all()
    again = registry.build_data(cfg)
    assert np.array_equal(again.test.images, data.test.images)  # the same held-out images every time
    model = registry.build_model(config.from_dict({"model": {
        "condition": {"name": "label"}, "network": {"name": "cnn", "hidden": [8, 8]},
        "likelihood": {"name": "gaussian"}, "latent_dim": 3}}, "t"),
                                 data.image_shape, data.num_classes)
    assert model.decode(torch.zeros(2, 3), torch.tensor([0, 1])).shape == (2, 3, 16, 16)


@pytest.mark.parametrize("data, words", [
    ({"name": "folder"}, "data.root: data.name 'folder' needs"),
    ({"name": "folder", "root": "x"}, "exactly one of them"),
    ({"name": "folder", "root": "x", "test_root": "y", "test_fraction": 0.1}, "exactly one of them"),
    ({"name": "folder", "root": "x", "test_fraction": 1.0}, "must be below 1"),
    ({"name": "mnist", "test_fraction": 0.1}, "only for data.name 'folder'"),
])
def test_folder_settings_are_checked(data, words):
    from aelab import config, registry

    with pytest.raises(AelabError, match=words):
        registry.check(config.from_dict({"data": data}, "t"))


@pytest.mark.skipif(not DOGS.is_dir(), reason=f"{DOGS} is not here")
def test_eval_on_another_folder_and_at_a_channel_noise_level(tmp_path, cache, capsys):
    import json
    import shutil

    from aelab.cli import main

    (tmp_path / "dogs.toml").write_text(channel_cnn_toml(DOGS / "test", test_fraction=0.2, image_size=32, val_size=50,
                                                         latent_dim=256, epochs=1, batch_size=50))
    run = tmp_path / "run"
    assert main(["train", str(tmp_path / "dogs.toml"), "--out", str(run), "--quiet"]) == 0
    kept = (run / "eval.json").read_text()
    other = tmp_path / "other"
    other.mkdir()
    for p in folders.image_files(DOGS / "train")[:5]:
        shutil.copy(p, other)
    capsys.readouterr()
    assert main(["eval", str(run), "--test-folder", str(other), "--json"]) == 0
    on_other = json.loads(capsys.readouterr().out)
    assert on_other["n_images"] == 5 and on_other["test_folder"] == str(other) and "psnr_db" in on_other
    assert main(["eval", str(run), "--json"]) == 0
    clean = json.loads(capsys.readouterr().out)
    assert main(["eval", str(run), "--latent-sigma", "1.0", "--json"]) == 0
    noisy = json.loads(capsys.readouterr().out)
    assert noisy["latent_sigma"] == 1.0 and noisy["psnr_db"] < clean["psnr_db"]  # (a 1-epoch decoder barely uses its code)
    assert main(["eval", str(run), "--latent-sigma", "1.0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["psnr_db"] == noisy["psnr_db"]  # seeded noise: the same number
    assert "probe_acc" not in clean  # one class: nothing for a probe to read
    assert json.loads((run / "eval.json").read_text())["checkpoint_sha256"] == json.loads(kept)["checkpoint_sha256"]
    assert "latent_sigma" not in (run / "eval.json").read_text()
    assert main(["eval", str(run), "--latent-sigma", "-1"]) == 2
