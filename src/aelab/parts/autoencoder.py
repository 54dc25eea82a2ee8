"""The one model: an autoencoder composed of parts.

    corruption -> encoder -> latent (posterior q(z|x)) -> channel -> decoder -> likelihood p(x|z)
                     ^                  prior p(z[|y])                 ^
                     +------------------ condition(y) -----------------+

AE, denoising AE, VAE, CVAE and an AE trained through a noisy channel differ only in the
parts they are built from (registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from aelab.data.splits import Batch
from aelab.parts.conditions import Unconditional
from aelab.parts.noise import Clean, Noiseless
from aelab.parts.objectives import ELBO
from aelab.parts.priors import FixedPrior


@dataclass
class Parts:
    """The built parts of one model (what each slot's settings built, parts/slots.py); the ones
    a plain model does without default to clean input, no condition, the ELBO, a noiseless
    channel and the prior N(0, I)."""

    encoder: nn.Module
    decoder: nn.Module
    latent: nn.Module
    likelihood: nn.Module
    condition: nn.Module | None = None
    corruption: nn.Module | None = None
    objective: object | None = None
    channel: nn.Module | None = None
    prior: nn.Module | None = None


class Autoencoder(nn.Module):
    def __init__(self, parts: Parts, latent_dim: int, image_shape: tuple[int, ...]):
        super().__init__()
        self.encoder, self.decoder, self.likelihood = parts.encoder, parts.decoder, parts.likelihood
        self.latent = parts.latent
        self.condition = parts.condition or Unconditional()
        self.corruption = parts.corruption or Clean()
        self.objective = parts.objective or ELBO()
        self.channel = parts.channel or Noiseless()
        self.prior = parts.prior or FixedPrior()  # labels -> p(z) or p(z | y) of each image
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.prior.bind(self)  # a prior made of the model's own parts (a VampPrior) takes them here

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z|x[, y]) for images x: (B, C, H, W)."""
        return self.latent.posterior(self.channel.normalise(self.encoder(x, self.condition(y))))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's raw parameters for codes z: (B, D) -> (B, C, H, W), received
        through the channel (noisy while training a noisy-channel model)."""
        return self.decoder(self.channel(self.latent.visible(z)), self.condition(y))

    def decode_mean(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Images decoded from codes z: (B, D) -> (B, C, H, W), the likelihood's mean (in [0, 1])."""
        return self.likelihood.mean(self.decode(z, y))

    def loss(self, batch: Batch, progress: float | None = None) -> dict[str, torch.Tensor]:
        """The objective part's loss and its parts (objectives.py), nats/image. `progress` is
        the training time in epochs (for KL warm-up); None at evaluation."""
        return self.objective(self, batch, progress)

    def log_px_z(self, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor | None):
        """log p(x|z_k) for codes z: (K, B, D) of images x: (B, C, H, W), as (K, B), and the
        decoder's output (K, B, C, H, W). x broadcasts over K: no K-fold copy of it."""
        k = z.shape[0]
        out = self.decode(z.flatten(0, 1), None if y is None else y.repeat(k))  # (K*B, C, H, W)
        out = out.view(k, z.shape[1], *out.shape[1:])
        return self.likelihood.log_prob(out, x), out

    def log_weights(self, q, x: torch.Tensor, y: torch.Tensor | None, k: int, log_px_z=None):
        """For K draws z_k ~ q(z|x): log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),
        and log p(x|z_k), each (K, B), and the decoder's output (K, B, C, H, W).
        `log_px_z(model, z, x, y)` replaces Autoencoder.log_px_z (a compiled copy of it)."""
        z = q.rsample(k)  # (K, B, D)
        log_px_z, out = log_px_z(self, z, x, y) if log_px_z else self.log_px_z(z, x, y)
        log_w = log_px_z + self.prior(y).log_prob(z) - q.log_prob(z)
        return log_w, log_px_z, out

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's mean at the posterior mean code: images in [0, 1]."""
        return self.decode_mean(self.encode(x, y).mean, y)

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from z ~ p(z) (the likelihood's mean). A conditioned model with
        no labels given draws every class in turn."""
        device = next(self.parameters()).device
        if y is None:
            y = self.condition.default_labels(n, device)
        eps = torch.randn(n, self.latent_dim, generator=generator,
                          device=generator.device if generator else device).to(device)
        return self.decode_mean(self.prior_draw(eps, y, generator), y)

    def prior_draw(self, eps: torch.Tensor, y: torch.Tensor | None,
                   generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes z ~ p(z | y) made from standard normal noise eps (B, D) (and `generator`, the
        seeded generator of the call, for a prior that draws more: slots.PriorDensity.draw):
        eps itself under N(0, I); m_y + s_y * eps under a learned conditional prior."""
        return self.prior(y).draw(eps, generator)
