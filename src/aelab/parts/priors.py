"""Prior parts: p(z), or p(z | y) for a model conditioned on labels.

`standard`:    p(z) = N(0, I) for every image (Kingma & Welling 2014).
`conditional`: p(z | y) = N(m_y, diag s_y²), one learned Gaussian per class (the prior network
               of Sohn et al. 2015, sec. 4.2, reduced to a table for a one-hot y). It starts
               as N(0, I) and is trained with the rest of the model by the same objective.

A prior module maps labels to the prior of each image: an object with `log_prob(z)`,
`kl_from(q)` (KL(q || p) per dimension, closed form) and `draw(eps)` (z from standard normal
noise eps, so that one eps is one "style" under every label).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aelab.errors import AelabError
from aelab.language import N_
from aelab.parts import theory
from aelab.parts.latents import STANDARD, DiagonalGaussian, StandardNormal
from aelab.parts.settings import PartSettings


class GaussianPrior(DiagonalGaussian):
    """N(m, diag s²) per image: (B, D) means and log-variances."""

    def kl_from(self, q: DiagonalGaussian) -> torch.Tensor:
        """KL(N(mu, sigma²) || N(m, s²)) of each dimension:
        1/2 (log s² - log sigma² + (sigma² + (mu - m)²) / s² - 1), (B, D)."""
        return 0.5 * (self.logvar - q.logvar + (q.logvar.exp() + (q.mean - self.mean).pow(2)) / self.logvar.exp() - 1)

    def draw(self, eps: torch.Tensor) -> torch.Tensor:
        return self.mean + self.std * eps


class FixedPrior(nn.Module):
    """p(z) = N(0, I), whatever the label."""

    symbol = "N(0, I)"

    def forward(self, y: torch.Tensor | None) -> StandardNormal:
        return STANDARD


class ClassPrior(nn.Module):
    """p(z | y) = N(m_y, diag s_y²): a learned mean and log-variance per class, from N(0, I)."""

    symbol = "p(z | y)"

    def __init__(self, num_classes: int, latent_dim: int):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(num_classes, latent_dim))
        self.logvar = nn.Parameter(torch.zeros(num_classes, latent_dim))

    def forward(self, y: torch.Tensor | None) -> GaussianPrior:
        if y is None:
            raise ValueError("this model's prior is conditioned on labels: pass y")
        return GaussianPrior(self.mean[y], self.logvar[y])


@dataclass(frozen=True)
class StandardPriorSettings(PartSettings):
    """[model.prior] name = "standard": p(z) = N(0, I)."""

    name = "standard"
    slot = "prior"

    def describe(self) -> str:
        return ""  # the textbook prior, said by the theory of the latent

    def build(self, num_classes: int, latent_dim: int) -> FixedPrior:
        return FixedPrior()


@dataclass(frozen=True)
class ConditionalPriorSettings(PartSettings):
    """[model.prior] name = "conditional": p(z | y), a learned Gaussian per class (needs
    model.condition.name = "label" and a Gaussian latent)."""

    name = "conditional"
    slot = "prior"

    def check(self, model) -> None:
        if not model.latent.stochastic or not model.condition.prefix:
            raise AelabError("model.prior: a conditional prior p(z | y) needs model.latent.name = 'gaussian' and "
                             f"model.condition.name = 'label', not {model.latent.name!r} and {model.condition.name!r}")

    def describe(self) -> str:
        return N_("learned prior p(z | y)")

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [theory.CONDITIONAL_PRIOR]

    def build(self, num_classes: int, latent_dim: int) -> ClassPrior:
        return ClassPrior(num_classes, latent_dim)
