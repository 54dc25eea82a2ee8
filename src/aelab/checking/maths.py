"""Checks of the maths, each against a quantity computed another way, naming the mistakes the
course's students make where the numbers match one:

- codes drawn by a latent part have the mean and variance of the posterior it reports;
- a closed-form KL agrees with its Monte-Carlo estimate E_q[log q(z|x) - log p(z)];
- the objective's negative ELBO is not below the importance-sampled NLL beyond noise (the ELBO
  is a lower bound on log p(x); Burda et al. 2016, theorem 1: so is every K-sample bound);
- the objective's reported recon and kl agree with estimates of them from many draws;
- the decoder returns the likelihood's raw parameters (logits), not probabilities.

Tolerances are stated in each check's line. Draws use a fixed seed: a check gives the same
verdict each time on the same part.
"""

from __future__ import annotations

import math

import torch

from aelab.checking.model import Failed, NotApplicable, _expect
from aelab.data.splits import Batch
from aelab.parts.autoencoder import Autoencoder

DRAWS = 4000  # codes drawn per posterior element for its moments, and per image for a KL estimate
MEAN_TOL, VAR_TOL, KURTOSIS_TOL = 0.05, 0.08, 0.3  # on standardised draws: |mean|, |var - 1|, |excess kurtosis|

# what a draw's deviation z - mu may have been scaled by, from the posterior's reported sigma
SCALES = {"the standard deviation": lambda s: s, "the log-variance": lambda s: 2 * s.log(), "the variance": lambda s: s * s}
# noise: (mean, variance) of eps
NOISES = {"Gaussian": (0.0, 1.0), "uniform": (0.5, 1 / 12)}


def _posterior(model: Autoencoder, rows: int = 16, seed: int = 0):
    """q(z|x) of a made-up encoder output with means and log-variances spread over a few
    units, so that sigma, log sigma^2 and sigma^2 differ."""
    g = torch.Generator().manual_seed(seed)
    width = model.latent.widths(model.latent_dim)[0]
    return model.latent.posterior(1.5 * torch.randn(rows, width, generator=g))


def draws_match_posterior(model: Autoencoder) -> str:
    """Draws z ~ q(z|x) (the latent part's rsample) against the mean and standard deviation
    the posterior reports: (z - mu) / sigma must have mean 0, variance 1 and a Gaussian's tails."""
    if not model.latent.stochastic:
        return NotApplicable("a deterministic code: nothing is drawn")
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        q = _posterior(model)
        if q.std is None:
            return NotApplicable("the posterior reports no std: moments not checked")
        e = q.rsample(DRAWS) - q.mean  # (N, B, D)
        fits = {}
        for scale_name, scale in SCALES.items():
            s = scale(q.std)
            keep = s.abs() > 0.2  # where a scale is near 0 its ratio says nothing
            u = e[:, keep] / s[keep]
            m, v = u.mean(0), u.var(0)
            for noise, (m0, v0) in NOISES.items():
                fits[scale_name, noise] = ((m - m0).abs().mean().item(), (v / v0 - 1).abs().mean().item())
        u = e / q.std
        kurtosis = ((u - u.mean(0)).pow(4).mean(0) / u.var(0).pow(2) - 3).mean().item()
    dm, dv = fits["the standard deviation", "Gaussian"]
    if dm < MEAN_TOL and dv < VAR_TOL and abs(kurtosis) < KURTOSIS_TOL:
        return (f"(z - mu) / sigma over {DRAWS} draws: mean off by {dm:.3f} (< {MEAN_TOL}), variance off by "
                f"{dv:.1%} (< {VAR_TOL:.0%}), excess kurtosis {kurtosis:+.2f} (|.| < {KURTOSIS_TOL})")
    matches = [(scale, noise) for (scale, noise), (m, v) in fits.items() if m < MEAN_TOL and v < VAR_TOL]
    what = (f"draws do not have the posterior's moments: (z - mu) / sigma has mean off by {dm:.3f} and variance "
            f"off by {dv:.0%}, excess kurtosis {kurtosis:+.2f}")
    if matches:
        scale, noise = matches[0]
        said = []
        if noise != "Gaussian":
            said.append("uniform noise (torch.rand_like) instead of Gaussian (torch.randn_like)")
        if scale != "the standard deviation":
            said.append(f"{scale} used as the standard deviation (sigma = exp(log_var / 2))")
        raise Failed(what, " and ".join(said))
    if dm < MEAN_TOL and dv < VAR_TOL:
        raise Failed(what, "noise that is not Gaussian but has its mean and variance")
    raise Failed(what)


