"""A prior aelab does not ship: a learned mixture of K Gaussians (as in Tomczak & Welling 2018,
whose VampPrior is such a mixture; here its components are free parameters). Its KL from a
Gaussian posterior has no closed form, so the ELBO estimates it at the code it draws."""

import math
from dataclasses import dataclass

import torch
from torch import nn

from aelab.errors import AelabError
from aelab.parts import Prior, PriorDensity, PriorSettings, bounded


class Mixture(Prior, PriorDensity):
    """p(z) = sum_k w_k N(z; m_k, diag s_k^2), the same for every image: the prior module
    (labels -> the density of each image) and that density at once."""

    symbol = "a mixture of Gaussians"

    def __init__(self, components: int, latent_dim: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.mean = nn.Parameter(torch.randn(components, latent_dim))  # spread, so they differ
        self.logvar = nn.Parameter(torch.zeros(components, latent_dim))

    def forward(self, y):
        return self  # one prior for every label: log_prob and draw, and no closed-form KL (closed_kl stays False)

    def log_prob(self, z):  # (..., D) -> (...)
        z = z.unsqueeze(-2)  # (..., 1, D) against (K, D)
        log_n = -0.5 * ((z - self.mean) ** 2 / self.logvar.exp() + self.logvar + math.log(2 * math.pi)).sum(-1)
        return torch.logsumexp(log_n + self.logits.log_softmax(0), -1)

    def draw(self, eps, generator=None):
        """z from standard normal eps (B, D): a component per row, chosen by the weights with the
        sampling call's seeded generator (never the global RNG, so that `aelab sample --seed`
        gives the same digits every time), then m_k + s_k eps."""
        weights = self.logits.detach().softmax(0)
        weights = weights.to(generator.device) if generator is not None else weights
        k = torch.multinomial(weights, len(eps), replacement=True, generator=generator).to(eps.device)
        return self.mean[k] + (0.5 * self.logvar[k]).exp() * eps


@dataclass(frozen=True)
class MixturePrior(PriorSettings):
    """[model.prior] name = "mixture_prior.py:MixturePrior": a learned mixture of Gaussians."""

    components: int = bounded(10, at_least=1)  # K

    def check(self, model):
        if not model.latent.stochastic:
            raise AelabError("model.prior: a learned mixture prior needs codes drawn from q(z|x), not a point latent")

    def describe(self):
        return f"prior a learned mixture of {self.components} Gaussians"

    def theory(self, model):
        return [("A learned mixture prior", [
            f"p(z) = Σ_k w_k N(z; m_k, diag s_k²) with K = {self.components} components, their weights, means and "
            "variances learned with the rest of the model. KL(q(z|x) ‖ p(z)) has no closed form, so the ELBO uses "
            "the one-sample estimate log q(z|x) − log p(z) at the code drawn (Kingma & Welling 2014, eq. 6); a "
            "prior that can follow the aggregate posterior leaves less of the KL unused (Tomczak & Welling 2018)."])]

    def build(self, num_classes, latent_dim):
        return Mixture(self.components, latent_dim)
