"""Latent parts: what the encoder's output means, and the prior p(z) = N(0, I).

A latent part turns the encoder's output vector into a posterior q(z|x): a point mass for
the plain autoencoder, a diagonal Gaussian for the VAE (Kingma & Welling 2014, sec. 2.4), or
two stochastic layers that own their hierarchy (below).

Two stochastic layers (Burda, Grosse & Salakhutdinov 2016, sec. 5): a latent part that owns
its hierarchy.

    inference   x -> [network] -> q(z1 | x) -> [up] -> q(z2 | z1)
    generation  p(z2) -> [down] -> p(z1 | z2) -> [network] -> p(x | z1)

The code is z = [z1, z2] (latent_dim numbers, the top layer's top_dim last). The model's
network maps x to q(z1 | x) and z1 to p(x | z1); the latent part adds the two small networks
between the layers and turns the model's prior part into the top layer's prior p(z2), so that
log p(z) = log p(z2) + log p(z1 | z2) and samples are drawn top-down. Nothing else in aelab
knows there are two layers: the objectives, nll_is and the figures see one code, one posterior
(`rsample`, `log_prob`, `mean`) and one prior (`log_prob`, `draw`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from aelab.errors import AelabError
from aelab.language import N_, join
from aelab.parts import draws
from aelab.parts.networks import ACTIVATIONS, mlp
from aelab.parts.slots import Latent, LatentSettings, Posterior, Prior, PriorDensity
from aelab.settings import bounded, choice

AE_THEORY = (N_("Autoencoder (AE)"), [
        N_("The encoder maps an image to one code, z = f(x); the decoder gives the parameters of p(x | z). "
        "Training minimises the reconstruction loss alone: L_AE(x) = −log p(x | f(x)). With the Bernoulli "
        "likelihood this is the binary cross-entropy summed over the pixels (784 for a digit)."),
        N_("Nothing asks the codes to follow any distribution, so decoding z ~ N(0, I) only shows what the "
        "decoder does where codes may never have landed; the AE has no ELBO and no NLL."),
])


VAE_THEORY = (N_("Variational autoencoder (VAE)"), [
        N_("The encoder gives a distribution over codes, q(z | x) = N(μ(x), diag σ²(x)); the prior is "
        "p(z) = N(0, I). Training maximises the evidence lower bound "
        "ELBO(x) = E_q(z|x)[log p(x | z)] − KL(q(z | x) ‖ p(z)) ≤ log p(x)."),
        N_("The expectation uses one reparameterised draw z = μ + σ ⊙ ε, ε ~ N(0, I), so gradients reach the "
        "encoder; the KL is closed-form: ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1). β weights the KL and a warm-up "
        "raises it from 0 to β over the first epochs (KL annealing)."),
        N_("neg_elbo is −ELBO on the test set. nll_is is the tighter importance-sampled estimate "
        "−log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x) (Burda et al. 2016), so nll_is ≤ neg_elbo."),
])


SAMPLING_CODES = (N_("Sampling an autoencoder's code space"), [
    N_("An AE is trained only to decode the codes of real images. To sample it anyway, fit a Gaussian "
    "N(m, S) to the codes of n training images and decode draws from it. With fewer codes than "
    "dimensions (256 codes of 1,024 numbers for an 8x8x16 code), S has rank at most n − 1: every draw is "
    "the mean code plus a random mix of the centred training codes, a blend of many images at once that "
    "the decoder never saw. The reconstruction loss puts no demand on what such codes decode to."),
    N_("Pulled codes, δ·sample + (1 − δ)·code, stay near one real code and show how far from it the decoder "
    "still gives that image. Noise on the code in training (the channel) teaches the decoder codes within "
    "about σ√D of real ones, σ times a code's own length; it asks nothing about the space between codes. "
    "A VAE's KL term, which draws the codes towards N(0, I), is what makes a code space one to sample from."),
])


LOG_2PI = math.log(2 * math.pi)


def standard_normal_log_prob(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I) summed over the last dimension. z: (..., D) -> (...)."""
    return -0.5 * (z.pow(2) + LOG_2PI).sum(-1)


