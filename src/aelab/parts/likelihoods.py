"""Likelihood parts p(x|z): what the decoder's output means, and the reconstruction term.

`log_prob` is summed over pixels, one value per image, in nats. The decoder's raw output
`out` has the image's shape. The usual loss names map onto likelihoods:
  BCE      = Bernoulli with logits `out`;
  MSE sum  = Gaussian with mean sigmoid(out) and std 1/sqrt(2): -log p = sum (x - m)^2 + D/2 log(pi);
  L1 sum   = Laplace with location sigmoid(out) and scale 1:    -log p = sum |x - m| + D log 2.
Other fixed scales are set with `scale`; `learn_scale` learns one shared scale
(as in sigma-VAE, Rybkin et al. 2021).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from aelab.language import N_, join
from aelab.parts.slots import LikelihoodSettings
from aelab.settings import bounded

LOSSES = (N_("Reconstruction losses are likelihoods"), [
    N_("Each reconstruction loss is −log p(x | z) for some p, up to a constant: binary cross-entropy is the "
    "Bernoulli likelihood; the squared error summed over pixels is a Gaussian with σ² = ½ "
    "(−log p = Σ (x − m)² + ½ D log π); the absolute error summed over pixels is a Laplace with scale 1. "
    "Their values differ by those constants and by how sharply they punish an error, so compare the "
    "runs' samples and the classifier scores, not their reconstruction nats."),
])


def _per_image(t: torch.Tensor) -> torch.Tensor:
    """(..., C, H, W) -> (...): the sum over each image's pixels."""
    return t.flatten(-3).sum(-1)


class Bernoulli(nn.Module):
    """p(x|z) = prod_i p_i^x_i (1 - p_i)^(1 - x_i), p = sigmoid(out). Valid for x in [0, 1];
    a true likelihood only for binary x."""

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """x log p + (1 - x) log(1 - p), summed per image. x may broadcast against out (one x
        for K decodings of it): then as x * out - softplus(out), with no K-fold copy of x."""
        if out.shape == x.shape:  # training: torch's fused BCE kernel is the faster here
            return -_per_image(F.binary_cross_entropy_with_logits(out, x, reduction="none"))
        return _per_image(x * out) - _per_image(F.softplus(out))

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class _LocationScale(nn.Module):
    """Location sigmoid(out) in [0, 1] and one scale shared by all pixels, fixed or learned."""

    default_scale = 1.0

    def __init__(self, scale: float = 0.0, learn: bool = False):
        super().__init__()
        log_scale = torch.tensor(math.log(scale or self.default_scale))
        if learn:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer("log_scale", log_scale)

    def mean(self, out: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(out)


class Gaussian(_LocationScale):
    """-log p(x|z) = sum_i (x_i - m_i)^2 / (2 s^2) + log s + 1/2 log(2 pi)."""

    default_scale = math.sqrt(0.5)  # makes -log p the summed squared error plus a constant

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        s2 = torch.exp(2 * self.log_scale)
        nll = (x - torch.sigmoid(out)).pow(2) / (2 * s2) + self.log_scale + 0.5 * math.log(2 * math.pi)
        return -_per_image(nll)


class Laplace(_LocationScale):
    """-log p(x|z) = sum_i |x_i - m_i| / b + log(2 b)."""

    default_scale = 1.0  # makes -log p the summed absolute error plus a constant

    def log_prob(self, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        nll = (x - torch.sigmoid(out)).abs() / torch.exp(self.log_scale) + self.log_scale + math.log(2)
        return -_per_image(nll)


@dataclass(frozen=True)
class BernoulliSettings(LikelihoodSettings):
    """[model.likelihood] name = "bernoulli": each pixel a Bernoulli of the decoder's logit
    (binary cross-entropy, summed over pixels)."""

    name = "bernoulli"

    def describe(self) -> str:
        return "bernoulli"

    def build(self) -> Bernoulli:
        return Bernoulli()


@dataclass(frozen=True)
class _ScaledSettings(LikelihoodSettings):
    scale: float = bounded(0.0, at_least=0.0)  # the fixed scale; 0 = the conventional one (see the classes above)
    learn_scale: bool = False  # learn one shared scale, starting from `scale`

    def describe(self) -> str:
        return join("", [self.name, N_(" scale {scale:g}", scale=self.scale) if self.scale else "",
                         N_(" (scale learned)") if self.learn_scale else ""])

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [LOSSES]

    def build(self) -> nn.Module:
        return self.part(self.scale, self.learn_scale)


@dataclass(frozen=True)
class GaussianLikelihoodSettings(_ScaledSettings):
    """[model.likelihood] name = "gaussian": summed squared error (MSE) at the conventional scale."""

    name = "gaussian"
    part = Gaussian


@dataclass(frozen=True)
class LaplaceSettings(_ScaledSettings):
    """[model.likelihood] name = "laplace": summed absolute error (L1) at the conventional scale."""

    name = "laplace"
    part = Laplace
