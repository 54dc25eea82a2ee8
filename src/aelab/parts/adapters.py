"""Networks of flat vectors, as a course writes them, in the shape aelab's network slot asks for.

aelab's encoder maps images and an optional condition vector to the latent part's parameters,
    (B, C, H, W), (B, K) or None -> (B, out_dim)     out_dim = latent_dim x params per dimension;
its decoder maps codes (with any leading dimensions, such as K importance draws) back,
    (..., D), (..., K) or None -> (..., C, H, W)     the likelihood's raw output: logits for a Bernoulli.
A course's Encoder takes xs (B, x_dim) and returns a code (B, D) or a pair (mu, log_var);
its Decoder takes zs (N, D) and returns (N, x_dim). FlatEncoder and FlatDecoder wrap them,
joining the condition after the input (a CVAE's [x, one-hot y] and [z, one-hot y]), so that a
network part's `build` is one line (docs/own-model.md; examples/adapter/adapter.py).
"""

from __future__ import annotations

import torch
from torch import nn

from aelab.parts.slots import Decoder, Encoder


class FlatEncoder(Encoder):
    """`module`: (B, x_dim [+ K]) -> (B, out_dim), or a tuple of tensors joined along the last dimension."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        xs = x.flatten(1)
        if c is not None:
            xs = torch.cat([xs, c], dim=1)
        out = self.module(xs)
        return torch.cat(list(out), dim=-1) if isinstance(out, (tuple, list)) else out


class FlatDecoder(Decoder):
    """`module`: (N, D [+ K]) -> (N, prod(image_shape)) logits; with `probabilities`, a decoder
    that ends in a sigmoid, its output turned back into logits (clamped 1e-6 from 0 and 1)."""

    def __init__(self, module: nn.Module, image_shape: tuple[int, ...], probabilities: bool = False):
        super().__init__()
        self.module, self.image_shape, self.probabilities = module, tuple(image_shape), probabilities

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        lead = z.shape[:-1]
        zs = z.reshape(-1, z.shape[-1])
        if c is not None:
            zs = torch.cat([zs, c.reshape(-1, c.shape[-1])], dim=1)
        out = self.module(zs)
        if self.probabilities:
            out = torch.logit(out, eps=1e-6)
        return out.reshape(*lead, *self.image_shape)