class StandardNormal(PriorDensity):
    """p(z) = N(0, I), the same for every image. Priors (priors.py) share its interface:
    log_prob(z), kl_from(q) and draw(eps), z from standard normal draws."""

    closed_kl = True

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_prob(z)

    def kl_from(self, q: DiagonalGaussian) -> torch.Tensor:
        """KL(q_j || N(0, 1)) of each dimension (Kingma & Welling 2014, appendix B):
        1/2 (mu_j^2 + sigma_j^2 - 1 - log sigma_j^2), (B, D)."""
        return 0.5 * (q.mean.pow(2) + q.logvar.exp() - 1 - q.logvar)

    def draw(self, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return eps


STANDARD = StandardNormal()


class PointMass(Posterior):
    """q(z|x) = delta(z - code): the deterministic code of an autoencoder. It has no KL term."""

    stochastic = False

    def __init__(self, code: torch.Tensor):
        self.mean = code  # (B, D)

    def rsample(self, k: int | None = None) -> torch.Tensor:
        return self.mean if k is None else self.mean.expand(k, *self.mean.shape)

    def kl(self, prior=None, z=None) -> None:
        return None


class DiagonalGaussian(Posterior):
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
        return (prior or STANDARD).kl_from(self)

    def free_kl(self, prior, z: torch.Tensor, free_bits: float) -> torch.Tensor:
        """Free bits with each dimension a group: Σ_j max(λ, mean over the batch of KL_j). A prior
        with no KL per dimension in closed form (a mixture: the VampPrior) does not split over
        dimensions, so the whole code is one group: max(λ D, mean over the batch of the KL
        estimated at z)."""
        if not prior.closed_kl:
            return self.kl(prior, z).mean().clamp(min=free_bits * self.mean.shape[-1])
        return self.kl_per_dim(prior).mean(0).clamp(min=free_bits).sum()

    def kl(self, prior: StandardNormal | None = None, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || p) per image, (B,): the sum over dimensions of the closed form where the
        prior has one (`kl_from`), else the Monte-Carlo estimate log q(z|x) - log p(z) at the
        codes z: (..., B, D) drawn from q, averaged over any leading draws (an unbiased
        estimate; with the code the reconstruction used, the one-sample ELBO of Kingma &
        Welling 2014, eq. 6)."""
        prior = prior or STANDARD
        if prior.closed_kl:
            return self.kl_per_dim(prior).sum(-1)
        if z is None:
            raise ValueError(f"{type(prior).__name__} has no closed-form KL: pass codes z drawn from q")
        estimate = self.log_prob(z) - prior.log_prob(z)
        return estimate.reshape(-1, *estimate.shape[-1:]).mean(0)


class DeterministicLatent(Latent):
    """The encoder's output is the code itself."""

    params_per_dim = 1
    stochastic = False

    def posterior(self, h: torch.Tensor) -> PointMass:
        return PointMass(h)


class GaussianLatent(Latent):
    """The encoder's output is [mu, log sigma^2] of a diagonal Gaussian."""

    params_per_dim = 2
    stochastic = True

    def posterior(self, h: torch.Tensor) -> DiagonalGaussian:
        mean, logvar = h.chunk(2, dim=-1)
        return DiagonalGaussian(mean, logvar)


@dataclass(frozen=True)
class _LatentSettings(LatentSettings):
    """A latent has no settings; it names the model (`short`) and says what its `part` is."""

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

    def build(self, latent_dim: int) -> Latent:
        return self.part()


@dataclass(frozen=True)
class PointSettings(_LatentSettings):
    """[model.latent] name = "point": a deterministic code (an autoencoder)."""

    name = "point"
    part = DeterministicLatent
    short = "AE"
    sections = (AE_THEORY, SAMPLING_CODES)


@dataclass(frozen=True)
class GaussianLatentSettings(_LatentSettings):
    """[model.latent] name = "gaussian": q(z|x) a diagonal Gaussian, prior N(0, I) (a VAE)."""

    name = "gaussian"
    part = GaussianLatent
    short = "VAE"
    sections = (VAE_THEORY,)


def _gaussian(h: torch.Tensor) -> DiagonalGaussian:
    mean, logvar = h.chunk(2, dim=-1)
    return DiagonalGaussian(mean, logvar)


class TwoLayerPosterior(Posterior):
    """q(z1, z2 | x) = q(z1 | x) q(z2 | z1) over codes [z1, z2]. It has no closed-form KL from
    the prior: `kl` is the Monte-Carlo estimate at the codes drawn."""

    stochastic = True

    def __init__(self, bottom: DiagonalGaussian, up: nn.Module):
        self.bottom, self.up = bottom, up
        self.mean = torch.cat([bottom.mean, _gaussian(up(bottom.mean)).mean], -1)  # z2's mean given z1's mean

    def _split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d1 = self.bottom.mean.shape[-1]
        return z[..., :d1], z[..., d1:]

    def rsample(self, k: int | None = None) -> torch.Tensor:
        """z1 ~ q(z1 | x), then z2 ~ q(z2 | z1) for each: (B, D) or (k, B, D)."""
        z1 = self.bottom.rsample(k)
        return torch.cat([z1, _gaussian(self.up(z1)).rsample()], -1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log q(z1 | x) + log q(z2 | z1), (..., B, D) -> (..., B)."""
        z1, z2 = self._split(z)
        return self.bottom.log_prob(z1) + _gaussian(self.up(z1)).log_prob(z2)

    def kl(self, prior, z: torch.Tensor | None = None) -> torch.Tensor:
        """KL(q || p) per image, (B,): log q(z | x) - log p(z) at the codes z drawn from q,
        averaged over any leading draws."""
        if z is None:
            raise ValueError("two stochastic layers have no closed-form KL: pass codes z drawn from q")
        estimate = self.log_prob(z) - prior.log_prob(z)
        return estimate.reshape(-1, *estimate.shape[-1:]).mean(0)

    def free_kl(self, prior: "TopDown", z: torch.Tensor, free_bits: float) -> torch.Tensor:
        """Free bits with each layer a group (Kingma et al. 2016 free bits by groups of the code): the
        estimates at z of KL(z1) = log q(z1 | x) - log p(z1 | z2) and KL(z2) = log q(z2 | z1) -
        log p(z2), each averaged over the batch and counted at least λ times its layer's numbers.
        A top layer whose KL sits below its floor gets no pull towards the prior, only the one
        towards codes that predict z1."""
        z1, z2 = self._split(z)
        low, top = prior.log_prob_layers(z)
        layers = (self.bottom.log_prob(z1) - low, _gaussian(self.up(z1)).log_prob(z2) - top)  # (..., B) each
        return sum(kl.reshape(-1).mean().clamp(min=free_bits * part.shape[-1]) for kl, part in zip(layers, (z1, z2)))


class TopDown(PriorDensity):
    """p(z1, z2) = p(z2) p(z1 | z2) over codes [z1, z2], p(z2) the model's prior part."""

    def __init__(self, top, down: nn.Module, bottom_dim: int):
        self.top, self.down, self.bottom_dim = top, down, bottom_dim

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        low, top = self.log_prob_layers(z)
        return low + top

    def log_prob_layers(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(log p(z1 | z2), log p(z2)), (..., B) each."""
        z1, z2 = z[..., :self.bottom_dim], z[..., self.bottom_dim:]
        return _gaussian(self.down(z2)).log_prob(z1), self.top.log_prob(z2)

    def draw(self, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Top-down: z2 from the top prior with eps's last top_dim numbers, then z1 = m(z2) +
        s(z2) * eps's first bottom_dim numbers."""
        z2 = self.top.draw(eps[..., self.bottom_dim:], generator)
        lower = _gaussian(self.down(z2))
        return torch.cat([lower.mean + lower.std * eps[..., :self.bottom_dim], z2], -1)


class TwoLayerPrior(Prior):
    """The prior of a two-layer model: the model's prior part for z2, and the network of p(z1 | z2)."""

    def __init__(self, top: nn.Module, down: nn.Module, bottom_dim: int):
        super().__init__()
        self.top, self.down, self.bottom_dim = top, down, bottom_dim
        self.symbol = f"p(z₂) p(z₁ | z₂), z₂ ~ {top.symbol}"

    def forward(self, y: torch.Tensor | None) -> TopDown:
        return TopDown(self.top(y), self.down, self.bottom_dim)


class TwoLayerLatent(Latent):
    """The latent part: q(z2 | z1) (`up`) and, for the prior, p(z1 | z2) (`down`), each an MLP
    with two Gaussian heads (mean and log-variance)."""

    params_per_dim = 2
    stochastic = True

    def __init__(self, latent_dim: int, top_dim: int, hidden: tuple[int, ...], activation: type[nn.Module]):
        super().__init__()
        self.bottom_dim, self.top_dim = latent_dim - top_dim, top_dim
        self.up = mlp([self.bottom_dim, *hidden, 2 * top_dim], activation)
        self._down = mlp([top_dim, *reversed(hidden), 2 * self.bottom_dim], activation)  # given to the prior

    def widths(self, latent_dim: int) -> tuple[int, int]:
        """The network's encoder output (q(z1 | x)'s mean and log-variance) and decoder input (z1)."""
        return 2 * self.bottom_dim, self.bottom_dim

    def prior_dim(self, latent_dim: int) -> int:
        return self.top_dim  # the model's prior part is p(z2)

    def around(self, top: nn.Module) -> TwoLayerPrior:
        return TwoLayerPrior(top, self._down, self.bottom_dim)

    @property
    def layers(self) -> dict[str, slice]:
        """Each layer's numbers in the code, for the active units of each."""
        return {"z1": slice(0, self.bottom_dim), "z2": slice(self.bottom_dim, self.bottom_dim + self.top_dim)}

    def visible(self, z: torch.Tensor) -> torch.Tensor:
        """What the decoder sees of a code: z1."""
        return z[..., :self.bottom_dim]

    def posterior(self, h: torch.Tensor) -> TwoLayerPosterior:
        return TwoLayerPosterior(_gaussian(h), self.up)


TWO_LAYERS = (N_("Two stochastic layers"), [
    N_("The code has two layers, z = [z₁, z₂]. Inference goes up, q(z₁, z₂ | x) = q(z₁ | x) q(z₂ | z₁), and "
       "generation comes down, p(x, z₁, z₂) = p(z₂) p(z₁ | z₂) p(x | z₁), each conditional a diagonal Gaussian "
       "whose mean and log-variance a small network computes (Burda et al. 2016, sec. 5, after Rezende et al. "
       "2014). The decoder sees only z₁; z₂ shapes the prior of z₁, which is no longer one N(0, I)."),
    N_("The KL of the ELBO, E_q[log q(z₁, z₂ | x) − log p(z₁, z₂)], has no closed form: it is estimated at the "
       "codes drawn, and nll_is weighs each code by p(z₂) p(z₁ | z₂) / q(z₁ | x) q(z₂ | z₁). Samples are drawn "
       "top-down: z₂ from its prior, z₁ from p(z₁ | z₂), then the image from p(x | z₁)."),
])


@dataclass(frozen=True)
class TwoLayerSettings(LatentSettings):
    """[model.latent] name = "two_layer": two stochastic layers, the top one of `top_dim` of the
    code's latent_dim numbers (0: a third of them, Burda et al.'s 50 of 150)."""

    name = "two_layer"
    stochastic = True
    short = "VAE"
    top_dim: int = bounded(0, at_least=0)  # numbers of z2; 0 = latent_dim // 3
    hidden: tuple[int, ...] = bounded((50, 50), at_least=1)  # the widths of q(z2 | z1)'s network (p(z1 | z2)'s reversed)
    activation: str = choice("tanh", ACTIVATIONS)

    def top(self, latent_dim: int) -> int:
        return self.top_dim or latent_dim // 3

    def check(self, model) -> None:
        top = self.top(model.latent_dim)
        if not 1 <= top < model.latent_dim:
            raise AelabError(f"model.latent.top_dim: two layers need 1 to {model.latent_dim - 1} of the "
                             f"{model.latent_dim} code numbers in the top layer, not {top}")
        if model.prior.needs_encoder:
            raise AelabError(f"model.prior: {model.prior.name!r} is made from the encoder's posterior of z, "
                             "which two layers do not give in one Gaussian")

    def describe(self) -> str:
        head = (N_("two stochastic layers, z₂ of {top} numbers", top=self.top_dim) if self.top_dim
                else N_("two stochastic layers"))
        return join(", ", [head, *self.changed_words({
            "top_dim": "", "hidden": N_("{hidden} between them", hidden="-".join(map(str, self.hidden))),
            "activation": N_("{activation} between them", activation=self.activation)})])

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [VAE_THEORY, TWO_LAYERS]

    def build(self, latent_dim: int) -> TwoLayerLatent:
        return TwoLayerLatent(latent_dim, self.top(latent_dim), self.hidden, ACTIVATIONS[self.activation])
