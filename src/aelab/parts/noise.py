"""Noise parts: on the encoder's input (corruption) and on the code (a channel).

Corruption: what happens to the encoder's input before encoding (denoising AE, Vincent et al.
2008). The reconstruction target stays the clean image.

Channel: what happens to the code on its way from the encoder to the decoder (the idea behind
deep joint source-channel coding, Bourtsoulatze et al. 2019). `normalise` acts on the code the
encoder gives (so every code shown or fitted is the one that is sent); `forward` acts on every
code the decoder receives: noise at `sigma` while training, at `eval_sigma` (0 = clean unless
set) otherwise.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from aelab.errors import AelabError
from aelab.language import N_
from aelab.parts import draws
from aelab.parts.slots import ChannelSettings, CorruptionSettings
from aelab.settings import bounded

DENOISING = (N_("Denoising"), [
    N_("The encoder sees a corrupted image x̃ = clip(x + σ ε, 0, 1), ε ~ N(0, I), while the loss still "
    "reconstructs the clean x: −log p(x | f(x̃)) (Vincent et al. 2008). The model must learn what digits look "
    "like, not copy pixels."),
])


CHANNEL = (N_("Noise on the code (a channel)"), [
    N_("The code is scaled to mean square 1, z = √D · c / ‖c‖ for a code c of D numbers, so that its average "
    "power is fixed; while training, Gaussian noise of standard deviation σ is added before the decoder, "
    "ẑ = z + σ ε, ε ~ N(0, I), so the noise-to-signal power ratio is σ² (an SNR of −20 log10 σ dB). The "
    "decoder learns to reconstruct from a code it receives through a noisy channel, as in deep joint "
    "source-channel coding (Bourtsoulatze et al. 2019). PSNR is measured with clean codes, at the training "
    "σ, and against σ at evaluation."),
])


class Clean:
    active = False

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return x


class GaussianNoise:
    """x + sigma * eps, eps ~ N(0, I), clipped back to [0, 1]."""

    active = True

    def __init__(self, sigma: float):
        self.sigma = sigma

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return (x + self.sigma * draws.randn_like(x)).clamp_(0, 1)


@dataclass(frozen=True)
class NoCorruptionSettings(CorruptionSettings):
    """[model.corruption] name = "none": the encoder sees the image."""

    name = "none"

    def describe(self) -> str:
        return ""

    def build(self) -> Clean:
        return Clean()


@dataclass(frozen=True)
class GaussianNoiseSettings(CorruptionSettings):
    """[model.corruption] name = "gaussian": Gaussian noise of std `sigma` added to the
    encoder's input, clipped to [0, 1] (a denoising AE)."""

    name = "gaussian"
    sigma: float = bounded(0.4, above=0.0)  # std of the noise added to the encoder's input, before clipping

    def describe(self) -> str:
        return N_("input noise {sigma:g}", sigma=self.sigma)

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [DENOISING]

    def build(self) -> GaussianNoise:
        return GaussianNoise(self.sigma)


class Noiseless(nn.Module):
    """The code reaches the decoder as it is."""

    active = False

    def normalise(self, code: torch.Tensor) -> torch.Tensor:
        return code

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z

    def noise_at(self, sigma: float):
        """No channel to add noise to: only sigma 0 (clean codes) is what this model does."""
        if sigma:
            raise AelabError(f"channel noise sigma {sigma:g}: this model has no channel (model.channel.name = 'none')")
        return contextlib.nullcontext(self)


class PowerNormalizedAWGN(nn.Module):
    """Each code is scaled to mean square 1 over its D values (average power 1), then zero-mean
    Gaussian noise of standard deviation sigma is added to each value, so sigma^2 is the
    noise-to-signal power ratio (SNR = -20 log10 sigma dB)."""

    active = True

    def __init__(self, sigma: float):
        super().__init__()
        self.sigma = sigma
        self.eval_sigma = 0.0

    def normalise(self, code: torch.Tensor) -> torch.Tensor:
        return code * torch.rsqrt(code.pow(2).mean(-1, keepdim=True).clamp_min(1e-12))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        sigma = self.sigma if self.training else self.eval_sigma
        return z + sigma * draws.randn_like(z) if sigma > 0 else z

    @contextlib.contextmanager
    def noise_at(self, sigma: float):
        """Evaluate with noise of sd `sigma` on the code (0: clean) inside the block; the
        evaluation noise is put back after it."""
        before, self.eval_sigma = self.eval_sigma, sigma
        try:
            yield self
        finally:
            self.eval_sigma = before


@dataclass(frozen=True)
class NoChannelSettings(ChannelSettings):
    """[model.channel] name = "none": the decoder is given the code as the encoder made it."""

    name = "none"

    def describe(self) -> str:
        return ""

    def build(self) -> Noiseless:
        return Noiseless()


@dataclass(frozen=True)
class AWGNSettings(ChannelSettings):
    """[model.channel] name = "awgn": the code power-normalised, Gaussian noise added while training."""

    name = "awgn"
    sigma: float = bounded(0.0, at_least=0.0)  # the noise's standard deviation against a code of mean square 1

    def check(self, model) -> None:
        if model.latent.stochastic:
            raise AelabError(f"model.channel: 'awgn' sends a deterministic code; use model.latent.name = 'point', "
                             f"not {model.latent.name!r}")

    def describe(self) -> str:
        return N_("channel awgn sigma {sigma:g}", sigma=self.sigma)

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [CHANNEL]

    def build(self) -> PowerNormalizedAWGN:
        return PowerNormalizedAWGN(self.sigma)
