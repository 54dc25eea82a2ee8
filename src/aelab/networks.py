"""Networks: encoders map an image (and a condition vector) to a flat vector; decoders map
a code (and a condition vector) to the likelihood's raw output in the image's shape."""

from __future__ import annotations

import math

import torch
from torch import nn

from .errors import AelabError


def mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    """Linear layers of `sizes`, `activation` between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def _flat_only(latent_channels: int) -> None:
    if latent_channels:
        raise AelabError("model.latent_channels: a code map needs model.network = 'cnn'; an MLP's code is flat")


class MLPEncoder(nn.Module):
    """(B, C, H, W) [+ (B, K) condition] -> (B, out_dim)."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], out_dim: int,
                 cond_dim: int, activation: type[nn.Module], latent_channels: int = 0):
        super().__init__()
        _flat_only(latent_channels)
        self.net = mlp([math.prod(image_shape) + cond_dim, *hidden, out_dim], activation)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = x.flatten(1)
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.net(h)


class MLPDecoder(nn.Module):
    """(B, D) [+ (B, K) condition] -> (B, C, H, W); hidden sizes mirror the encoder's."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], latent_dim: int,
                 cond_dim: int, activation: type[nn.Module], latent_channels: int = 0):
        super().__init__()
        _flat_only(latent_channels)
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
            raise AelabError(f"model.hidden: {len(hidden)} stride-2 convolutions shrink a "
                             f"{image_shape[1]}x{image_shape[2]} image to nothing; use fewer")
        sizes.append((ch, h, w))
    return sizes


def down(sizes: list[tuple[int, int, int]], activation: type[nn.Module]) -> nn.Sequential:
    """Stride-2 convolutions through `sizes`, each followed by `activation`."""
    layers: list[nn.Module] = []
    for (a, _, _), (b, _, _) in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Conv2d(a, b, 4, stride=2, padding=1), activation()]
    return nn.Sequential(*layers)


def up(sizes: list[tuple[int, int, int]], activation: type[nn.Module]) -> nn.Sequential:
    """Stride-2 transposed convolutions from sizes[-1] back to sizes[0], `activation`
    between them (none after the last: the likelihood's raw output)."""
    layers: list[nn.Module] = []
    steps = list(zip(sizes[:-1], sizes[1:]))[::-1]
    for i, ((a, h, w), (b, sh, sw)) in enumerate(steps):
        layers.append(nn.ConvTranspose2d(b, a, 4, stride=2, padding=1, output_padding=(h - 2 * sh, w - 2 * sw)))
        if i < len(steps) - 1:
            layers.append(activation())
    return nn.Sequential(*layers)


def _with_condition(h: torch.Tensor, c: torch.Tensor | None) -> torch.Tensor:
    """A feature map (B, C, H, W) with the condition vector (B, K) appended as K constant channels."""
    if c is None:
        return h
    return torch.cat([h, c[:, :, None, None].expand(-1, -1, *h.shape[2:])], dim=1)


def _check_code_map(fits: bool, channels: int, h: int, w: int) -> None:
    if not fits:
        raise AelabError(f"model.latent_dim: a code of {channels} channels on the {h}x{w} map has "
                         f"{channels * h * w} dimensions; set model.latent_dim = {channels * h * w}")


class ConvEncoder(nn.Module):
    """(B, C, H, W) [+ (B, K) condition] -> (B, out_dim): convolutions, then a head. With
    `latent_channels` = 0 the head is one linear layer from the flattened feature map (and the
    condition vector); with latent_channels > 0 the code is itself a map at the last
    convolution's resolution (a spatial code, e.g. 16 x 8 x 8 for 64x64 images and three
    convolutions): a 3x3 convolution gives its out_dim / (h w) channels, flattened."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], out_dim: int,
                 cond_dim: int, activation: type[nn.Module], latent_channels: int = 0):
        super().__init__()
        sizes = feature_sizes(image_shape, hidden)
        self.features = down(sizes, activation)
        c, h, w = sizes[-1]
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


class ConvDecoder(nn.Module):
    """(B, D) [+ (B, K) condition] -> (B, C, H, W): a head to the encoder's last feature map
    (a linear layer from a flat code; a 3x3 convolution from a code map, the condition as
    constant channels), then transposed convolutions back to the image's size."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], latent_dim: int,
                 cond_dim: int, activation: type[nn.Module], latent_channels: int = 0):
        super().__init__()
        sizes = feature_sizes(image_shape, hidden)
        self.start = sizes[-1]
        c, h, w = self.start
        if latent_channels > 0:
            _check_code_map(latent_dim == latent_channels * h * w, latent_channels, h, w)
            self.code_shape = (latent_channels, h, w)
            self.head = nn.Sequential(nn.Conv2d(latent_channels + cond_dim, c, 3, padding=1), activation())
        else:
            self.code_shape = None
            self.head = nn.Sequential(nn.Linear(latent_dim + cond_dim, c * h * w), activation())
        self.net = up(sizes, activation)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        lead = z.shape[:-1]
        z = z.reshape(-1, z.shape[-1])
        c = None if c is None else c.reshape(-1, c.shape[-1])
        if self.code_shape:
            h = self.head(_with_condition(z.view(-1, *self.code_shape), c))
        else:
            h = self.head(z if c is None else torch.cat([z, c], dim=-1)).view(-1, *self.start)
        out = self.net(h)
        return out.view(*lead, *out.shape[1:])
