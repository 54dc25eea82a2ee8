"""Condition parts: what, besides x or z, the encoder and decoder are given.

A condition turns labels into a vector that the networks join to their inputs (CVAE: Sohn
et al. 2015), or into nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from aelab.language import N_, join
from aelab.parts import theory
from aelab.parts.settings import PartSettings, bounded


class Unconditional:
    dim = 0

    def __init__(self, num_classes: int = 0):
        pass

    def __call__(self, y: torch.Tensor | None) -> None:
        return None

    def default_labels(self, n: int, device: torch.device) -> None:
        return None


class OneHotLabel:
    """The label as a one-hot vector of `num_classes`, times `scale`."""

    def __init__(self, num_classes: int, scale: float = 1.0):
        self.dim, self.scale = num_classes, scale

    def __call__(self, y: torch.Tensor | None) -> torch.Tensor:
        if y is None:
            raise ValueError("this model is conditioned on labels: pass y")
        return F.one_hot(y, self.dim).float() * self.scale

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
    # the one-hot's value: 1 is the textbook; larger gives the label the weight in the networks'
    # first layers that a code of many N(0, 1) numbers has (see theory.LABEL_SCALE)
    scale: float = bounded(1.0, above=0.0)

    def describe(self) -> str:
        return join(", ", self.changed_words({"scale": N_("label one-hot x {scale:g}", scale=self.scale)}))  # CVAE: the model's name

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [theory.condition(model)] + ([theory.label_scale(self.scale)] if self.scale != 1 else [])

    def build(self, num_classes: int) -> OneHotLabel:
        return OneHotLabel(num_classes, self.scale)
