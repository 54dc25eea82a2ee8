"""A quantised latent: the VQ-VAE's codebook (van den Oord, Vinyals & Kavukcuoglu 2017).

The encoder's output, read as vectors of `code_dim` numbers (the channels of a CNN's code map
at each position, or consecutive groups of an MLP's code), is replaced by the nearest of K
codebook vectors. The decoder gets the chosen vectors; the gradient passes the choice straight
through to the encoder (z_e + sg(e - z_e)). The codebook follows the codes: each vector is the
running mean (exponential moving averages of counts and sums) of the codes that choose it, the
paper's appendix A.1 variant of its codebook term, which unlike that term does not lag behind
an encoder whose codes move fast. The commitment term beta ||z_e - sg(e)||² (their eq. 3) joins
the reconstruction in the loss and keeps the codes near their vectors.

The codebook starts on codes of the first training batch. A vector whose running count falls
below RESTART_BELOW of the mean count is moved onto a code of the batch. The running shares
of each position's choices are the prior over codes that samples are drawn from: a
categorical per position, fitted while training (no ELBO, hence no nll_is: a VQ-VAE is an
autoencoder with a discrete code; `usage` reports the rate of its test codes under that prior).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aelab.errors import AelabError
from aelab.language import N_, join
from aelab.parts.latents import PointMass
from aelab.parts.slots import Latent, LatentSettings, Prior, PriorDensity
from aelab.settings import bounded

DECAY = 0.99  # of the running counts, sums and shares of choices
RESTART_BELOW = 0.01  # a codebook vector whose running count falls below this share of the mean count is restarted
# The rate of the test codes is counted under the fitted prior mixed with this share of the
# uniform choice, so that a choice the running shares never saw costs at most log2(K / FLOOR)
# bits, not infinitely many: the code a receiver of the prior could decode.
FLOOR = 1e-3


class Quantized(PointMass):
    """The posterior of a quantised latent: one code per image (a point mass: no KL), and the
    commitment term as an extra loss part (a squared distance summed per image, not nats)."""

    def __init__(self, code: torch.Tensor, losses: dict[str, torch.Tensor]):
        super().__init__(code)
        self.losses = losses


class CodePrior(Prior, PriorDensity):
    """p(codes): a categorical over the codebook at each position, from the running shares."""

    symbol = "a categorical per position"

    def __init__(self, latent: "VectorQuantizer"):
        super().__init__()
        object.__setattr__(self, "_latent", latent)  # the latent's codebook and shares, not a copy

    def forward(self, y: torch.Tensor | None) -> "CodePrior":
        return self

    def draw(self, eps: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Codes from standard normal eps (B, D): position j's vector by inverse-CDF sampling of
        its categorical at Φ(eps_j), so that a seeded eps gives the same codes on every call."""
        q = self._latent
        cdf = (q.position_shares / q.position_shares.sum(-1, keepdim=True)).cumsum(-1)  # (N, K)
        u = torch.special.ndtr(eps[:, :q.positions].float()).T.contiguous()  # (N, B)
        index = torch.searchsorted(cdf.float(), u).clamp(max=q.codebook_size - 1).T  # (B, N)
        return q.join(q.codebook[index])


