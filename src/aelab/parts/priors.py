"""Prior parts: p(z), or p(z | y) for a model conditioned on labels.

`standard`:    p(z) = N(0, I) for every image (Kingma & Welling 2014).
`conditional`: p(z | y) = N(m_y, diag s_y²), one learned Gaussian per class (the prior network
               of Sohn et al. 2015, sec. 4.2, reduced to a table for a one-hot y). It starts
               as N(0, I) and is trained with the rest of the model by the same objective.
`vamp`:        p(z) = (1/K) Σ_k q(z | u_k), the encoder's own posteriors of K learned
               pseudo-inputs u_k (the VampPrior, Tomczak & Welling 2018, eq. 9).

A prior module maps labels to the prior of each image: an object with `log_prob(z)`,
`kl_from(q)` (KL(q || p) per dimension, closed form) and `draw(eps)` (z from standard normal
noise eps, so that one eps is one "style" under every label). A prior with no closed-form KL
has no `kl_from`: the objectives estimate the KL at the codes they draw. A prior module with a
`bind(model)` method is handed the model it belongs to when the model is built (the VampPrior
encodes its pseudo-inputs with the model's own encoder).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aelab.errors import AelabError
from aelab.language import N_, join
from aelab.parts.latents import LOG_2PI, STANDARD, DiagonalGaussian, StandardNormal
from aelab.parts.slots import Prior, PriorDensity, PriorSettings
from aelab.settings import bounded, choice

CONDITIONAL_PRIOR = (N_("A learned prior per label, p(z | y)"), [
    N_("The prior is a Gaussian per class, p(z | y) = N(m_y, diag s_y²), learned with the rest of the model "
    "(the prior network of Sohn et al. 2015, sec. 4.2, which for a one-hot label is a table). It starts as "
    "N(0, I). The KL term is KL(q(z | x, y) ‖ p(z | y)) = ½ Σ_j (log s_yj² − log σ_j² + (σ_j² + (μ_j − m_yj)²) / s_yj² − 1), "
    "samples of class y decode z = m_y + s_y ⊙ ε, ε ~ N(0, I), and nll_is weighs each z_k by p(z_k | y)."),
    N_("Why: with one N(0, I) for every class, a CVAE trained for a few epochs still stores much of the digit's "
    "identity in z (a linear probe reads the class from the codes), so z ~ N(0, I) often lands where another "
    "class's codes live and the decoder draws that class whatever y says. A prior per class gives each class "
    "its own region, and sampling from p(z | y) stays in it."),
])


def vamp_prior(k: int) -> tuple[str, list[str]]:
    return (N_("The VampPrior"), [
        N_("The prior is a mixture of the encoder's own posteriors: p(z) = (1/K) Σ_k q(z | u_k), with K = {k} "
           "pseudo-inputs u_k, images learned with the rest of the model (Tomczak & Welling 2018, eq. 9). The prior "
           "that maximises the ELBO is the aggregate posterior (1/N) Σ_n q(z | x_n); the VampPrior approximates it "
           "with K learned images instead of the N training images, so the KL term no longer pulls every code "
           "towards one N(0, I).", k=k),
        N_("KL(q(z | x) ‖ p(z)) has no closed form: the ELBO uses log q(z | x) − log p(z) at the code drawn, and "
           "nll_is weighs each z_k by the mixture's density. Sampling picks one pseudo-input's posterior at random "
           "and draws from it. Each step also encodes the K pseudo-inputs: training costs about as much as encoding "
           "K more images a step."),
    ])


class GaussianPrior(DiagonalGaussian, PriorDensity):
    """N(m, diag s²) per image: (B, D) means and log-variances."""

    closed_kl = True

    def kl_from(self, q: DiagonalGaussian) -> torch.Tensor:
        """KL(N(mu, sigma²) || N(m, s²)) of each dimension:
        1/2 (log s² - log sigma² + (sigma² + (mu - m)²) / s² - 1), (B, D)."""
        return 0.5 * (self.logvar - q.logvar + (q.logvar.exp() + (q.mean - self.mean).pow(2)) / self.logvar.exp() - 1)

    def draw(self, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        return self.mean + self.std * eps


class FixedPrior(Prior):
    """p(z) = N(0, I), whatever the label."""

    symbol = "N(0, I)"

    def forward(self, y: torch.Tensor | None) -> StandardNormal:
        return STANDARD


class ClassPrior(Prior):
    """p(z | y) = N(m_y, diag s_y²): a learned mean and log-variance per class, from N(0, I)."""

    symbol = "p(z | y)"
    words = "p(z | y), learned per label"  # what the explorer says samples are drawn from

    def __init__(self, num_classes: int, latent_dim: int):
        super().__init__()
        self.mean = nn.Parameter(torch.zeros(num_classes, latent_dim))
        self.logvar = nn.Parameter(torch.zeros(num_classes, latent_dim))

    def forward(self, y: torch.Tensor | None) -> GaussianPrior:
        if y is None:
            raise ValueError("this model's prior is conditioned on labels: pass y")
        return GaussianPrior(self.mean[y], self.logvar[y])


@dataclass(frozen=True)
class StandardPriorSettings(PriorSettings):
    """[model.prior] name = "standard": p(z) = N(0, I)."""

    name = "standard"
    standard_normal = True

    def describe(self) -> str:
        return ""  # the textbook prior, said by the theory of the latent

    def build(self, num_classes: int, latent_dim: int) -> FixedPrior:
        return FixedPrior()


@dataclass(frozen=True)
class ConditionalPriorSettings(PriorSettings):
    """[model.prior] name = "conditional": p(z | y), a learned Gaussian per class (needs
    model.condition.name = "label" and a Gaussian latent)."""

    name = "conditional"
    per_label = True

    def check(self, model) -> None:
        if not model.latent.stochastic or not model.condition.prefix:
            raise AelabError("model.prior: a conditional prior p(z | y) needs model.latent.name = 'gaussian' and "
                             f"model.condition.name = 'label', not {model.latent.name!r} and {model.condition.name!r}")

    def describe(self) -> str:
        return N_("learned prior p(z | y)")

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [CONDITIONAL_PRIOR]

    def build(self, num_classes: int, latent_dim: int) -> ClassPrior:
        return ClassPrior(num_classes, latent_dim)


class GaussianMixture(PriorDensity):
    """p(z) = (1/K) Σ_k N(z; m_k, diag s_k²) with equal weights: (K, D) means and log-variances.
    It has no closed-form KL from a Gaussian posterior (no `kl_from`)."""

    def __init__(self, mean: torch.Tensor, logvar: torch.Tensor):
        self.mean, self.logvar = mean.float(), logvar.float()  # (K, D)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        """log p(z), (..., D) -> (...). The squared distances to the K means come from matrix
        products, Σ_d (z_d − m_kd)² / s_kd² = z² · 1/s_k² − 2 z · m_k/s_k² + Σ_d m_kd²/s_kd², so that
        thousands of importance samples against hundreds of components need rows x K numbers,
        not rows x K x D; in float32 whatever the autocast around it, since bfloat16's three
        digits would cancel in that difference. The terms are large and cancel where the
        components are narrow and far from the origin (what a collapsing encoder gives: a
        log-density off by orders of magnitude, docs/experiments/zoo.md), so z and the means are
        first moved by the means' centre: the difference of the three terms is the same for any
        shift, and its rounding error scales with the distances from the centre, not from 0."""
        k, d = self.mean.shape
        with torch.autocast(z.device.type, enabled=False):
            centre = self.mean.detach().mean(0)  # (D,)
            flat, mean = z.reshape(-1, d).float() - centre, self.mean - centre
            precision = (-self.logvar).exp()  # (K, D)
            squared = (flat.pow(2) @ precision.T - 2 * flat @ (mean * precision).T
                       + (mean.pow(2) * precision).sum(-1))  # (rows, K)
            log_n = -0.5 * (squared.clamp(min=0) + self.logvar.sum(-1) + d * LOG_2PI)
            return (torch.logsumexp(log_n, -1) - math.log(k)).reshape(z.shape[:-1])

    def draw(self, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """z ~ p(z) from standard normal eps (B, D) alone: u = Φ(eps_1) picks the component
        k = ⌊K u⌋, and K u − k, uniform again and independent of k, becomes that row's first
        normal draw Φ⁻¹(K u − k) (in float64): one component and one Gaussian draw from the
        same eps, so that a seeded eps gives the same samples on every call."""
        k = len(self.mean)
        e = eps.double()
        u = torch.special.ndtr(e[:, 0]) * k
        which = u.floor().clamp(max=k - 1)
        first = torch.special.ndtri((u - which).clamp(1e-12, 1 - 1e-12))
        e = torch.cat([first[:, None], e[:, 1:]], 1).to(self.mean.dtype)
        which = which.long()
        return self.mean[which] + (0.5 * self.logvar[which]).exp() * e


class VampPrior(Prior):
    """p(z) = (1/K) Σ_k q(z | u_k): the model's encoder applied to K learned pseudo-inputs u_k,
    images of the data's shape kept in [0, 1], the same prior for every image."""

    symbol = "VampPrior"

    @property
    def words(self) -> str:
        return f"the VampPrior: a mixture of the posteriors of {self.components} learned pseudo-inputs"

    def __init__(self, components: int, init_mean: float, init_std: float, from_data: bool = False):
        super().__init__()
        self.components, self.init_mean, self.init_std, self.from_data = components, init_mean, init_std, from_data
        self.pseudo_inputs: nn.Parameter | None = None

    def bind(self, model) -> None:
        """Made a part of `model`: pseudo-inputs of its image shape, and its encoder to map them."""
        self.pseudo_inputs = nn.Parameter(torch.empty(self.components, *model.image_shape).normal_(self.init_mean,
                                                                                                   self.init_std))
        object.__setattr__(self, "_model", model)  # not a submodule: the encoder's weights stay the model's

    def start(self, images: torch.Tensor, generator: torch.Generator) -> None:
        """With `from_data`, the pseudo-inputs become K training images drawn without replacement
        (with it, where there are fewer than K), grey levels in [0, 1] (Tomczak & Welling 2018, sec. 4)."""
        if not self.from_data:
            return
        n = len(images)
        pick = (torch.randperm(n, generator=generator)[:self.components] if n >= self.components
                else torch.randint(n, (self.components,), generator=generator))
        with torch.no_grad():
            self.pseudo_inputs.copy_(images[pick.to(images.device)].to(self.pseudo_inputs) / 255)

    def forward(self, y: torch.Tensor | None) -> GaussianMixture:
        q = self._model.encode(self.pseudo_inputs.clamp(0, 1))  # (K, D) posteriors of the pseudo-inputs
        return GaussianMixture(q.mean, q.logvar)


