"""Every [train] and [data] setting reaches the run: moved off its default alone, it changes
what training does or records, or the data it trains on. (Model settings: test_models.py.)"""

import dataclasses
import hashlib
import json

import pytest
import torch

from aelab import registry
from aelab.data import sources as datasets
from aelab.training import train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import moved, tiny, write_photos

# Settings that act only together with another: moved in that company.
COMPANY = {"lr_min": {"lr_schedule": "cosine"},  # the constant schedule has no floor
           "optimizer": {"weight_decay": 0.01}}  # AdamW differs from Adam in how it decays weights
# Settings that by design change no result: when last.pt is written inside an epoch (resuming
# there gives the same bits: test_resume.py), which hardware runs it (resolved per machine; the
# resolution is tested with torch's capability queries replaced, in test_hardware.py), how many
# images an evaluation pass holds at once (memory), the precision of the evaluation's forward
# passes (no printed digit: test_pace.py) and how often the loop waits for the device to show
# progress (speed; the budget's last steps are read one by one whatever it is), and whether
# TensorBoard event files are written beside the run (test_tensorboard.py reads them back), and
# whether a GPU's steps are replayed as CUDA graphs (a CPU has none; test_graphed.py runs the
# graph mode with a stand-in for the capture).
NO_RESULT = {"device", "precision", "eval_batch_size", "eval_precision", "log_every", "checkpoint_every_min",
             "tensorboard", "cuda_graphs"}
# settings the registry turns into objects: moved to the next name of its table
NAMES = {"lr_schedule": registry.LR_SCHEDULES, "optimizer": registry.OPTIMIZERS,
         "name": registry.DATASETS, "binarize": registry.BINARIZERS}


def _other(section, key: str):
    """`section` with `key` moved off its value."""
    now = getattr(section, key)
    if key == "threads" and now == 0:  # 0: as many as torch has; moved to another number
        return dataclasses.replace(section, threads=torch.get_num_threads() % 2 + 1)
    if key in NAMES:
        names = list(NAMES[key])
        return dataclasses.replace(section, **{key: names[names.index(now) + 1]})
    return dataclasses.replace(section, **{key: moved(now, {f.name: f for f in dataclasses.fields(section)}[key])})
TRAIN_KEYS = [f.name for f in dataclasses.fields(tiny().train) if f.name not in NO_RESULT]


def _fingerprint(cfg, data, path):
    """What a training run shows of its settings: the weights it ends with, its metrics and
    done.json without the clock's readings, and how it trained (meta.json)."""
    run = RunDir.create(path, cfg)
    train.fit(cfg, run, data, train.Options(progress=False))
    weights = hashlib.sha256(b"".join(t.numpy().tobytes() for t in checkpoint.load(run.last_path)["model"].values()))
    untimed = lambda row: {k: v for k, v in row.items() if "seconds" not in k}  # noqa: E731
    done = untimed(json.loads(run.done_path.read_text()))
    training = [{k: r[k] for k in ("device", "precision", "threads", "processes")} for r in run.training()]
    return weights.hexdigest(), [untimed(r) for r in run.metrics()], done, training


@pytest.mark.parametrize("key", TRAIN_KEYS)
def test_every_train_setting_changes_the_run(key, small_data, tmp_path):
    base = tiny("vae", train={"epochs": 2, **COMPANY.get(key, {})})
    changed = dataclasses.replace(base, train=_other(base.train, key))
    registry.check(changed)
    assert (_fingerprint(base, small_data, tmp_path / "base")
            != _fingerprint(changed, small_data, tmp_path / "changed")), f"train.{key} changes nothing"


def _data_fingerprint(cfg):
    data = registry.build_data(cfg)
    return [(split.images.shape, int(split.images.sum()), split.labels.tolist()[:50])
            for split in (data.train, data.val, data.test)] + [data.binarizer.once(data.train.images[:64], 0).sum().item()]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """24 small photos, dark and light, in two class folders."""
    return write_photos(tmp_path_factory.mktemp("photos"), 12, (20, 24))


# [data] settings, each moved in a config where it acts: MNIST for the IDX sources, a folder of
# photos for the folder's own; `root` and `test_root` name where the files are (test_data.py,
# test_folders.py), not a value to move.
DATA = {"name": "mnist", "binarize": "mnist", "val_size": "mnist", "train_size": "mnist",
        "test_fraction": "folder", "image_size": "folder"}


def test_every_data_setting_is_covered():
    assert set(DATA) | {"root", "test_root"} == {f.name for f in dataclasses.fields(tiny().data)}


@pytest.mark.parametrize("key", list(DATA))
def test_every_data_setting_changes_the_data(key, folder):
    sections = ({"name": "folder", "root": str(folder), "test_fraction": 0.25, "image_size": 8, "val_size": 4,
                 "train_size": 0} if DATA[key] == "folder" else {})
    base = tiny("vae", data=sections)
    changed = dataclasses.replace(base, data=_other(base.data, key))
    if changed.data.name == "fashion-mnist" and not datasets.Path(datasets.FASHION_ROOT).is_dir():
        pytest.skip("Debian dataset-fashion-mnist not installed")
    assert _data_fingerprint(base) != _data_fingerprint(changed), f"data.{key} changes nothing"
