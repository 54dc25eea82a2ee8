"""Networks: encoders map an image (and a condition vector) to a flat vector; decoders map
a code (and a condition vector) to the likelihood's raw output in the image's shape."""

from __future__ import annotations

import math

import torch
from torch import nn


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