def kl_matches_monte_carlo(model: Autoencoder, labels: torch.Tensor | None) -> str:
    """KL(q(z|x) || p(z)) as the model computes it in closed form, against the mean over draws
    z ~ q of log q(z|x) - log p(z), within four standard errors (and 1%)."""
    if not model.latent.stochastic:
        return NotApplicable("a deterministic code: no KL")
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        q = _posterior(model)
        y = None if labels is None else labels[: len(q.mean)]
        prior = model.prior(y)
        if not prior.closed_kl:
            return NotApplicable("the prior has no closed-form KL: the objectives estimate it (nothing to compare)")
        closed = q.kl(prior).sum().item()
        # true draws from the reported Gaussian (the sampler is checked on its own)
        z = q.mean + q.std * torch.randn(DRAWS, *q.mean.shape) if q.std is not None else q.rsample(DRAWS)
        per_draw = (q.log_prob(z) - prior.log_prob(z)).sum(-1)  # (N,): the KL of the rows, each draw
        mc, se = per_draw.mean().item(), per_draw.std().item() / math.sqrt(DRAWS)
    tol = 4 * se + 0.01 * abs(mc)
    if abs(closed - mc) <= tol:
        return f"closed form {closed:.2f} vs Monte Carlo {mc:.2f} ± {se:.2f} nats ({DRAWS} draws, {len(q.mean)} rows)"
    ratio = closed / mc
    raise Failed(f"closed-form KL {closed:.2f} but Monte Carlo {mc:.2f} ± {se:.2f} nats (ratio {ratio:.2f})",
                 _kl_mistake(ratio))


# a KL's ratio to the true one -> the mistake that makes it
KL_MISTAKES = {-1.0: "the KL with the wrong sign (KL = -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2))",
               2.0: "the KL without its 1/2", -2.0: "the KL with the wrong sign and without its 1/2",
               0.5: "the KL halved twice"}


def _kl_mistake(ratio: float) -> str:
    return next((m for r, m in KL_MISTAKES.items() if abs(ratio - r) < 0.1 * abs(r)), "")


def _reduction_mistake(term: str, ratio: float, pixels: int, n: int) -> str:
    """The reduction slip that scales a per-image sum over `pixels` by `ratio`, for a batch of `n`."""
    if abs(ratio * pixels - 1) < 0.05:
        return f"the {term} averaged over pixels instead of summed (sum over pixels, mean over images)"
    if abs(ratio * pixels * n - 1) < 0.05:
        return (f"the {term} averaged over pixels instead of summed, and divided by the batch size twice "
                "(reduction='mean' is already a mean over the images)")
    if abs(ratio / n - 1) < 0.05:
        return f"the {term} summed over the batch instead of averaged over images"
    return ""


