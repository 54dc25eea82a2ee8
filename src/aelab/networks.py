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


class MLPEncoder(nn.Module):
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


class MLPDecoder(nn.Module):
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


class ConvEncoder(nn.Module):
    """(B, C, H, W) [+ (B, K) condition] -> (B, out_dim): convolutions, then one linear
    layer from the flattened feature map (and the condition vector)."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], out_dim: int,
                 cond_dim: int, activation: type[nn.Module]):
        super().__init__()
        sizes = feature_sizes(image_shape, hidden)
        self.features = down(sizes, activation)
        self.head = nn.Linear(math.prod(sizes[-1]) + cond_dim, out_dim)

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x).flatten(1)
        if c is not None:
            h = torch.cat([h, c], dim=1)
        return self.head(h)


class ConvDecoder(nn.Module):
    """(B, D) [+ (B, K) condition] -> (B, C, H, W): one linear layer to the encoder's last
    feature map, then transposed convolutions back to the image's size."""

    def __init__(self, image_shape: tuple[int, ...], hidden: tuple[int, ...], latent_dim: int,
                 cond_dim: int, activation: type[nn.Module]):
        super().__init__()
        sizes = feature_sizes(image_shape, hidden)
        self.start = sizes[-1]
        self.head = nn.Sequential(nn.Linear(latent_dim + cond_dim, math.prod(self.start)), activation())
        self.net = up(sizes, activation)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        if c is not None:
            z = torch.cat([z, c], dim=-1)
        lead = z.shape[:-1]
        out = self.net(self.head(z.reshape(-1, z.shape[-1])).view(-1, *self.start))
        return out.view(*lead, *out.shape[1:])
