"""A student's skeleton as aelab's model: `[model.skeleton]` in a config.

    [model.skeleton]
    file = "model.py"    # the assignment's classes, as the student wrote them
    loss = "main.py"     # its Loss class ("" = main.py beside model.py where there is one; "none" = aelab's ELBO)
    type = "VAE"         # AE | VAE | CVAE

Training calls the student's own `forward` and `Loss` (`StudentObjective`): their sampling
and their loss are what is trained. aelab measures the result in its own units through the
same modules: `encode` replays their encoder on the images and reads q(z|x) = N(mu, sigma^2)
with sigma as their sampling makes it (student.py); `decode` replays their decoder with the
code replaced, its output read as the logits of a Bernoulli likelihood (probabilities are
turned into logits). Where their sampling is not Gaussian, or their loss is no Bernoulli
likelihood, the importance-sampled NLL would measure another model than theirs: the latent
says why (`why_no_nll`) and evaluation leaves it out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch

from aelab.course import code, conventions, fits, replay
from aelab.course.student import Student
from aelab.errors import AelabError
from aelab.language import N_
from aelab.parts.autoencoder import Autoencoder, Parts
from aelab.parts.conditions import OneHotLabel, Unconditional
from aelab.parts.latents import DeterministicLatent, GaussianLatent
from aelab.parts.likelihoods import Bernoulli
from aelab.parts.slots import Decoder, Encoder, Objective
from aelab.settings import bounded, choice

TYPES = {t: t for t in code.CLASSES}
NO_LOSS = "none"


@dataclass(frozen=True)
class SkeletonSettings:
    """[model.skeleton]: the course's skeleton as the student wrote it ("" file: not used)."""

    file: str = ""  # the student's model.py, relative to the config's folder
    loss: str = ""  # main.py with a Loss class; "" = main.py beside model.py where it exists; "none" = aelab's ELBO
    type: str = choice("VAE", TYPES)  # AE | VAE | CVAE: which of the assignment's classes
    hidden_size: int = bounded(400, at_least=1)  # the assignment's hidden_size argument

    @property
    def used(self) -> bool:
        return bool(self.file)

    def loss_file(self) -> Path | None:
        if self.loss == NO_LOSS:
            return None
        if self.loss:
            return Path(self.loss)
        beside = Path(self.file).parent / "main.py"
        return beside if beside.is_file() else None

    def resolved(self, folder: Path | None) -> SkeletonSettings:
        """Its files as absolute paths (relative ones from `folder`, else the working folder)."""
        def absolute(p: str) -> str:
            path = Path(p).expanduser()
            return str(path if path.is_absolute() else ((folder or Path.cwd()) / path).resolve())
        return SkeletonSettings(absolute(self.file) if self.file else "",
                                absolute(self.loss) if self.loss and self.loss != NO_LOSS else self.loss,
                                self.type, self.hidden_size)

    def describe(self) -> str:
        loss = N_("{file}'s Loss", file=Path(self.loss_file()).name) if self.loss_file() else N_("aelab's ELBO")
        return N_("the student's {type} ({file}: {cls}, hidden {hidden}), trained with {loss}", type=self.type,
                  file=Path(self.file).name, cls=code.CLASSES[self.type], hidden=self.hidden_size, loss=loss)


class StudentGaussian(GaussianLatent):
    """q(z|x) = N(mu, sigma^2) from the encoder's (mu, log sigma^2) as StudentEncoder gives them."""

    def __init__(self, why_no_nll: str = ""):
        super().__init__()
        self.why_no_nll = why_no_nll


class StudentEncoder(Encoder):
    """Images (B, C, H, W) -> the student's encoder replayed on them, flat: (mu, log sigma^2) or z."""

    def __init__(self, student: Student):
        super().__init__()
        self.student = student.net
        self.__dict__["course"] = student  # not a submodule: its modules are self.student's

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        s, lay = self.course, self.course.layout
        labels = c.argmax(-1) if c is not None else None
        out = replay.replay(s.net.encoder, lay.encoder, lay.images, x.flatten(1), labels)
        got = s.encoder_outputs(out)
        if not s.stochastic:
            return got[0].reshape(x.shape[0], -1)
        mu, spread = (t.reshape(x.shape[0], -1) for t in got)
        convention = lay.sampling.convention or "logvar"
        return torch.cat([mu, conventions.log_var(spread, convention)], 1)