class VectorQuantizer(Latent):
    """The codebook (K, C) with its running counts and sums, the running shares of each
    position's choices, and the nearest-vector choice."""

    params_per_dim = 1
    stochastic = False

    def __init__(self, latent_dim: int, codebook_size: int, code_dim: int, commitment: float):
        super().__init__()
        self.latent_dim, self.codebook_size, self.code_dim = latent_dim, codebook_size, code_dim
        self.positions = -(-latent_dim // code_dim)  # N; a code that is no multiple of C is padded with zeros
        self.commitment = commitment
        n = torch.arange(self.positions)[:, None] + self.positions * torch.arange(code_dim)  # flat index of (n, c)
        self.register_buffer("real", (n < latent_dim).float(), persistent=False)  # (N, C): 0 where padded
        # moved by running averages of the codes that choose each vector, not by gradients (_count)
        self.register_buffer("codebook", torch.empty(codebook_size, code_dim).uniform_(-1 / codebook_size, 1 / codebook_size))
        self.register_buffer("counts", torch.ones(codebook_size, code_dim))  # running counts, per coordinate
        self.register_buffer("sums", self.codebook.clone())  # running sums of the codes that chose each vector
        self.register_buffer("position_shares", torch.full((self.positions, codebook_size), 1 / codebook_size))
        self.register_buffer("started", torch.zeros((), dtype=torch.bool))  # the codebook placed on real codes yet?

    def split(self, h: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, N, C): the code_dim numbers at each of N positions (channel-major, as a
        CNN's (C, H, W) code map is flattened; zeros after the code where D is no multiple of C)."""
        h = nn.functional.pad(h, (0, self.positions * self.code_dim - self.latent_dim))
        return h.reshape(len(h), self.code_dim, self.positions).transpose(1, 2)

    def join(self, vectors: torch.Tensor) -> torch.Tensor:
        return vectors.transpose(1, 2).reshape(len(vectors), -1)[:, :self.latent_dim]

    def nearest(self, vectors: torch.Tensor) -> torch.Tensor:
        """The index of the nearest codebook vector of each of (B, N, C), over each position's real
        coordinates, in float32."""
        with torch.autocast(vectors.device.type, enabled=False):
            v, book = vectors.float(), self.codebook.float()
            distance = v.pow(2).sum(-1, keepdim=True) - 2 * v @ book.T + self.real @ book.pow(2).T  # (B, N, K)
            return distance.argmin(-1)

    @torch.no_grad()
    def _restart(self, vectors: torch.Tensor) -> None:
        """At the first training step, place every codebook vector on a code of the batch (drawn
        at random: the codes' own scale, whatever the encoder's); later, move those whose running
        count fell below RESTART_BELOW of the mean count, with the mean count. No host sync."""
        chosen = self.counts[:, 0]  # a position's first coordinate is never padding
        dead = (chosen < RESTART_BELOW * chosen.mean()) | ~self.started  # (K,)
        flat = vectors.reshape(-1, self.code_dim).float()
        picks = flat[torch.randint(len(flat), (self.codebook_size,), device=flat.device)]
        count = torch.where(self.started, chosen.mean(), torch.full((), len(flat) / self.codebook_size, device=flat.device))
        self.codebook.copy_(torch.where(dead[:, None], picks, self.codebook))
        self.counts.copy_(torch.where(dead[:, None], count, self.counts))
        self.sums.copy_(torch.where(dead[:, None], picks * count, self.sums))
        self.started.fill_(True)

    @torch.no_grad()
    def _count(self, index: torch.Tensor, vectors: torch.Tensor) -> None:
        """The codebook moved to the running mean of the codes that chose each vector (van den
        Oord et al. 2017, appendix A.1: exponential moving averages of counts and sums, here per
        coordinate so that padding counts for nothing), and the running shares of each
        position's choices (the prior over codes)."""
        one_hot = nn.functional.one_hot(index, self.codebook_size).float()  # (B, N, K)
        self.position_shares.mul_(DECAY).add_(one_hot.mean(0), alpha=1 - DECAY)
        self.counts.mul_(DECAY).add_(torch.einsum("bnk,nc->kc", one_hot, self.real), alpha=1 - DECAY)
        self.sums.mul_(DECAY).add_(torch.einsum("bnk,bnc->kc", one_hot, vectors.float()), alpha=1 - DECAY)
        self.codebook.copy_(self.sums / self.counts.clamp(min=1e-6))

    def posterior(self, h: torch.Tensor) -> Quantized:
        vectors = self.split(h)
        if self.training:
            self._restart(vectors)
        index = self.nearest(vectors)
        chosen = self.codebook[index].to(vectors.dtype) * self.real.to(vectors.dtype)  # (B, N, C), 0 where padded
        if self.training:
            self._count(index, vectors.detach())
        losses = {"commitment": self.commitment * (vectors - chosen).pow(2).sum((1, 2))}
        return Quantized(self.join(vectors + (chosen - vectors).detach()), losses)

    def around(self, prior: nn.Module) -> CodePrior:
        return CodePrior(self)

    @torch.no_grad()
    def usage(self, codes: torch.Tensor, image_dims: int) -> dict[str, float]:
        """Of the test codes (B, D): the share of the codebook they use, the perplexity exp(H)
        of their choices (K when every vector is chosen equally often, 1 when one is), and their
        rate under the fitted prior (the running shares of each position's choices, mixed with
        FLOOR of the uniform choice): -log2 p(codes) in bits per image, and per image dimension
        (`image_dims` numbers an image). The rate of a lossy code, the bits that send the image
        at the reconstructions' quality, not a likelihood of the image itself."""
        index = self.nearest(self.split(codes.to(self.codebook.device, self.codebook.dtype)))  # (B, N)
        p = torch.bincount(index.flatten(), minlength=self.codebook_size).double()
        p = p / p.sum()
        entropy = -(p[p > 0] * p[p > 0].log()).sum().item()
        shares = self.position_shares.double()
        prior = (1 - FLOOR) * shares / shares.sum(-1, keepdim=True) + FLOOR / self.codebook_size  # (N, K)
        bits = -prior.log2().gather(1, index.T).sum(0).mean().item()  # summed over positions, mean over images
        return {"codebook_usage": (p > 0).double().mean().item(), "codebook_perplexity": math.exp(entropy),
                "code_bits": bits, "code_bits_per_dim": bits / image_dims}


def vq_theory(code_dim: int, codebook_size: int, commitment: float) -> tuple[str, list[str]]:
    return (N_("Vector-quantised code (VQ-VAE)"), [
        N_("The encoder's output, read as vectors of {c} numbers at each of the code's positions, is replaced by "
           "the nearest of K = {k} codebook vectors e_k, and the decoder reconstructs from those (van den Oord et "
           "al. 2017). The choice has no gradient, so the decoder's gradient is passed straight through to the "
           "encoder. Each codebook vector follows the codes that choose it, as their running mean (the paper's "
           "appendix A.1), and the loss adds the commitment term β ‖z_e(x) − sg[e]‖² with β = {beta:g} (their eq. "
           "3), which keeps the codes near their vectors.", c=code_dim, k=codebook_size, beta=commitment),
        N_("A codebook vector no code chooses any more is restarted on a code of the batch. Samples are drawn from "
           "a categorical over the codebook at each position, fitted to the training codes' choices while training "
           "(the paper fits a PixelCNN over the code map instead). A VQ-VAE has no ELBO and so no nll_is: it is "
           "reported by its reconstructions, its codebook usage, the perplexity of its choices, and the rate of "
           "its test codes under that fitted prior in bits per image and per image dimension: the bits that send an "
           "image at the quality of its reconstruction, the rate of a lossy code and not a likelihood of the image."),
    ])


@dataclass(frozen=True)
class VQSettings(LatentSettings):
    """[model.latent] name = "vq": a codebook of `codebook_size` vectors of `code_dim` numbers
    (for a CNN, its code map's channels at each position)."""

    name = "vq"
    stochastic = False
    short = "VQ-VAE"
    codebook_size: int = bounded(512, at_least=2)  # K
    code_dim: int = bounded(1, at_least=1)  # numbers per codebook vector (a CNN's: its latent_channels)
    commitment: float = bounded(0.25, at_least=0.0)  # beta of the commitment term

    def check(self, model) -> None:
        c = self.code_dim
        if c > model.latent_dim:
            raise AelabError(f"model.latent.code_dim: {c} numbers a vector, more than the code's "
                             f"model.latent_dim = {model.latent_dim}")
        if model.network.latent_channels not in (0, c):
            raise AelabError(f"model.latent.code_dim: {c}, but the network's code map has "
                             f"{model.network.latent_channels} channels a position; make them equal")
        if not model.prior.standard_normal:
            raise AelabError("model.prior: a quantised latent brings its own prior over codes; leave model.prior "
                             f"'standard', not {model.prior.name!r}")

    def describe(self) -> str:
        return join(", ", [N_("codebook {k} x {c}", k=self.codebook_size, c=self.code_dim), *self.changed_words({
            "codebook_size": "", "code_dim": "", "commitment": N_("commitment {beta:g}", beta=self.commitment)})])

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [vq_theory(self.code_dim, self.codebook_size, self.commitment)]

    def build(self, latent_dim: int) -> VectorQuantizer:
        return VectorQuantizer(latent_dim, self.codebook_size, self.code_dim, self.commitment)
