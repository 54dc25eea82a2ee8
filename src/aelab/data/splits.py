"""Images in memory as uint8 tensors; batches by indexing with a random permutation.

No per-sample Dataset or DataLoader: a batch is one gather and one conversion to float.
Splits: train (the first part of the training file), val (its last `val_size` images, for
model selection) and test (the test file, for final evaluation only).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from aelab.data.sources import Arrays

# Seeds of the one-off binarisation of the evaluation splits: the same for every run, so
# every run is measured on the same binary test images.
EVAL_BINARIZE_SEED = {"val": 1, "test": 2}


@dataclass(frozen=True)
class Batch:
    x: torch.Tensor  # (B, C, H, W) float in [0, 1]: the clean image, the reconstruction target
    y: torch.Tensor  # (B,) int64 labels


@dataclass(frozen=True)
class Split:
    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64

    def __len__(self) -> int:
        return len(self.labels)

    def to(self, device: torch.device) -> "Split":
        return Split(self.images.to(device), self.labels.to(device))


class GreyLevels:
    """Grey levels in [0, 1] as they are ("continuous MNIST")."""

    fresh_per_batch = False  # True: training images are re-drawn in every batch

    def once(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        return images

    def per_batch(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return x


class StaticBinary(GreyLevels):
    """Static binarisation: a pixel is 1 where its grey level exceeds 0.5 (k/255 > 0.5 <=> k >= 128)."""

    def once(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        return (images >= 128).to(torch.uint8) * 255


class DynamicBinary(GreyLevels):
    """Dynamic binarisation (Burda et al. 2016): each training image is a fresh Bernoulli draw
    with its grey levels as probabilities, every time it is used; evaluation splits are drawn
    once, with a fixed seed."""

    fresh_per_batch = True

    def once(self, images: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator(device=images.device).manual_seed(seed)
        return torch.bernoulli(images.float() / 255, generator=g).to(torch.uint8) * 255

    def per_batch(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return torch.bernoulli(x, generator=generator)


def _channels(images) -> torch.Tensor:
    """(N, H, W) grey or (N, C, H, W) uint8 numpy -> (N, C, H, W) tensor (a copy)."""
    t = torch.from_numpy(images.copy())
    return t.unsqueeze(1) if t.dim() == 3 else t


@dataclass(frozen=True)
class ImageData:
    """Train/val/test splits of one dataset, held as uint8 tensors on one device, each already
    binarised as the binarizer says (the training split stays grey if it is re-drawn per batch)."""

    train: Split
    val: Split
    test: Split
    binarizer: GreyLevels
    class_names: tuple[str, ...]  # label c names class_names[c]

    @classmethod
    def from_arrays(cls, arrays: Arrays, binarizer: GreyLevels, val_size: int, train_size: int = 0) -> "ImageData":
        images = _channels(arrays.train_images)  # (N, C, H, W)
        labels = torch.from_numpy(arrays.train_labels.astype("int64"))
        n_train = len(labels) - val_size
        if n_train < 1:
            raise ValueError(f"val_size {val_size} leaves no training images out of {len(labels)}")
        keep = min(train_size, n_train) if train_size else n_train
        train = images[:keep]
        if not binarizer.fresh_per_batch:
            train = binarizer.once(train, 0)
        return cls(
            train=Split(train, labels[:keep]),
            val=Split(binarizer.once(images[n_train:], EVAL_BINARIZE_SEED["val"]), labels[n_train:]),
            test=Split(
                binarizer.once(_channels(arrays.test_images), EVAL_BINARIZE_SEED["test"]),
                torch.from_numpy(arrays.test_labels.astype("int64")),
            ),
            binarizer=binarizer,
            class_names=tuple(arrays.class_names),
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.train.images.device

    def to(self, device: torch.device) -> "ImageData":
        return dataclasses.replace(
            self, train=self.train.to(device), val=self.val.to(device), test=self.test.to(device)
        )

    def epoch_order(self, generator: torch.Generator) -> torch.Tensor:
        """A fresh random order of the training images: one epoch's."""
        return torch.randperm(len(self.train), generator=generator, device=generator.device)

    def train_batches(self, batch_size: int, generator: torch.Generator,
                      rows: Callable[[int], tuple[int, int]] = lambda n: (0, n),
                      order: torch.Tensor | None = None, start: int = 0) -> Iterator[Batch]:
        """One epoch of training batches in a fresh random order (the last may be smaller), or
        in `order` from its batch `start` on (an epoch resumed from a mid-epoch checkpoint).
        `rows(n)` -> (first, count): the rows of each batch of n this process trains on (all
        of them for one process; a share under torchrun). Per-batch binarisation is drawn for
        the whole batch, so every share is the one a single process would have drawn."""
        order = self.epoch_order(generator) if order is None else order
        for first_image in range(start * batch_size, len(order), batch_size):
            idx = order[first_image:first_image + batch_size]
            first, count = rows(len(idx))
            mine = idx[first:first + count]
            if self.binarizer.fresh_per_batch:
                x = self.binarizer.per_batch(self.train.images[idx].float().div_(255), generator)[first:first + count]
            else:
                x = self.train.images[mine].float().div_(255)
            yield Batch(x, self.train.labels[mine])

    def eval_batches(self, split: Split, batch_size: int) -> Iterator[Batch]:
        """`split` in its stored order, already binarised."""
        for start in range(0, len(split), batch_size):
            sl = slice(start, start + batch_size)
            yield Batch(split.images[sl].float().div_(255), split.labels[sl])

    def steps_per_epoch(self, batch_size: int) -> int:
        return -(-len(self.train) // batch_size)
