"""Each slot's protocol, written as a type: what a part of the model is, and what it may do.

A part has two halves. Its **settings** (a frozen dataclass subclassing its slot's settings
base below) are what a config names and checks; `build(...)` makes the **module** the model
runs, which subclasses its slot's module base. Built-in parts and a user's own parts
(userparts.py) subclass the same bases, and the rest of aelab reads only what the bases
declare: an optional capability is a method or a class attribute with a default here, never
an attribute probed for.

    slot        settings base        build(...)                    builds
    network     NetworkSettings      image_shape, out, in, cond    (Encoder, Decoder)
    latent      LatentSettings       latent_dim                    Latent
    prior       PriorSettings        num_classes, dim              Prior
    likelihood  LikelihoodSettings   ()                            a module: log_prob(out, x), mean(out)
    objective   ObjectiveSettings    image_shape                   Objective
    corruption  CorruptionSettings   ()                            a module: x -> x~
    condition   ConditionSettings    num_classes                   a module: y -> c
    channel     ChannelSettings      ()                            a module: z -> z~

The optional capabilities, each with its default:
- a closed-form KL: a prior's density sets `closed_kl = True` and gives `kl_from(q)`;
  without one the objectives estimate the KL at the codes they draw;
- binding to a model: `Prior.bind(model)` is called once the model is built (a VampPrior
  encodes its pseudo-inputs with the model's own encoder);
- a seeded draw: `PriorDensity.draw(eps, generator)` makes codes from standard normal noise
  and the sampling call's seeded generator, so that a seed gives the same samples on every call;
- a latent that owns a hierarchy or a codebook overrides `widths`, `prior_dim`, `around`,
  `visible`, `layers` and `usage`.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import ClassVar

import torch
from torch import nn

from aelab.settings import PartSettings


# --- what the settings say -------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkSettings(PartSettings, abc.ABC):
    """[model.network]: the encoder and decoder networks."""

    slot = "network"

    @property
    def latent_channels(self) -> int:
        """A convolutional code's channels (0: a flat code). A property, not a field, so that a
        subclass's own field of this name keeps its place among the subclass's fields."""
        return 0

    @abc.abstractmethod
    def build(self, image_shape: tuple[int, ...], out_dim: int, in_dim: int, cond_dim: int) -> tuple[Encoder, Decoder]:
        """The encoder (images (B, *image_shape) -> (B, out_dim)) and decoder ((B, in_dim) -> the
        likelihood's parameters, (B, *image_shape)), each also given the condition (B, cond_dim)."""


@dataclass(frozen=True)
class LatentSettings(PartSettings, abc.ABC):
    """[model.latent]: what the encoder's output means. A latent part must say `stochastic`
    (whether codes are drawn) and `short` (the model's name it makes, 'AE', 'VAE')."""

    slot = "latent"
    stochastic: ClassVar[bool]
    short: ClassVar[str]

    @abc.abstractmethod
    def build(self, latent_dim: int) -> Latent:
        """The latent module for codes of latent_dim numbers."""


@dataclass(frozen=True)
class PriorSettings(PartSettings, abc.ABC):
    """[model.prior]: p(z), or p(z | y)."""

    slot = "prior"
    standard_normal: ClassVar[bool] = False  # p(z) = N(0, I) for every image
    per_label: ClassVar[bool] = False  # p(z | y), one learned prior per label
    needs_encoder: ClassVar[bool] = False  # made from the encoder's posterior of z in one Gaussian

    @abc.abstractmethod
    def build(self, num_classes: int, latent_dim: int) -> Prior:
        """The prior module over codes of latent_dim numbers."""


@dataclass(frozen=True)
class LikelihoodSettings(PartSettings, abc.ABC):
    """[model.likelihood]: p(x | z) given the decoder's output."""

    slot = "likelihood"

    @abc.abstractmethod
    def build(self) -> nn.Module:
        """A module with log_prob(out, x) (per image, summed over pixels) and mean(out)."""


@dataclass(frozen=True)
class ObjectiveSettings(PartSettings, abc.ABC):
    """[model.objective]: what training minimises."""

    slot = "objective"

    @property
    def beta(self) -> float:
        """The KL's weight, where the objective has one (a subclass's field of this name is its own)."""
        return 1.0

    @property
    def free_bits(self) -> float:
        """A floor on each dimension's KL in nats, where the objective has one."""
        return 0.0

    @abc.abstractmethod
    def build(self, image_shape: tuple[int, ...]) -> Objective:
        """The objective for images of image_shape."""


@dataclass(frozen=True)
class CorruptionSettings(PartSettings, abc.ABC):
    """[model.corruption]: noise on the encoder's input (a denoising autoencoder)."""

    slot = "corruption"

    @abc.abstractmethod
    def build(self) -> nn.Module:
        """A module x -> x~ with `active` (whether it corrupts anything)."""


@dataclass(frozen=True)
class ConditionSettings(PartSettings, abc.ABC):
    """[model.condition]: what both networks are given besides x or z. A condition part must
    say `prefix` ('C' for a conditioned model, as in CVAE, else '')."""

    slot = "condition"
    prefix: ClassVar[str]

    @abc.abstractmethod
    def build(self, num_classes: int) -> nn.Module:
        """A module labels -> the condition vector (B, dim), with `dim` and `default_labels`."""


@dataclass(frozen=True)
class ChannelSettings(PartSettings, abc.ABC):
    """[model.channel]: noise on the code between encoder and decoder."""

    slot = "channel"

    @abc.abstractmethod
    def build(self) -> nn.Module:
        """A module z -> z~ with `active`, `normalise` and `eval_sigma`."""


SETTINGS = {cls.slot: cls for cls in (NetworkSettings, LatentSettings, PriorSettings, LikelihoodSettings,
                                      ObjectiveSettings, CorruptionSettings, ConditionSettings, ChannelSettings)}
# what a slot's settings must say besides `build`, with no default to fall back on
REQUIRED = {"latent": {"stochastic": "whether codes are drawn (True) or the encoder's output itself (False)",
                       "short": "the model's name it makes, e.g. 'VAE'"},
            "condition": {"prefix": "'C' for a conditioned model (CVAE), else ''"}}


# --- what they build -------------------------------------------------------------------------


class Encoder(nn.Module):
    """images (B, *image_shape) and a condition (B, c) or None -> (B, width) numbers for the latent."""


class Decoder(nn.Module):
    """codes (B, width) and a condition (B, c) or None -> the likelihood's parameters (B, *image_shape)."""

    code_shape: tuple[int, ...] | None = None  # a convolutional code's (channels, height, width), else None


class Posterior:
    """q(z | x) for a batch: `mean` (B, D), `rsample(k)`, `log_prob(z)`, `kl(prior, z)`."""

    stochastic: ClassVar[bool] = True
    std: torch.Tensor | None = None  # a Gaussian's standard deviation (B, D); None where it has none

    # terms the objective adds to the loss for this posterior (a codebook's commitment), per image
    losses: Mapping[str, torch.Tensor] = MappingProxyType({})

    def rsample(self, k: int | None = None) -> torch.Tensor:
        raise NotImplementedError

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def kl(self, prior: PriorDensity | None = None, z: torch.Tensor | None = None) -> torch.Tensor | None:
        raise NotImplementedError

    def free_kl(self, prior: PriorDensity, z: torch.Tensor, free_bits: float) -> torch.Tensor:
        """The KL term under free bits (Kingma et al. 2016, eq. 15), a scalar: the code split into
        groups, each group's KL averaged over the batch and counted at least `free_bits` nats per
        number of the group, summed. `z`: the codes the reconstruction used."""
        raise ValueError(f"{type(self).__name__} has no KL per group of its code for free bits")


class PriorDensity:
    """p(z) (or p(z | y)) for a batch: `log_prob(z)` and a seeded `draw(eps)`; `kl_from(q)` where
    `closed_kl`."""

    closed_kl: ClassVar[bool] = False

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def draw(self, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes z ~ p from standard normal noise eps (B, D), and `generator` for any other
        random number the draw needs (a mixture's choice of component): the seeded generator of
        the call that asked for samples, None where that call was not seeded. A draw takes its
        randomness from these two only, never from the global RNG, so that a seed gives the
        same samples on every call; the built-in priors need eps alone."""
        raise NotImplementedError(f"{type(self).__name__} draws no codes from noise")

    def kl_from(self, q: Posterior) -> torch.Tensor:
        """KL(q_j || p_j) of each dimension in closed form, (B, D)."""
        raise ValueError(f"{type(self).__name__} has no closed-form KL: estimate it at codes drawn from q")


class Prior(nn.Module):
    """labels (B,) or None -> the PriorDensity of each image."""

    symbol: ClassVar[str] = "p(z)"

    @property
    def words(self) -> str:
        """What samples are drawn from, in a sentence's words (the explorer says it)."""
        return self.symbol

    def bind(self, model: nn.Module) -> None:
        """Made a part of `model`, once it is built (a prior made of the model's own parts)."""

    def start(self, images: torch.Tensor, generator: torch.Generator) -> None:
        """Shown the training images (N, C, H, W, uint8) once, before a new run's first step, with
        a seeded CPU generator for any choice among them (a VampPrior's pseudo-inputs may start as
        some of them). A resumed run skips this: its checkpoint holds what it set. Most priors
        take nothing from the data."""


class Latent(nn.Module):
    """The encoder's output -> q(z | x). The defaults are a flat code of latent_dim numbers
    that the encoder gives `params_per_dim` numbers each for and the decoder sees whole."""

    params_per_dim: ClassVar[int] = 1
    stochastic: ClassVar[bool] = False
    why_no_nll: ClassVar[str] = ""  # where set, nll_is is left out and the report says why

    def posterior(self, h: torch.Tensor) -> Posterior:
        raise NotImplementedError

    def widths(self, latent_dim: int) -> tuple[int, int]:
        """The numbers the encoder gives this latent and the decoder takes from it."""
        return self.params_per_dim * latent_dim, latent_dim

    def prior_dim(self, latent_dim: int) -> int:
        """The size of the codes the model's prior part is built for."""
        return latent_dim

    def around(self, prior: Prior) -> Prior:
        """The model's prior, given the prior part (a hierarchy wraps it as its top layer)."""
        return prior

    def visible(self, z: torch.Tensor) -> torch.Tensor:
        """What the decoder sees of a code."""
        return z

    @property
    def layers(self) -> dict[str, slice]:
        """Each stochastic layer's numbers in the code, where there are several."""
        return {}

    def usage(self, codes: torch.Tensor, pixels: int) -> dict[str, float]:
        """Metrics of how the test codes use the code space (a codebook's perplexity)."""
        return {}


class Objective(abc.ABC):
    """(model, batch, progress) -> {'loss': ..., its parts}, nats per image."""

    def schedule(self, progress: float | None) -> dict[str, float]:
        """What changes with training time (the KL's weight during warm-up), for the record."""
        return {}

    @abc.abstractmethod
    def __call__(self, model, batch, progress: float | None) -> dict[str, torch.Tensor]:
        """The loss and its parts for a batch."""

