"""Fuzzed inputs: random and mutated IDX files, image files, TOML configs, --set values and
checkpoints thrown at the readers. Every case ends in success or in aelab's one-line error
(AelabError, which the command line prints as one line and exit code 2): never another
exception, never a hang, never a change to an existing run directory. Examples are drawn from
a fixed seed (derandomize), so a run of the suite tries the same cases every time."""

import gzip
import hashlib
import io
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from aelab import config, registry
from aelab.data import folders, idx
from aelab.data import sources as datasets
from aelab.errors import AelabError
from aelab.evaluation.evaluate import load_model
from aelab.training import train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import tiny

FUZZ = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))


def _either(fn, *args):
    """Run a reader: its result, or None after AelabError with a one-line message."""
    try:
        return fn(*args)
    except AelabError as e:
        assert "\n" not in str(e) and str(e), repr(str(e))
        return None


@st.composite
def mutated(draw, data: bytes) -> bytes:
    """`data` cut short, extended, or with some bytes overwritten."""
    how = draw(st.sampled_from(["truncate", "extend", "overwrite", "random"]))
    if how == "truncate":
        return data[:draw(st.integers(0, len(data)))]
    if how == "extend":
        return data + draw(st.binary(min_size=1, max_size=64))
    if how == "random":
        return draw(st.binary(max_size=256))
    out = bytearray(data)
    for _ in range(draw(st.integers(1, 8))):
        out[draw(st.integers(0, len(out) - 1))] = draw(st.integers(0, 255))
    return bytes(out)


# ---- IDX files -------------------------------------------------------------------------------

def _idx_files(rng) -> dict[str, bytes]:
    images = rng.integers(0, 256, (6, 4, 4), dtype=np.uint8)
    labels = rng.integers(0, 10, 6, dtype=np.uint8)
    return {"train-images": idx.encode(images), "train-labels": idx.encode(labels),
            "t10k-images": idx.encode(images[:3]), "t10k-labels": idx.encode(labels[:3])}


@settings(max_examples=150, **FUZZ)
@given(which=st.sampled_from(["train-images", "train-labels", "t10k-images", "t10k-labels"]),
       gz=st.booleans(), data=st.data())
def test_idx_files_random_and_mutated(which, gz, data):
    files = _idx_files(np.random.default_rng(0))
    files[which] = data.draw(mutated(files[which]))
    with tempfile.TemporaryDirectory() as root:
        for stem, raw in files.items():
            name = datasets.idx_name(stem)
            if gz and stem == which:
                raw = data.draw(mutated(gzip.compress(raw))) if data.draw(st.booleans()) else gzip.compress(raw)
                name += ".gz"
            (Path(root) / name).write_bytes(raw)
        arrays = _either(datasets.read_idx_dir, root)
        if arrays is not None:
            assert arrays.train_images.dtype == np.uint8 and len(arrays.train_images) == len(arrays.train_labels)


# ---- image folders -----------------------------------------------------------------------------

MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I;16"]  # what PNG stores


@st.composite
def image_file(draw) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(["png", "jpeg", "truncated jpeg", "empty", "not an image"]))
    if kind in ("empty", "not an image"):
        name = draw(st.sampled_from(["x.png", "x.jpg", "x.JPEG"]))
        return name, b"" if kind == "empty" else draw(st.binary(max_size=200))
    mode = draw(st.sampled_from(MODES if kind == "png" else ["L", "RGB", "CMYK"]))
    w, h = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    pixels = np.random.default_rng(draw(st.integers(0, 9))).integers(0, 255, (h, w, 3), dtype=np.uint8)
    img = Image.fromarray(pixels).convert(mode) if mode not in ("I;16",) else Image.fromarray(pixels[..., 0]).convert("I;16")
    buf = io.BytesIO()
    img.save(buf, format="PNG" if kind == "png" else "JPEG")
    raw = buf.getvalue()
    if kind == "truncated jpeg":
        raw = raw[:draw(st.integers(0, len(raw) - 1))]
    return ("x.png" if kind == "png" else "x.jpg"), raw


