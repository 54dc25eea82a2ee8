"""Condition parts: what, besides x or z, the encoder and decoder are given.

A condition turns labels into a vector that the networks join to their inputs (CVAE: Sohn
et al. 2015), or into nothing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class Unconditional:
    dim = 0

    def __init__(self, num_classes: int = 0):
        pass

    def __call__(self, y: torch.Tensor | None) -> None:
        return None

    def default_labels(self, n: int, device: torch.device) -> None:
        return None


class OneHotLabel:
    """The label as a one-hot vector of `num_classes`."""

    def __init__(self, num_classes: int):
        self.dim = num_classes

    def __call__(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("this model is conditioned on labels: pass y")
        return F.one_hot(y, self.dim).float()

    def default_labels(self, n: int, device: torch.device) -> torch.Tensor:
        """0, 1, ..., C-1, 0, 1, ...: every class in turn."""
        return torch.arange(n, device=device) % self.dim