class StudentDecoder(Decoder):
    """Codes (..., D) -> the student's decoder replayed with them: Bernoulli logits (..., C, H, W)."""

    def __init__(self, student: Student, image_shape: tuple[int, ...]):
        super().__init__()
        self.__dict__["course"] = student
        self.image_shape = tuple(image_shape)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        s, lay = self.course, self.course.layout
        lead = z.shape[:-1]
        labels = c.reshape(-1, c.shape[-1]).argmax(-1) if c is not None else None
        out = replay.replay(s.net.decoder, lay.decoder, lay.code, z.reshape(-1, z.shape[-1]), labels)
        return _logits(out.reshape(*lead, *self.image_shape), lay.probabilities)


@dataclass
class StudentObjective(Objective):
    """Their forward and their Loss, once per step; aelab's ELBO on their sampling where there is no Loss.
    Beside their loss, aelab's own terms in nats per image: recon (Bernoulli), kl and neg_elbo."""

    student: Student
    epochs: int = 1

    def __call__(self, model, batch, progress: float | None) -> dict[str, torch.Tensor]:
        s = self.student
        xs = batch.x.flatten(1)
        _, enc, decoded, x_ = s.step(xs, batch.y if s.conditional else None)
        logits = _logits(decoded, s.layout.probabilities).reshape(xs.shape)
        recon = conventions.recon(logits, xs, "bce-logits")  # -log p(x|z) of a Bernoulli, per image (B,)
        parts = {}
        objective = recon.mean()
        if s.stochastic:
            convention = s.layout.sampling.convention or "logvar"
            kl = conventions.kl(enc[0].reshape(len(xs), -1), enc[1].reshape(len(xs), -1), convention)
            parts = {"kl": kl.mean().detach(), "neg_elbo": (recon + kl).mean().detach()}
            objective = (recon + kl).mean()
        if s.loss is not None:
            epoch = 0 if progress is None else min(int(progress), self.epochs - 1)
            objective = s.loss_value(xs, x_, *enc, epoch=epoch, epochs=self.epochs) if s.stochastic \
                else s.loss_value(xs, x_, epoch=epoch, epochs=self.epochs)
        return {"loss": objective, "recon": recon.mean().detach(), **parts,
                "mse": (torch.sigmoid(logits.detach()) - xs).pow(2).mean()}


def _logits(out: torch.Tensor, probabilities: bool) -> torch.Tensor:
    """The decoder's output as Bernoulli logits: as it is, or (a decoder that ends in a sigmoid) log p - log(1 - p)."""
    if not probabilities:
        return out
    p = out.clamp(1e-6, 1 - 1e-6)
    return torch.log(p) - torch.log1p(-p)


def why_no_nll(student: Student) -> str:
    """Why the importance-sampled NLL of this model would not be the student's ('' where it is):
    aelab weighs a Gaussian q(z|x) and a Bernoulli p(x|z), so their sampling must be the one and
    their Loss's reconstruction the other (fits.py, on the probe batch)."""
    sampling = student.layout.sampling
    if sampling is None:
        return ""
    if sampling.convention is None:
        return N_("the spread of the codes the student's forward draws follows no convention aelab can name")
    if not sampling.gaussian:
        return N_("the student's forward draws codes that are not Gaussian, so q(z|x) is not the Gaussian aelab "
                  "would weigh")
    if student.loss is None:
        return ""
    xs, ys = student.probe_batch()
    with torch.random.fork_rng(devices=[]), torch.no_grad():
        _, enc, _, x_ = student.step(xs, ys)
        recon = fits.recon_fit(student, xs, x_, torch.zeros_like(enc[0]), torch.ones_like(enc[1]))
    probabilities = bool(((x_ >= 0) & (x_ <= 1)).all())
    if recon.form not in ("bce-logits", "bce-probabilities") or (probabilities and recon.form == "bce-logits"):
        return N_("the student's Loss reconstructs with {form}, not the Bernoulli likelihood of the decoder's output "
                  "that aelab would weigh", form=recon.form or N_("a loss aelab cannot name"))
    return ""


def build(settings: SkeletonSettings, image_shape: tuple[int, ...], num_classes: int, latent_dim: int,
          epochs: int) -> Autoencoder:
    """The student's model of settings.type as an aelab model (their classes and Loss inside)."""
    if math.prod(image_shape) <= 0:
        raise AelabError("model.skeleton: images of no pixels")
    sizes = code.Sizes(math.prod(image_shape), settings.hidden_size, latent_dim)
    student = Student(settings.file, settings.loss_file(), settings.type, sizes, num_classes)
    student.learn()
    latent = StudentGaussian(why_no_nll(student)) if student.stochastic else DeterministicLatent()
    condition = OneHotLabel(num_classes) if student.conditional else Unconditional()
    return Autoencoder(Parts(encoder=StudentEncoder(student), decoder=StudentDecoder(student, image_shape), latent=latent,
                             likelihood=Bernoulli(), condition=condition, objective=StudentObjective(student, max(epochs, 1))),
                       latent_dim, image_shape)
