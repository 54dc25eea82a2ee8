"""What the encoder's second output can mean, and the closed forms that follow.

A student's encoder gives (mu, s) and their code turns s into the standard deviation of
q(z|x) somewhere: sigma = exp(s / 2) if s is a log-variance, s itself if it is a standard
deviation, sqrt(s) for a variance, exp(s) for a log standard deviation, softplus(s) for a raw
spread made positive. Each convention has its KL from N(0, I) in closed form (Kingma &
Welling 2014, appendix B), per image, summed over the code's dimensions:

    KL(N(mu, sigma^2) || N(0, I)) = 1/2 sum_j (sigma_j^2 + mu_j^2 - 1 - log sigma_j^2)

and the likelihood families a reconstruction loss can be, per image, summed over pixels.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# convention -> s -> sigma
STD = {
    "logvar": lambda s: torch.exp(0.5 * s),
    "std": lambda s: s,
    "var": lambda s: torch.sqrt(s),
    "logstd": torch.exp,
    "softplus": F.softplus,
}


def sigma(s: torch.Tensor, convention: str) -> torch.Tensor:
    return STD[convention](s)


def log_var(s: torch.Tensor, convention: str) -> torch.Tensor:
    """log sigma^2 of `s` under `convention` (the sign of a standard deviation does not matter to a Gaussian)."""
    return 2 * torch.log(sigma(s, convention).abs())


def kl(mu: torch.Tensor, s: torch.Tensor, convention: str) -> torch.Tensor:
    """KL(q || N(0, I)) per image (B,), for (B, D) means and second outputs."""
    lv = log_var(s, convention)
    return 0.5 * (lv.exp() + mu.pow(2) - 1 - lv).flatten(1).sum(1)


def _bce_probs(out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return F.binary_cross_entropy(out.clamp(0, 1), x, reduction="none")


# reconstruction loss family -> (out, x) -> per-pixel loss, for the loss's input as given
RECON = {
    "bce-logits": lambda out, x: F.binary_cross_entropy_with_logits(out, x, reduction="none"),
    "bce-probabilities": _bce_probs,
    "mse": lambda out, x: (out - x).pow(2),
    "l1": lambda out, x: (out - x).abs(),
}


def recon(out: torch.Tensor, x: torch.Tensor, family: str) -> torch.Tensor:
    """The family's loss per image (B,), summed over pixels."""
    return RECON[family](out.reshape(x.shape), x).flatten(1).sum(1)
