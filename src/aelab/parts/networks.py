"""Networks: encoders map an image (and a condition vector) to a flat vector; decoders map
a code (and a condition vector) to the likelihood's raw output in the image's shape."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from aelab.errors import AelabError
from aelab.language import N_, join
from aelab.parts.slots import Decoder, Encoder, NetworkSettings
from aelab.settings import bounded, choice, value_text

CONVOLUTIONS = (N_("Convolutional networks"), [
    N_("The cnn networks replace the fully connected layers with stride-2 convolutions (kernel 4), each "
    "halving height and width, then one linear layer to the code; the decoder mirrors them with "
    "transposed convolutions. They share weights across positions, so they have far fewer parameters "
    "than an MLP of the same capacity and know that neighbouring pixels belong together."),
])


RESIDUAL_BLOCKS = (N_("Residual blocks"), [
    N_("res_blocks adds residual bottleneck blocks (He et al. 2016) at the code's resolution: each computes "
    "x + f(x), with f a 1x1 convolution down to a quarter of the channels, a 3x3 convolution and a 1x1 "
    "convolution back up. f starts at zero, so a block starts as the identity and the network learns how "
    "far to move from it. At the 8x8 map of the dogs model a block costs about 3% of the network's "
    "multiply-adds, far less than a layer at a finer resolution, and gives the decoder depth where it "
    "turns the code into features. Whether that depth is worth its time at a fixed budget depends on the "
    "rest of the model and the batch (docs/experiments/dogs.md)."),
])


GDN_THEORY = (N_("Generalized divisive normalisation"), [
    N_("With activation = gdn each convolution of the encoder is followed by GDN (Ballé, Laparra & "
    "Simoncelli 2016), y_i = x_i / √(β_i + Σ_j γ_ij x_j²) over the channels at each pixel, and each layer "
    "of the decoder by its inverse, x_i · √(β_i + Σ_j γ_ij x_j²), with β and γ learned and kept positive. "
    "Where ReLU keeps or drops each value on its own, GDN divides every channel by a learned measure of "
    "the energy of all channels at that pixel, as neurons of the visual cortex are thought to. It removes "
    "much of the dependence between the channels of natural-image features, so fewer channels carry more; "
    "it is the activation of the learned image codecs whose 8x8 or 16x16 codes this model resembles."),
    N_("It costs a 1x1 convolution across the channels at every resolution, so an epoch takes longer than "
    "with ReLU; whether the better steps are worth their time at a fixed budget is measured in "
    "docs/experiments/dogs.md."),
])


# model.network.activation
ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU,
               "silu": nn.SiLU, "leaky_relu": nn.LeakyReLU, "sigmoid": nn.Sigmoid}


class GDN(nn.Module):
    """Generalized divisive normalisation (Balle, Laparra & Simoncelli, ICLR 2016; 2017, eq. 2),
    the activation of learned image codecs: y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2)
    over the channels at each pixel, or the inverse (IGDN, in decoders), x_i * sqrt(...).
    beta and gamma are kept positive as squares of their parameters (beta above 1e-6);
    they start at beta = 1 and gamma = 0.1 I + 1e-6 off the diagonal, near the identity (not
    exactly 0 there: a squared parameter at 0 has no gradient and would never learn)."""


    def __init__(self, channels: int, inverse: bool = False):
        super().__init__()
        self.inverse = inverse
        self.beta = nn.Parameter(torch.ones(channels))
        eye = torch.eye(channels)
        self.gamma = nn.Parameter((0.1 * eye + 1e-6 * (1 - eye)).sqrt())

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, H, W)
        beta = self.beta.pow(2).clamp_min(1e-6)
        gamma = self.gamma.pow(2)  # (C_out, C_in)
        norm = nn.functional.conv2d(x * x, gamma[:, :, None, None], beta)  # beta_i + sum_j gamma_ij x_j^2
        return x * norm.sqrt() if self.inverse else x * norm.rsqrt()


CNN_ACTIVATIONS = {**ACTIVATIONS, "gdn": GDN}  # GDN acts across the channels of a feature map: convolutions only


def act(activation: type[nn.Module], channels: int, inverse: bool = False) -> nn.Module:
    """An activation after a layer of `channels` outputs; GDN is built for them (inverse in decoders)."""
    return activation(channels, inverse) if activation is GDN else activation()


def mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    """Linear layers of `sizes`, `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class MLPEncoder(Encoder):
    """(B, C, H, W) [+ (B, K) condition] -> (B, out_dim)."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], out_dim: int,
                 cond_dim: int, activation: type[nn.Module]):
        super().__init__()
        self.net = mlp([math.prod(image_shape) + cond_dim, *hidden, out_dim], activation)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.net(h)


class MLPDecoder(Decoder):
    """(B, D) [+ (B, K) condition] -> (B, C, H, W); hidden sizes mirror the encoder's."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], latent_dim: int,
                 cond_dim: int, activation: type[nn.Module]):
        super().__init__()
        self.image_shape = tuple(image_shape)
        self.net = mlp([latent_dim + cond_dim, *reversed(hidden), math.prod(image_shape)], activation)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is not None:
            z = torch.cat([z, c], dim=-1)
        return self.net(z).unflatten(-1, self.image_shape)


# Convolutional networks: `hidden` lists the channels of stride-2 convolutions (kernel 4,
# padding 1), each halving height and width (rounding down): 28x28 with [32, 64] goes
# 28 -> 14 -> 7. The decoder mirrors them with transposed convolutions, adding one row or
# column where the halving rounded down, so any image size comes back exactly. The same
# parts serve 1x28x28 digits and 3x64x64 photos; only the sizes differ.

def feature_sizes(image_shape: tuple[int, ...], hidden: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """(channels, height, width) of the image and after each convolution."""
    c, h, w = image_shape
    sizes = [(c, h, w)]
    for ch in hidden:
        h, w = h // 2, w // 2
        if h < 1 or w < 1:
            raise AelabError(f"model.network.hidden: {len(hidden)} stride-2 convolutions shrink a "
                             f"{image_shape[1]}x{image_shape[2]} image to nothing; use fewer")
        sizes.append((ch, h, w))
    return sizes


def down(sizes: list[tuple[int, int, int]], activation: type[nn.Module]) -> nn.Sequential:
    """Stride-2 convolutions through `sizes`, each followed by `activation`."""
    layers: list[nn.Module] = []
    for (a, _, _), (b, _, _) in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), act(activation, b)]
    return nn.Sequential(*layers)


def up(sizes: list[tuple[int, int, int]], activation: type[nn.Module]) -> nn.Sequential:
    """Stride-2 transposed convolutions from sizes[-1] back to sizes[0], `activation`
    between them (none after the last: the likelihood's raw output)."""
    layers: list[nn.Module] = []
    steps = list(zip(sizes[:-1], sizes[1:]))[::-1]
    for i, ((a, h, w), (b, sh, sw)) in enumerate(steps):
        layers.append(nn.ConvTranspose2d(b, a, 4, stride=2, padding=1, output_padding=(h - 2 * sh, w - 2 * sw)))
        if i < len(steps) - 1:
            layers.append(act(activation, a, inverse=True))
    return nn.Sequential(*layers)


class Bottleneck(nn.Module):
    """A residual block at one resolution (He et al. 2016's bottleneck): x + W3 a(W2 a(W1 x)),
    1x1 down to a quarter of the channels, 3x3, 1x1 back up, ReLU between (a CNN's own
    activation when it acts pixel by pixel). The last convolution starts at zero, so the block
    starts as the identity and adds depth at a few percent of a stride-2 layer's work."""

    def __init__(self, channels: int, activation: type[nn.Module]):
        super().__init__()
        mid = max(channels // 4, 1)
        a = nn.ReLU if activation is GDN else activation
        self.body = nn.Sequential(nn.Conv2d(channels, mid, 1), a(), nn.Conv2d(mid, mid, 3, padding=1), a(),
                                  nn.Conv2d(mid, channels, 1))
        nn.init.zeros_(self.body[-1].weight)
        nn.init.zeros_(self.body[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def blocks(channels: int, n: int, activation: type[nn.Module]) -> nn.Sequential:
    return nn.Sequential(*(Bottleneck(channels, activation) for _ in range(n)))


def _with_condition(h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """A feature map (B, C, H, W) with the condition vector (B, K) appended as K constant channels."""
    if c is None:
        return h
    return torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[2:])], dim=1)


def _check_code_map(fits: bool, channels: int, h: int, w: int) -> None:
    if not fits:
        raise AelabError(f"model.latent_dim: a code of {channels} channels (model.network.latent_channels) on the {h}x{w} map has "
                         f"{channels * h * w} dimensions; set model.latent_dim = {channels * h * w}")


class ConvEncoder(Encoder):
    """(B, C, H, W) [+ (B, K) condition] -> (B, out_dim): convolutions, then a head. With
    `latent_channels` = 0 the head is one linear layer from the flattened feature map (and the
    condition vector); with latent_channels > 0 the code is itself a map at the last
    convolution's resolution (a spatial code, e.g. 16 x 8 x 8 for 64x64 images and three
    convolutions): a 3x3 convolution gives its out_dim / (h w) channels, flattened."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], out_dim: int,
                 cond_dim: int, activation: type[nn.Module], latent_channels: int = 0, res_blocks: int = 0):
        super().__init__()
        sizes = feature_sizes(image_shape, hidden)
        c, h, w = sizes[-1]
        self.features = nn.Sequential(*down(sizes, activation), *blocks(c, res_blocks, activation))
        self.spatial = latent_channels > 0
        if self.spatial:
            _check_code_map(out_dim % (latent_channels * h * w) == 0, latent_channels, h, w)
            self.head = nn.Conv2d(c + cond_dim, out_dim // (h * w), 3, padding=1)
        else:
            self.head = nn.Linear(c * h * w + cond_dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if self.spatial:  # (B, P*C, h, w) flattened channel-major: the first C*h*w values are P's first part
            return self.head(_with_condition(h, c)).flatten(1)
        h = h.flatten(1)
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.head(h)


class ConvDecoder(Decoder):
    """(B, D) [+ (B, K) condition] -> (B, C, H, W): a head to the encoder's last feature map
    (a linear layer from a flat code; a 3x3 convolution from a code map, the condition as
    constant channels), then transposed convolutions back to the image's size."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], latent_dim: int,
                 cond_dim: int, activation: type[nn.Module], latent_channels: int = 0, res_blocks: int = 0):
        super().__init__()
        sizes = feature_sizes(image_shape, hidden)
        self.start = sizes[-1]
        c, h, w = self.start
        if latent_channels > 0:
            _check_code_map(latent_dim == latent_channels * h * w, latent_channels, h, w)
            self.code_shape = (latent_channels, h, w)
            self.head = nn.Sequential(nn.Conv2d(latent_channels + cond_dim, c, 3, padding=1), act(activation, c, inverse=True))
        else:
            self.code_shape = None
            self.head = nn.Sequential(nn.Linear(latent_dim + cond_dim, c * h * w), nn.Unflatten(1, (c, h, w)),
                                      act(activation, c, inverse=True))
        self.net = nn.Sequential(*blocks(c, res_blocks, activation), *up(sizes, activation))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        lead = z.shape[:-1]
        z = z.reshape(-1, z.shape[-1])
        c = None if c is None else c.reshape(-1, c.shape[-1])
        if self.code_shape:
            h = self.head(_with_condition(z.view(-1, *self.code_shape), c))
        else:
            h = self.head(z if c is None else torch.cat([z, c], dim=-1))
        out = self.net(h)
        return out.view(*lead, *out.shape[1:])


@dataclass(frozen=True)
class MLPSettings(NetworkSettings):
    """[model.network] name = "mlp": fully connected layers; the decoder mirrors the encoder."""

    name = "mlp"
    hidden: tuple[int, ...] = (400,)  # the hidden layers' widths
    activation: str = choice("relu", ACTIVATIONS)

    def describe(self) -> str:
        return f"mlp {value_text(self.hidden)}" + (f" {self.activation}" if self.activation != "relu" else "")

    def build(self, image_shape, out_dim: int, latent_dim: int, cond_dim: int):
        act = ACTIVATIONS[self.activation]
        return (MLPEncoder(image_shape, self.hidden, out_dim, cond_dim, act),
                MLPDecoder(image_shape, self.hidden, latent_dim, cond_dim, act))


@dataclass(frozen=True)
class CNNSettings(NetworkSettings):
    """[model.network] name = "cnn": stride-2 convolutions; the decoder mirrors them."""

    name = "cnn"
    hidden: tuple[int, ...] = (32, 64)  # the convolutions' channels, each halving height and width
    activation: str = choice("relu", CNN_ACTIVATIONS)  # also "gdn": GDN in the encoder, its inverse in the decoder
    latent_channels: int = bounded(0, at_least=0)  # > 0: the code is a map of this many channels (latent_dim = channels x h x w)
    res_blocks: int = bounded(0, at_least=0)  # residual bottleneck blocks at the last convolution's resolution, in each network

    def describe(self) -> str:
        return join(", ", [f"cnn {value_text(self.hidden)}" + (f" {self.activation}" if self.activation != "relu" else ""),
                           N_("code map of {n} channels", n=self.latent_channels) if self.latent_channels else "",
                           N_("{n} residual blocks", n=self.res_blocks) if self.res_blocks else ""])

    def theory(self, model) -> list[tuple[str, list[str]]]:
        return [CONVOLUTIONS] + ([GDN_THEORY] if self.activation == "gdn" else []) + (
            [RESIDUAL_BLOCKS] if self.res_blocks else [])

    def build(self, image_shape, out_dim: int, latent_dim: int, cond_dim: int):
        activation = CNN_ACTIVATIONS[self.activation]
        return (ConvEncoder(image_shape, self.hidden, out_dim, cond_dim, activation, self.latent_channels, self.res_blocks),
                ConvDecoder(image_shape, self.hidden, latent_dim, cond_dim, activation, self.latent_channels, self.res_blocks))
