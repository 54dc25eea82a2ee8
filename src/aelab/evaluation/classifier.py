"""A reference classifier for 28x28 digit-like images, to judge generated samples.

aelab trains it once per dataset (a small CNN, a few CPU minutes), caches it in the cache
directory under a hash of its training data and settings, and reuses it. Its penultimate
layer (128 features) is the feature space of `fd_classifier`: a Fréchet distance in the style
of FID (Heusel et al. 2017), but in this small network's features, so its values are NOT
comparable with Inception FIDs, only between models judged by the same classifier.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
import tomllib
import typing
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aelab import hardware
from aelab.data.cache import cache_dir, cached
from aelab.data.sources import Arrays
from aelab.errors import AelabError
from aelab.settings import bounded, check_range, coerce
from aelab.runs import checkpoint


@dataclass(frozen=True)
class ClassifierConfig:
    epochs: int = bounded(3, at_least=1)
    batch_size: int = bounded(128, at_least=1)
    lr: float = bounded(1e-3, above=0.0)
    seed: int = 0
    train_size: int = bounded(0, at_least=0)  # 0: all training images (tests use a few thousand)
    version: int = 1  # bump when DigitCNN changes


@dataclass(frozen=True)
class Judging:
    """How an evaluation judges prior samples: the reference classifier's settings and how many
    samples it judges. One frozen value, passed to every evaluation (a `--jobs` worker gets the
    parent's), so that every run of a study is judged alike."""

    classifier: ClassifierConfig = ClassifierConfig()
    samples: int = bounded(10_000, at_least=1)  # as many as test images

    ENV: ClassVar[str] = "AELAB_JUDGING"

    @classmethod
    def from_env(cls, environ=None) -> "Judging":
        """The default, or what $AELAB_JUDGING sets for quick checks (the test suite's): a TOML
        inline table's body, `samples = 1000, epochs = 1, train_size = 3000` (the classifier's
        fields beside samples)."""
        text = (os.environ if environ is None else environ).get(cls.ENV, "").strip()
        if not text:
            return cls()
        try:
            table = tomllib.loads(f"v = {{{text}}}")["v"]
        except tomllib.TOMLDecodeError as e:
            raise AelabError(f"${cls.ENV}: not a TOML inline table's body ({e}), e.g. samples = 1000, epochs = 1") from None
        # samples is Judging's own field, the rest are the classifier's; each checked as config keys are
        fields = {f.name: (f, ClassifierConfig) for f in dataclasses.fields(ClassifierConfig)}
        fields["samples"] = (next(f for f in dataclasses.fields(cls) if f.name == "samples"), cls)
        where = f"${cls.ENV}"
        for key, value in table.items():
            if key not in fields:
                raise AelabError(f"{where}: unknown key {key!r}; valid keys: {', '.join(sorted(fields))}")
            f, owner = fields[key]
            table[key] = coerce(key, value, typing.get_type_hints(owner)[key], where)
            check_range(key, f, table[key], where)
        samples = table.pop("samples", cls().samples)
        return cls(ClassifierConfig(**table), samples)


class DigitCNN(nn.Module):
    """conv(32) -> pool -> conv(64) -> pool -> 128 features -> 10 logits, on (B, 1, 28, 28)."""

    INPUT = (1, 28, 28)  # the images it judges: MNIST-like digits

    def __init__(self, num_classes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, padding=1)
        self.conv2 = nn.Conv2d(32, 64, 3, padding=1)
        self.fc = nn.Linear(64 * 7 * 7, 128)
        self.out = nn.Linear(128, num_classes)
        self.dropout = nn.Dropout(0.3)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        # max-pooling before ReLU is the same number (both are monotone) on a quarter of the values
        h = F.relu(F.max_pool2d(self.conv1(x), 2))  # (B, 32, 14, 14)
        h = F.relu(F.max_pool2d(self.conv2(h), 2))  # (B, 64, 7, 7)
        return F.relu(self.fc(h.flatten(1)))  # (B, 128)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.features(x)))


def _images(u8) -> torch.Tensor:
    return torch.from_numpy(np.array(u8)).unsqueeze(1).float().div_(255)  # a writable copy


def _key(arrays: Arrays, cfg: ClassifierConfig) -> str:
    h = hashlib.sha256()
    for a in (arrays.train_images, arrays.train_labels):
        h.update(a.tobytes())
    h.update(repr(sorted(asdict(cfg).items())).encode())
    return h.hexdigest()


@torch.no_grad()
def accuracy(model: DigitCNN, images: torch.Tensor, labels: torch.Tensor, batch: int = 1000) -> float:
    model.eval()
    hits = sum((predict(model, images[i:i + batch]) == labels[i:i + batch]).sum().item()
               for i in range(0, len(images), batch))
    return hits / len(images)


@torch.no_grad()
def predict(model: DigitCNN, images: torch.Tensor) -> torch.Tensor:
    return model(images).argmax(1)


@torch.enable_grad()  # also when first asked for inside an evaluation's no_grad
def train_classifier(arrays: Arrays, cfg: ClassifierConfig) -> tuple[DigitCNN, float]:
    """Adam on the training set; returns the model and its test accuracy."""
    torch.manual_seed(cfg.seed)
    n = cfg.train_size or len(arrays.train_labels)
    x, y = _images(arrays.train_images[:n]), torch.from_numpy(arrays.train_labels[:n].astype(np.int64))
    # channels-last weights and activations: its convolutions train and judge faster on a CPU
    # (docs/experiments/speed.md); the images are cast to the layout in the first convolution
    model = hardware.conv_layout(DigitCNN(_classes(arrays)), torch.device("cpu"))
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator().manual_seed(cfg.seed)
    steps = cfg.epochs * -(-n // cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr * 3, total_steps=steps)
    for _ in range(cfg.epochs):
        model.train()
        for idx in torch.randperm(n, generator=g).split(cfg.batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    acc = accuracy(model, _images(arrays.test_images), torch.from_numpy(arrays.test_labels.astype(np.int64)))
    return model.eval(), acc


def test_features(arrays: Arrays, name: str, compute, cfg: ClassifierConfig) -> torch.Tensor:
    """The reference classifier's features of `arrays`' test images, (N, F) float64 on the CPU:
    `compute()` the first time on this machine, then read from a file beside the classifier
    (named by the classifier file's bytes and the test images, so a retrained classifier or
    other test images never meet stale features)."""
    return _stored(_path(arrays, name, cfg), hashlib.sha256(arrays.test_images.tobytes()).hexdigest(), compute)


def _stored(classifier_path, images_digest: str, compute) -> torch.Tensor:
    if not classifier_path.is_file():  # no classifier on disk to name the features by
        return compute()
    weights = hashlib.sha256(classifier_path.read_bytes()).hexdigest()[:16]
    store = classifier_path.with_name(f"{classifier_path.stem}-test-{images_digest[:16]}-{weights}.pt")
    return cached(store, lambda path: torch.load(path, map_location="cpu", weights_only=True)["features"],
                  compute, lambda path, feats: checkpoint.save(path, {"features": feats}))


def _path(arrays: Arrays, name: str, cfg: ClassifierConfig):
    return cache_dir() / "classifiers" / f"{name}-{_key(arrays, cfg)[:20]}.pt"


def _classes(arrays: Arrays) -> int:
    return len(arrays.class_names)


def judges(image_shape: tuple[int, ...], num_classes: int) -> bool:
    """Whether a reference classifier can judge samples of this data: images of its input shape
    in more than one class."""
    return tuple(image_shape) == DigitCNN.INPUT and num_classes > 1


def reference_classifier(arrays: Arrays, name: str, cfg: ClassifierConfig) -> tuple[DigitCNN, float]:
    """The cached classifier of this training data, trained first if there is none (or if the
    cached one cannot be read)."""
    path = _path(arrays, name, cfg)

    def read(path: Path) -> tuple[DigitCNN, float]:
        payload = checkpoint.load(path)
        model = DigitCNN(_classes(arrays))
        model.load_state_dict(payload["model"])
        return model.eval(), float(payload["test_accuracy"])

    def build() -> tuple[DigitCNN, float]:
        print(f"training the reference classifier for {name} (once; cached in {path.parent})", file=sys.stderr)
        return train_classifier(arrays, cfg)

    def write(path: Path, trained: tuple[DigitCNN, float]) -> None:
        checkpoint.save(path, {"model": trained[0].state_dict(), "test_accuracy": trained[1],
                               "config": repr(asdict(cfg)), "data": {"dataset": name}})

    model, acc = cached(path, read, build, write)
    # channels-last weights: the convolutions and poolings of judging run faster on a CPU (docs/experiments/speed.md)
    return hardware.conv_layout(model, torch.device("cpu")), acc