@dataclass(frozen=True)
class VampPriorSettings(PriorSettings):
    """[model.prior] name = "vamp": the VampPrior, a mixture of the encoder's posteriors of
    learned pseudo-inputs (needs a Gaussian latent and no label condition)."""

    name = "vamp"
    needs_encoder = True  # made from q(z | u) in one Gaussian
    components: int = bounded(500, at_least=1)  # K, pseudo-inputs
    init_mean: float = bounded(0.05, at_least=0.0, at_most=1.0)  # the pseudo-inputs' pixels start at N(init_mean, init_std²)
    init_std: float = bounded(0.01, at_least=0.0)
    # noise: pixels from N(init_mean, init_std²) | data: K training images, drawn with the run's seed
    start: str = choice("noise", {"noise": False, "data": True})

    def check(self, model) -> None:
        if not model.latent.stochastic or model.condition.prefix:
            raise AelabError("model.prior: the VampPrior needs model.latent.name = 'gaussian' and no label condition, "
                             f"not {model.latent.name!r} and {model.condition.name!r}")

    def describe(self) -> str:
        start = N_("pseudo-inputs from N({mean:g}, {std:g}²)", mean=self.init_mean, std=self.init_std)
        said = self.changed_words({"init_mean": start, "init_std": start,
                                   "start": N_("pseudo-inputs start as {k} training images", k=self.components)})
        return join(", ", [N_("VampPrior, {k} pseudo-inputs", k=self.components), *dict.fromkeys(said)])

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [vamp_prior(self.components)]

    def build(self, num_classes: int, latent_dim: int) -> VampPrior:
        return VampPrior(self.components, self.init_mean, self.init_std, from_data=self.start == "data")
