"""Corruption parts: what happens to the encoder's input before encoding (denoising AE,
Vincent et al. 2008). The reconstruction target stays the clean image."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from aelab.language import N_
from aelab.parts import draws, theory
from aelab.parts.settings import PartSettings, bounded


class Clean:
    active = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


class GaussianNoise:
    """x + sigma * eps, eps ~ N(0, I), clipped back to [0, 1]."""

    active = True

    def __init__(self, sigma: float):
        self.sigma = sigma

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * draws.randn_like(x)).clamp_(0, 1)


@dataclass(frozen=True)
class NoCorruptionSettings(PartSettings):
    """[model.corruption] name = "none": the encoder sees the image."""

    name = "none"
    slot = "corruption"

    def describe(self) -> str:
        return ""

    def build(self) -> Clean:
        return Clean()


@dataclass(frozen=True)
class GaussianNoiseSettings(PartSettings):
    """[model.corruption] name = "gaussian": a denoising autoencoder's input draws."""

    name = "gaussian"
    slot = "corruption"
    sigma: float = bounded(0.4, above=0.0)  # std of the noise added to the encoder's input, before clipping

    def describe(self) -> str:
        return N_("input noise {sigma:g}", sigma=self.sigma)

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [theory.DENOISING]

    def build(self) -> GaussianNoise:
        return GaussianNoise(self.sigma)
