"""Latent parts: what the encoder's output means, and the prior p(z) = N(0, I).

A latent part turns the encoder's output vector into a posterior q(z|x): a point mass for
the plain autoencoder, a diagonal Gaussian for the VAE (Kingma & Welling 2014, sec. 2.4).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch

from aelab.parts import draws, theory
from aelab.parts.settings import PartSettings

LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension. z: (..., D) -> (...)."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


class StandardNormal:
    """p(z) = N(0, I), the same for every image. Priors (priors.py) share its interface:
    log_prob(z), kl_from(q) and draw(eps), z from standard normal draws."""

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def kl_from(self, q: DiagonalGaussian) -> torch.Tensor:
        """KL(q_j || N(0, 1)) of each dimension (Kingma & Welling 2014, appendix B):
        1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2), (B, D)."""
        return 0.5 * (q.mean.pow(2) + q.logvar.exp() - 1 - q.logvar)

    def draw(self, eps: torch.Tensor) -> torch.Tensor:
        return eps


STANDARD = StandardNormal()


class PointMass:
    """q(z|x) = delta(z - code): the deterministic code of an autoencoder. It has no KL term."""

    stochastic = False

    def __init__(self, code: torch.Tensor):
        self.mean = code  # (B, D)

    def rsample(self, k: int | None = None) -> torch.Tensor:
        return self.mean if k is None else self.mean.expand(k, *self.mean.shape)

    def kl(self, prior=None, z=None) -> None:
        return None


class DiagonalGaussian:
    """q(z|x) = N(mu, diag(exp(logvar)))."""

    stochastic = True

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean, logvar  # (B, D) each
        self.std = torch.exp(0.5 * logvar)

    def rsample(self, k: int | None = None) -> torch.Tensor:
        """The reparameterisation trick: z = mu + sigma * eps, eps ~ N(0, I). (B, D) or (k, B, D)."""
        shape = self.mean.shape if k is None else (k, *self.mean.shape)
        eps = draws.randn(shape, batch_dim=len(shape) - 2, dtype=self.mean.dtype, device=self.mean.device)
        return self.mean + self.std * eps

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z|x) summed over dimensions. z: (..., B, D) -> (..., B)."""
        return -0.5 * (((z - self.mean) / self.std).pow(2) + self.logvar + LOG_2PI).sum(-1)

    def kl_per_dim(self, prior: StandardNormal | None = None) -> torch.Tensor:
        """KL(q_j || p_j) of each dimension in closed form, (B, D); p = N(0, I) unless given."""
        prior = prior or STANDARD
        if not hasattr(prior, "kl_from"):
            raise ValueError(f"{type(prior).__name__} has no closed-form KL (kl_from): no KL per dimension")
        return prior.kl_from(self)

    def kl(self, prior: StandardNormal | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || p) per image, (B,): the sum over dimensions of the closed form where the
        prior has one (`kl_from`), else the Monte-Carlo estimate log q(z|x) - log p(z) at the
        codes z: (..., B, D) drawn from q, averaged over any leading draws (an unbiased
        estimate; with the code the reconstruction used, the one-sample ELBO of Kingma &
        Welling 2014, eq. 6)."""
        prior = prior or STANDARD
        if hasattr(prior, "kl_from"):
            return self.kl_per_dim(prior).sum(-1)
        if z is None:
            raise ValueError(f"{type(prior).__name__} has no closed-form KL: pass codes z drawn from q")
        estimate = self.log_prob(z) - prior.log_prob(z)
        return estimate.reshape(-1, *estimate.shape[-1:]).mean(0)


class DeterministicLatent:
    """The encoder's output is the code itself."""

    params_per_dim = 1
    stochastic = False

    def posterior(self, h: torch.Tensor) -> PointMass:
        return PointMass(h)


class GaussianLatent:
    """The encoder's output is [mu, log sigma^2] of a diagonal Gaussian."""

    params_per_dim = 2
    stochastic = True

    def posterior(self, h: torch.Tensor) -> DiagonalGaussian:
        mean, logvar = h.chunk(2, dim=-1)
        return DiagonalGaussian(mean, logvar)


@dataclass(frozen=True)
class _LatentSettings(PartSettings):
    """A latent has no settings; it names the model (`short`) and says what its `part` is."""

    slot = "latent"
    part: ClassVar[type]
    short: ClassVar[str]
    sections: ClassVar[tuple] = ()

    @property
    def stochastic(self) -> bool:
        return self.part.stochastic

    def describe(self) -> str:
        return ""  # said by the model's name (AE, VAE)

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return list(self.sections)

    def build(self):
        return self.part()


@dataclass(frozen=True)
class PointSettings(_LatentSettings):
    """[model.latent] name = "point": a deterministic code (an autoencoder)."""

    name = "point"
    part = DeterministicLatent
    short = "AE"
    sections = (theory.AE, theory.SAMPLING_CODES)


@dataclass(frozen=True)
class GaussianLatentSettings(_LatentSettings):
    """[model.latent] name = "gaussian": q(z|x) a diagonal Gaussian, prior N(0, I) (a VAE)."""

    name = "gaussian"
    part = GaussianLatent
    short = "VAE"
    sections = (theory.VAE,)
