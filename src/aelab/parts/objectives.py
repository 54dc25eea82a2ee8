"""Objective parts: what `model.loss(batch)` minimises.

ELBO: loss = recon + beta_t * KL (Kingma & Welling 2014, eq. 10; beta_t rises linearly over
      the warm-up, Bowman et al. 2016). With a point-mass latent there is no KL: loss = recon.
      With free bits lambda the KL term is sum_j max(lambda, E_batch KL_j) (Kingma et al. 2016, eq. 15).
      A prior with no closed-form KL (a mixture, say) has it estimated at the code drawn.
      With K samples the reconstruction term is the mean over K codes per image (Burda et al.
      2016's "VAE, k = K"; the KL's estimate is then averaged over the K codes too).
IWAE: loss = -log (1/K) sum_k p(x, z_k) / q(z_k | x), z_k ~ q(z | x), the K-sample bound of
      Burda et al. 2016 (eq. 8); K = 1 is the ELBO.
Each returns the objective and its parts as means over the batch of per-image sums over
pixels (nats/image); `mse` is per pixel. A `selection` part, where there is one, is what the
best checkpoint is chosen on instead of `loss` (the loss without training terms that are no
measure of fit, such as a quantised code's commitment).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from aelab.errors import AelabError
from aelab.language import N_, join
from aelab.parts.slots import Objective, ObjectiveSettings
from aelab.settings import bounded, choice

IWAE_THEORY = (N_("Importance-weighted bound (IWAE)"), [
    N_("Training maximises the K-sample bound of Burda et al. (2016, eq. 8), "
    "L_K(x) = E[log (1/K) Σ_k p(x, z_k) / q(z_k | x)], z_1 … z_K ~ q(z | x) drawn independently. "
    "L_1 is the ELBO, and L_K rises towards log p(x) as K grows, so the encoder is no longer pushed to "
    "cover only where the ELBO is tight: IWAE models reach lower NLL and use more active units."),
    N_("Each step decodes K codes per image, about K times the VAE's cost. The model is the VAE's; only the "
    "objective differs, so its neg_elbo is still reported (and is higher than a VAE's)."),
])


ANNEALING = (N_("KL annealing"), [
    N_("The KL weight rises linearly from 0 to β over the first epochs (Bowman et al. 2016), so the "
    "decoder learns to use the code before the KL pulls q(z | x) towards the prior. It is a way of "
    "training, not a different model: every number in the table is measured with the KL at full weight."),
])


MEAN_REDUCTION = (N_("Mean or sum over pixels"), [
    N_("Averaging the reconstruction term over the D pixels (784 for a digit) instead of summing it "
    "divides it by D while the KL stays as it is, which is the ELBO with β = D. The KL then wins: "
    "codes carry less about each image (lower KL, fewer active units) and samples and reconstructions "
    "blur towards the average digit."),
])


@dataclass(frozen=True)
class KLWeight:
    """beta, reached linearly over `warmup_epochs` of training (KL annealing)."""

    beta: float = 1.0
    warmup_epochs: float = 0.0

    def __call__(self, progress: float | None) -> float:
        """`progress` in epochs since the start of training; None = fully warmed (evaluation)."""
        if progress is None or self.warmup_epochs <= 0:
            return self.beta
        return self.beta * min(1.0, progress / self.warmup_epochs)


@dataclass(frozen=True)
class FreeBits:
    """lambda, nats per latent number, held or falling linearly to 0 over `decay_epochs`."""

    nats: float = 0.0
    decay_epochs: float = 0.0

    def __call__(self, progress: float | None) -> float:
        """`progress` in epochs since the start of training; None = the end of the decay (evaluation)."""
        if self.decay_epochs <= 0:
            return self.nats
        if progress is None:
            return 0.0
        return self.nats * max(0.0, 1.0 - progress / self.decay_epochs)


def _mse(model, out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return (model.likelihood.mean(out) - x).pow(2).mean()


@dataclass(frozen=True)
class ELBO(Objective):
    kl_weight: KLWeight = KLWeight()
    # 1 for the likelihood (sum over pixels); D for a per-pixel mean of the reconstruction
    # term, which weights the KL D times more heavily than the ELBO does.
    recon_divisor: float = 1.0
    free_bits: FreeBits = FreeBits()
    samples: int = 1  # K codes drawn per image; the reconstruction term is their mean (Burda et al.'s "VAE, k = K")

    def schedule(self, progress: float | None) -> dict[str, float]:
        """What changes over training, for the log."""
        return {"kl_weight": self.kl_weight(progress),
                **({"free_bits": self.free_bits(progress)} if self.free_bits.decay_epochs else {})}

    def __call__(self, model, batch, progress: float | None) -> dict[str, torch.Tensor]:
        q = model.encode(model.corruption(batch.x), batch.y)
        if self.samples == 1:
            z = q.rsample()
            out = model.decode(z, batch.y)
            recon = -model.likelihood.log_prob(out, batch.x)  # (B,)
        else:  # K draws per image: the mean of K one-sample ELBOs, the same bound with less noise
            z = q.rsample(self.samples)  # (K, B, D)
            log_px_z, out = model.log_px_z(z, batch.x, batch.y)  # (K, B), (K, B, C, H, W)
            recon, out = -log_px_z.mean(0), out[0]
        objective = recon / self.recon_divisor
        parts = {"recon": recon.mean()}
        prior = model.prior(batch.y)
        kl = q.kl(prior, z)  # closed form, or estimated at z for a prior without one
        if kl is not None:
            # free bits: each group's KL (a dimension; a layer of two), averaged over the batch, counts at least lambda a number
            free_bits = self.free_bits(progress)
            kl_term = q.free_kl(prior, z, free_bits) if free_bits else kl
            objective = objective + self.kl_weight(progress) * kl_term
            parts["kl"] = kl.mean()
            parts["neg_elbo"] = (recon + kl).mean()
        extra = q.losses  # a quantised code's commitment term: a pull on the encoder
        if extra:
            # the best checkpoint is chosen without it: the term grows as the codes spread over the
            # codebook while the reconstruction improves, so loss alone would keep an early epoch
            parts["selection"] = objective.mean()
        for name, term in extra.items():
            objective = objective + term
            parts[name] = term.mean()
        return {"loss": objective.mean(), **parts, "mse": _mse(model, out, batch.x)}


@dataclass(frozen=True)
class IWAE(Objective):
    samples: int = 5

    def schedule(self, progress: float | None) -> dict[str, float]:
        return {}

    def __call__(self, model, batch, progress: float | None) -> dict[str, torch.Tensor]:
        q = model.encode(model.corruption(batch.x), batch.y)
        log_w, log_px_z, out = model.log_weights(q, batch.x, batch.y, self.samples)  # (K, B) each
        bound = torch.logsumexp(log_w, 0) - math.log(self.samples)  # (B,)
        recon = -log_px_z.mean(0)
        prior = model.prior(batch.y)
        # closed form, else the K draws' mean of log q - log p (= log p(x|z) - log w)
        kl = q.kl(prior) if prior.closed_kl else (log_px_z - log_w).mean(0)
        return {"loss": -bound.mean(), "recon": recon.mean(), "kl": kl.mean(),
                "neg_elbo": (recon + kl).mean(), "mse": _mse(model, out[0], batch.x)}


FREE_BITS = (N_("Free bits"), [
    N_("With free bits λ the KL term becomes Σ_j max(λ, E_x[KL(q(z_j | x) ‖ p(z_j))]), each dimension's KL averaged "
    "over the batch (Kingma et al. 2016, eq. 15): a dimension is not pushed below λ nats, so fewer collapse to "
    "the prior early in training. The reported kl and neg_elbo are the plain ones; only the loss differs."),
    N_("With two stochastic layers each layer is a group: its KL, log q − log p of that layer estimated at the codes "
       "drawn and averaged over the batch, counts at least λ times the layer's numbers. A top layer below its floor "
       "feels no pull towards p(z₂), only the pull towards codes that predict z₁, so it can come to carry something "
       "before the prior swallows it."),
])


def free_bits_decay(epochs: float) -> tuple[str, list[str]]:
    return (N_("Free bits that fall away"), [
        N_("λ falls linearly to 0 over the first {epochs:g} epochs. The floors let every layer start to carry "
           "something; once they are gone the loss is the plain ELBO again, so q(z | x) and the prior are pulled "
           "together at the end and the bound the table reports is the one that was trained.", epochs=epochs),
    ])


RECON_DIVISORS = {"sum": lambda pixels: 1.0, "mean": lambda pixels: float(pixels)}


@dataclass(frozen=True)
class ELBOSettings(ObjectiveSettings):
    """[model.objective] name = "elbo": the ELBO (for a point-mass latent, the reconstruction alone)."""

    name = "elbo"
    beta: float = bounded(1.0, at_least=0.0)  # weight of KL(q(z|x) || N(0, I))
    kl_warmup_epochs: float = bounded(0.0, at_least=0.0)  # KL weight rises linearly from 0 to beta over these epochs
    # sum over pixels (a likelihood) | mean over pixels (the common scaling slip)
    recon_reduction: str = choice("sum", RECON_DIVISORS)
    free_bits: float = bounded(0.0, at_least=0.0)  # lambda: nats per latent dimension the KL is not pushed below
    # lambda falls linearly to 0 over these epochs (0: held)
    free_bits_decay_epochs: float = bounded(0.0, at_least=0.0, needs="free_bits")
    samples: int = bounded(1, at_least=1)  # K codes drawn per image and step, the reconstruction term their mean

    def check(self, model) -> None:
        if not model.latent.stochastic and (self.beta != 1 or self.kl_warmup_epochs or self.free_bits):
            raise AelabError("model.objective: a point-mass latent has no KL term for beta, a KL warm-up or free bits")
        if self.free_bits_decay_epochs and not self.free_bits:
            raise AelabError("model.objective.free_bits_decay_epochs: there are no free bits to decay (free_bits = 0)")
        if not model.latent.stochastic and self.samples > 1:
            raise AelabError("model.objective.samples: a point-mass latent has one code per image, not "
                             f"{self.samples} draws")

    def describe(self) -> str:
        return join(", ", self.changed_words({
            "beta": N_("beta {beta:g}", beta=self.beta),
            "kl_warmup_epochs": N_("KL warm-up {epochs:g} epochs", epochs=self.kl_warmup_epochs),
            "recon_reduction": N_("recon {reduction} over pixels", reduction=self.recon_reduction),
            "free_bits": N_("free bits {nats:g} nats per dimension", nats=self.free_bits),
            "free_bits_decay_epochs": N_("falling to 0 over {epochs:g} epochs", epochs=self.free_bits_decay_epochs),
            "samples": N_("ELBO over K = {k} draws", k=self.samples)}))

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return ([ANNEALING] if self.kl_warmup_epochs else []) + (
            [MEAN_REDUCTION] if self.recon_reduction != "sum" else []) + ([FREE_BITS] if self.free_bits else []) + (
            [free_bits_decay(self.free_bits_decay_epochs)] if self.free_bits_decay_epochs else [])

    def build(self, image_shape: tuple[int, ...]) -> ELBO:
        return ELBO(KLWeight(self.beta, self.kl_warmup_epochs), RECON_DIVISORS[self.recon_reduction](math.prod(image_shape)),
                    FreeBits(self.free_bits, self.free_bits_decay_epochs), self.samples)


@dataclass(frozen=True)
class IWAESettings(ObjectiveSettings):
    """[model.objective] name = "iwae": the K-sample importance-weighted bound."""

    name = "iwae"
    samples: int = bounded(5, at_least=1)  # K, importance samples per image and step

    def check(self, model) -> None:
        if not model.latent.stochastic:
            raise AelabError(f"model.objective: the importance-weighted bound needs a stochastic latent, "
                             f"not model.latent.name = {model.latent.name!r}")

    def describe(self) -> str:
        return N_("IWAE objective, K = {k}", k=self.samples)

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [IWAE_THEORY]

    def build(self, image_shape: tuple[int, ...]) -> IWAE:
        return IWAE(self.samples)