def _draws(model: Autoencoder, batch: Batch, k: int, repeats: int):
    """The objective's outputs on `batch` `repeats` times, and log w and log p(x|z) of `k`
    draws z ~ q(z|x), each (K, B): what the bound and the terms are checked against (eval mode, seeded)."""
    model.eval()
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        runs = [model.loss(batch) for _ in range(repeats)]
        q = model.encode(batch.x, batch.y)
        size = min(50, k)  # draws at a time
        chunks = [model.log_weights(q, batch.x, batch.y, size) for _ in range(-(-k // size))]
    return runs, torch.cat([c[0] for c in chunks]), torch.cat([c[1] for c in chunks])


def elbo_below_likelihood(model: Autoencoder, batch: Batch, k: int = 500, repeats: int = 8) -> str:
    """The objective's negative ELBO (mean of `repeats` evaluations) against the K-sample
    importance-sampled NLL of the same images: -ELBO >= NLL_K in expectation, so the check
    fails where -ELBO is below NLL_K by more than four standard errors of both."""
    if not model.latent.stochastic:
        return NotApplicable("a deterministic code: no ELBO")
    runs, log_w, log_px_z = _draws(model, batch, k, repeats)
    reported = torch.stack([r.get("neg_elbo", r["loss"]) for r in runs])
    nll_per_image = -(torch.logsumexp(log_w, 0) - math.log(len(log_w)))
    neg_elbo, nll = reported.mean().item(), nll_per_image.mean().item()
    spread = reported.std().item() / math.sqrt(repeats) if repeats > 1 else 0.0
    se = spread + (-log_w).mean(1).std().item() / math.sqrt(len(log_w))
    if neg_elbo >= nll - 4 * se - 1e-3 * abs(nll):
        return f"-ELBO {neg_elbo:.2f} >= NLL_{len(log_w)} {nll:.2f} nats per image (less 4 s.e. = {4 * se:.2f})"
    mistake = ""
    if "recon" in runs[0]:
        ratio = torch.stack([r["recon"] for r in runs]).mean().item() / -log_px_z.mean().item()
        mistake = _reduction_mistake("reconstruction", ratio, math.prod(batch.x.shape[1:]), len(batch.x))
    if not mistake and "kl" in runs[0] and torch.stack([r["kl"] for r in runs]).mean().item() < -0.01:
        mistake = "a KL with the wrong sign (a KL is never negative)"
    raise Failed(f"-ELBO {neg_elbo:.2f} is below the importance-sampled NLL {nll:.2f} nats per image "
                 f"(s.e. {se:.2f}): the objective is not a bound on log p(x)", mistake)


def terms_match_estimates(model: Autoencoder, batch: Batch, k: int = 200, repeats: int = 8) -> str:
    """The objective's reported terms against aelab's own estimates from K draws z ~ q(z|x):
    `recon` = E_q[-log p(x|z)] and `kl` = E_q[log q(z|x) - log p(z)], each within four
    standard errors and 2%: a loss a user writes by hand that scales a term wrongly fails here,
    even where the bound still holds."""
    if not model.latent.stochastic:
        return NotApplicable("a deterministic code: no ELBO terms")
    if model.corruption.active:  # its terms are expectations over corrupted inputs too
        return NotApplicable("the model encodes corrupted inputs: its terms are not those of q(z|x)")
    runs, log_w, log_px_z = _draws(model, batch, k, repeats)  # (K, B) each
    estimates = {"recon": -log_px_z, "kl": log_px_z - log_w}  # per draw and image
    said, pixels, n = [], math.prod(batch.x.shape[1:]), len(batch.x)
    for term, per_draw in estimates.items():
        if term not in runs[0]:
            continue
        got = torch.stack([r[term] for r in runs]).float()
        value, expected = got.mean().item(), per_draw.mean().item()
        se = got.std().item() / math.sqrt(repeats) + per_draw.mean(1).std().item() / math.sqrt(len(per_draw))
        if abs(value - expected) <= 4 * se + 0.02 * abs(expected) + 1e-3:
            said.append(f"{term} {value:.2f} vs {expected:.2f}")
            continue
        ratio = value / expected if expected else float("inf")
        mistake = _reduction_mistake(term, ratio, pixels, n) or (_kl_mistake(ratio) if term == "kl" else "")
        raise Failed(f"the objective's {term} is {value:.2f}, its estimate from {len(per_draw)} draws {expected:.2f} "
                     f"± {se:.2f} nats per image (ratio {ratio:.3g})", mistake)
    if not said:
        return NotApplicable("the objective reports neither recon nor kl")
    return ", ".join(said) + f" nats per image (estimates from {k} draws)"


def decoder_gives_logits(model: Autoencoder, labels: torch.Tensor | None) -> str:
    """The decoder's output is the likelihood's raw parameter (its mean is taken by the
    likelihood: a sigmoid of it): at initialisation it takes values on both sides of [0, 1]."""
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(0)
        z = torch.randn(64, model.latent_dim)
        y = None if labels is None or model.condition.dim == 0 else labels[:1].repeat(64)
        out = model.decode(z, y)
    low, high = out.min().item(), out.max().item()
    _expect(not (low >= 0 and high <= 1), f"every decoder output lies in [{low:.3f}, {high:.3f}]",
            "a decoder that returns probabilities (a sigmoid at its end) where logits are expected; "
            "drop the sigmoid, or wrap it as FlatDecoder(..., probabilities=True)")
    return f"decoder outputs span [{low:.2f}, {high:.2f}]: raw parameters, not probabilities"
