"""The course's model.py in aelab, unchanged: its Encoder and Decoder as aelab's network, its
VAE.reparameterize as the way codes are drawn, its loss_function as the objective (optional:
aelab's own ELBO trains the networks otherwise). Which of its classes a model is follows from
the rest of the config: a Gaussian latent makes the VAE, a label condition the CVAE."""

import math
from dataclasses import dataclass

import model  # the course's model.py, beside this file

module = model  # (named so that a method's argument `model`, aelab's, does not hide it)

from aelab.parts import LatentSettings, NetworkSettings, Objective, ObjectiveSettings, bounded
from aelab.parts.adapters import FlatDecoder, FlatEncoder
from aelab.parts.latents import VAE_THEORY, DiagonalGaussian, GaussianLatent

# (codes drawn from q(z|x)?, conditioned on labels?) -> the course's class
CLASSES = {(False, False): model.AE, (True, False): model.VAE, (True, True): model.CVAE}


@dataclass(frozen=True)
class CourseNetworks(NetworkSettings):
    """[model.network] name = "adapter.py:CourseNetworks": the course's Encoder and Decoder."""

    hidden_size: int = bounded(400, at_least=1)

    def describe(self):
        return f"the course's networks, hidden {self.hidden_size}"

    def build(self, image_shape, out_dim, latent_dim, cond_dim):
        course = CLASSES[out_dim == 2 * latent_dim, cond_dim > 0](math.prod(image_shape), self.hidden_size, latent_dim)
        return FlatEncoder(course.encoder), FlatDecoder(course.decoder, image_shape)


class CourseGaussian(DiagonalGaussian):
    """q(z|x) = N(mu, diag exp(log_var)), codes drawn by the course's own reparameterize."""

    def rsample(self, k=None):
        mu, log_var = self.mean, self.logvar
        if k is not None:  # k draws per image: (k, B, D)
            mu, log_var = mu.expand(k, *mu.shape), log_var.expand(k, *log_var.shape)
        return model.VAE.reparameterize(None, mu, log_var)


class CourseSampling(GaussianLatent):
    def posterior(self, h):
        return CourseGaussian(*h.chunk(2, dim=-1))


@dataclass(frozen=True)
class CourseLatent(LatentSettings):
    """[model.latent] name = "adapter.py:CourseLatent": a VAE's Gaussian q(z|x), sampled as the course samples it."""

    stochastic = True
    short = "VAE"

    def describe(self):
        return "codes drawn by the course's reparameterize"

    def theory(self, model):
        return [VAE_THEORY]

    def build(self, latent_dim):
        return CourseSampling()


class CourseLoss(Objective):
    """The course's loss_function(logits, xs, mu, log_var); without mu, its reconstruction alone."""

    def __call__(self, model, batch, progress):
        q = model.encode(batch.x, batch.y)
        logits, xs = model.decode(q.rsample(), batch.y).flatten(1), batch.x.flatten(1)
        recon = module.loss_function(logits, xs)
        if not q.stochastic:
            return {"loss": recon, "recon": recon}
        loss = module.loss_function(logits, xs, q.mean, q.logvar)
        return {"loss": loss, "recon": recon, "kl": loss - recon, "neg_elbo": loss}


@dataclass(frozen=True)
class CourseObjective(ObjectiveSettings):
    """[model.objective] name = "adapter.py:CourseObjective": the course's own loss_function."""

    def describe(self):
        return "the course's loss_function"

    def build(self, image_shape):
        return CourseLoss()
