"""Condition parts: what, besides x or z, the encoder and decoder are given.

A condition turns labels into a vector that the networks join to their inputs (CVAE: Sohn
et al. 2015), or into nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import theory
from .settings import PartSettings


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


@dataclass(frozen=True)
class NoConditionSettings(PartSettings):
    """[model.condition] name = "none"."""

    name = "none"
    slot = "condition"
    prefix = ""

    def describe(self) -> str:
        return ""

    def build(self, num_classes: int) -> Unconditional:
        return Unconditional()


@dataclass(frozen=True)
class LabelSettings(PartSettings):
    """[model.condition] name = "label": both networks are given the one-hot label (a CVAE)."""

    name = "label"
    slot = "condition"
    prefix = "C"  # a conditional AE or VAE: CAE, CVAE

    def describe(self) -> str:
        return ""  # said by the model's name (CVAE)

    def theory(self) -> list[tuple[str, list[str]]]:
        return [theory.CONDITION]

    def build(self, num_classes: int) -> OneHotLabel:
        return OneHotLabel(num_classes)
