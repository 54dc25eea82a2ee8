"""The one model: an autoencoder composed of parts.

    corruption -> encoder -> latent (posterior q(z|x)) -> decoder -> likelihood p(x|z)
                     ^                                      ^
                     +------------ condition(y) ------------+

AE, denoising AE, VAE and CVAE differ only in the parts they are built from (registry.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from .conditions import Unconditional
from .corruption import Clean
from .data import Batch


@dataclass(frozen=True)
class KLWeight:
    """beta, reached linearly over `warmup_epochs` of training (KL annealing, Bowman et al. 2016)."""

    beta: float = 1.0
    warmup_epochs: float = 0.0

    def __call__(self, progress: float | None) -> float:
        """`progress` in epochs since the start of training; None = fully warmed (evaluation)."""
        if progress is None or self.warmup_epochs <= 0:
            return self.beta
        return self.beta * min(1.0, progress / self.warmup_epochs)


class Autoencoder(nn.Module):
    def __init__(self, *, encoder: nn.Module, decoder: nn.Module, latent, likelihood: nn.Module,
                 latent_dim: int, image_shape: tuple[int, ...], condition=None, corruption=None,
                 kl_weight: KLWeight = KLWeight(), recon_divisor: float = 1.0):
        super().__init__()
        self.encoder, self.decoder, self.likelihood = encoder, decoder, likelihood
        self.latent = latent
        self.condition = condition or Unconditional()
        self.corruption = corruption or Clean()
        self.kl_weight = kl_weight
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        # 1 for the likelihood (sum over pixels); D for a per-pixel mean of the reconstruction
        # term, which weights the KL D times more heavily than the ELBO does.
        self.recon_divisor = recon_divisor

    @property
    def num_pixels(self) -> int:
        return math.prod(self.image_shape)

    def encode(self, x: torch.Tensor, y: torch.Tensor | None = None):
        """q(z|x[, y]) for images x: (B, C, H, W)."""
        return self.latent.posterior(self.encoder(x, self.condition(y)))

    def decode(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's raw parameters for codes z: (B, D) -> (B, C, H, W)."""
        return self.decoder(z, self.condition(y))

    def loss(self, batch: Batch, progress: float | None = None) -> dict[str, torch.Tensor]:
        """The training objective and its parts, each a mean over the batch of per-image sums
        over pixels (nats/image); `mse` is per pixel. For a stochastic latent,
        neg_elbo = recon + kl (Kingma & Welling 2014, eq. 10) and loss = recon + beta * kl."""
        q = self.encode(self.corruption(batch.x), batch.y)
        out = self.decode(q.rsample(), batch.y)
        recon = -self.likelihood.log_prob(out, batch.x)  # (B,)
        objective = recon / self.recon_divisor
        parts = {"recon": recon.mean()}
        kl = q.kl()
        if kl is not None:
            objective = objective + self.kl_weight(progress) * kl
            parts["kl"] = kl.mean()
            parts["neg_elbo"] = (recon + kl).mean()
        with torch.no_grad():
            parts["mse"] = (self.likelihood.mean(out) - batch.x).pow(2).mean()
        return {"loss": objective.mean(), **parts}

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The likelihood's mean at the posterior mean code: images in [0, 1]."""
        return self.likelihood.mean(self.decode(self.encode(x, y).mean, y))

    @torch.no_grad()
    def sample(self, n: int, y: torch.Tensor | None = None,
               generator: torch.Generator | None = None) -> torch.Tensor:
        """n images decoded from z ~ N(0, I) (the likelihood's mean). A conditioned model with
        no labels given draws every class in turn."""
        device = next(self.parameters()).device
        if y is None:
            y = self.condition.default_labels(n, device)
        z = torch.randn(n, self.latent_dim, generator=generator,
                        device=generator.device if generator else device).to(device)
        return self.likelihood.mean(self.decode(z, y))