@settings(max_examples=40, **FUZZ)
@given(files=st.lists(image_file(), min_size=1, max_size=5), size=st.sampled_from([4, 8]))
def test_image_folders_of_odd_truncated_and_false_files(files, size, monkeypatch):
    with tempfile.TemporaryDirectory() as root:
        monkeypatch.setenv("AELAB_CACHE", os.path.join(root, "cache"))
        photos = Path(root) / "photos"
        for i, (name, raw) in enumerate(files):
            (photos / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
            (photos / f"c{i % 2}" / f"{i}{name}").write_bytes(raw)
        folder = _either(folders.load_folder, photos, size)
        if folder is not None:
            assert folder.images.shape[1:] == (3, size, size) and folder.images.dtype == np.uint8


# ---- configs and --set values ------------------------------------------------------------------

VAE = Path("configs/vae_mnist.toml").read_text()
KEYS = sorted(config.valid_keys(config.RunConfig()))
VALUES = st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                   st.text(max_size=12), st.lists(st.integers(-5, 600), max_size=4))


def _load_and_check(text: str) -> None:
    cfg = _either(config.loads, text, "mine.toml")
    if cfg is not None:
        _either(registry.check, cfg)


@settings(max_examples=100, **FUZZ)
@given(st.one_of(st.text(max_size=300), st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                 mutated(VAE.encode()).map(lambda b: b.decode("utf-8", "replace"))))
def test_toml_configs_random_and_mutated(text):
    _load_and_check(text)


@settings(max_examples=100, **FUZZ)
@given(st.one_of(st.text(max_size=60), st.tuples(st.sampled_from(KEYS), VALUES).map(
    lambda kv: f"{kv[0]}={config.toml_value(kv[1]) if not isinstance(kv[1], float) or np.isfinite(kv[1]) else kv[1]}")))
def test_set_values_random_and_typed(override):
    cfg = _either(config.with_overrides, config.RunConfig(), [override])
    if cfg is not None:
        _either(registry.check, cfg)


# ---- checkpoints -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory, small_data):
    cfg = tiny("vae", train={"epochs": 1})
    run = RunDir.create(tmp_path_factory.mktemp("fuzz") / "run", cfg)
    train.fit(cfg, run, small_data, train.Options(progress=False))
    return run.path


def _snapshot(path: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(path.iterdir()) if p.is_file()}


@st.composite
def damaged_checkpoint(draw, good: bytes) -> bytes:
    """The run's own checkpoint mutated, or a well-formed torch file whose contents are wrong."""
    if draw(st.booleans()):
        return draw(mutated(good))
    payload = torch.load(io.BytesIO(good), weights_only=True)
    key = draw(st.sampled_from(["model", "config", "data", "epoch", "optimizer"]))
    payload[key] = draw(st.one_of(
        st.none(), st.integers(), st.text(max_size=20),
        st.just({"image_shape": [1, 28], "num_classes": 10}), st.just({"image_shape": "x", "num_classes": -3}),
        st.just({"encoder.net.0.weight": torch.zeros(3, 3)}), st.just({"nonsense": torch.zeros(1)}),
        st.just(payload.get("config", "").replace("latent_dim = 4", "latent_dim = 5"))))
    buf = io.BytesIO()
    torch.save(payload, buf)
    return buf.getvalue()


@settings(max_examples=40, **FUZZ)
@given(which=st.sampled_from(["best", "last"]), data=st.data())
def test_damaged_checkpoints_are_refused_in_one_line_and_change_nothing(trained, which, data):
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        shutil.copytree(trained, run)
        path = run / f"{which}.pt"
        path.write_bytes(data.draw(damaged_checkpoint(path.read_bytes())))
        before = _snapshot(run)
        _either(load_model, RunDir(run), which)
        _either(checkpoint.load, path)
        assert _snapshot(run) == before
