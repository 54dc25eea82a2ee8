"""What a figure is drawn from: the model, its data, the class names, the codes, and the
fixed test images and seeds that make the same figure of two runs comparable."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import torch

from aelab import hardware, language
from aelab.data.splits import ImageData, Split
from aelab.evaluation.metrics import posterior_means
from aelab.language import Language
from aelab.parts.autoencoder import Autoencoder
from aelab.settings import bounded

FIGURE_SEED = 2024  # z of prior samples and interpolation noise, input corruption, picked images
SHOWN = 9  # images in a row of the code-space figures; the test images picked where there are no classes


@dataclass(frozen=True)
class FigureOptions:
    """Settings of the code-space figures; a study sets them in its [figures] table."""

    fit_codes: int = bounded(256, at_least=2)  # training codes the Gaussian is fitted to
    pull: float = bounded(0.25, at_least=0.0, at_most=1.0)  # delta in delta * sample + (1 - delta) * real code
    # noise sd on codes, relative to their RMS
    noise_levels: tuple[float, ...] = bounded((0.0, 0.1, 0.2, 0.5, 1.0), at_least=0.0)


class Subject:
    """The model and its data, with the test codes encoded once, on first use, for every
    figure that needs them, and the language its figures are lettered in."""

    def __init__(self, model: Autoencoder, data: ImageData, names: list[str],
                 options: FigureOptions = FigureOptions(), tr: Language | None = None):
        self.model, self.data, self.names, self.options = model, data, names, options
        self.tr = tr or language.get("en")  # letters the figures: titles, labels (aelab/language.py)
        self.batch = hardware.eval_batch(data.image_shape, 1000)  # images a pass encodes

    @cached_property
    def codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, D) posterior means E[z|x] of the test images, and their (N,) labels."""
        return posterior_means(self.model, self.data.eval_batches(self.data.test, self.batch))

    def train_codes(self, n: int) -> torch.Tensor:
        """(n, D) posterior means of the first n training images."""
        split = Split(self.data.train.images[:n], self.data.train.labels[:n])
        return posterior_means(self.model, self.data.eval_batches(split, self.batch))[0]


def fixed_indices(labels: torch.Tensor, per_class: int, classes: int) -> torch.Tensor:
    """The first `per_class` test images of each class, class by class: the same images for
    every run on the same dataset."""
    picks = [torch.nonzero(labels == c).flatten()[:per_class] for c in range(classes)]
    return torch.cat([p for p in picks if len(p)]).cpu()


def random_indices(n_images: int, n: int) -> torch.Tensor:
    """n test indices drawn once with the figure seed: the same images for every run."""
    return torch.randperm(n_images, generator=torch.Generator().manual_seed(FIGURE_SEED))[:n]


def test_images(data: ImageData, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Test images (in [0, 1]) and labels at `idx`, on the data's device."""
    x = data.test.images[idx.to(data.device)].float().div_(255)
    return x, data.test.labels[idx.to(data.device)]


def shown_images(data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    """The SHOWN test images drawn once with the figure seed, and their labels."""
    return test_images(data, random_indices(len(data.test), SHOWN))


def cond(model: Autoencoder, y: torch.Tensor | None):
    """The labels where the model is conditioned on them, else None."""
    return y if model.condition.dim else None


def randn(n: int, d: int, device: torch.device, seed: int = FIGURE_SEED) -> torch.Tensor:
    """Seeded normal draws, made on the CPU so that every device draws the same."""
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed)).to(device)
