"""Corruption parts: what happens to the encoder's input before encoding (denoising AE,
Vincent et al. 2008). The reconstruction target stays the clean image."""

from __future__ import annotations

import torch

from . import noise


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
        return (x + self.sigma * noise.randn_like(x)).clamp_(0, 1)
