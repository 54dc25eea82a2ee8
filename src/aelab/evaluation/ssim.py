"""SSIM (Wang et al. 2004) with the Gaussian window of the usual implementations (11 taps,
sigma 1.5, reflect padding, K1 = 0.01, K2 = 0.03), the window applied as two matrix products.

The Gaussian window is separable, and a blur of a (H, W) map with reflect padding is
B_H @ map @ B_W^T for banded (H, H) and (W, W) matrices that hold the window's weights, the
padding folded in. Matrix products run at the hardware's pace where a grouped 11x11
convolution does not: several times faster than torchmetrics' convolution on a CPU, and the
same to float32 rounding (the suite checks it against torchmetrics).
"""

from __future__ import annotations

import functools

import torch

WINDOW = 11
SIGMA = 1.5
K1, K2 = 0.01, 0.03


@functools.lru_cache(maxsize=16)
def _blur(n: int) -> torch.Tensor:
    """(n, n) float64: row i holds the window's weights over the n positions of a row of
    pixels, positions beyond the edge reflected back in (as torch's 'reflect' padding)."""
    pad = (WINDOW - 1) // 2
    offsets = torch.arange(WINDOW, dtype=torch.float64) - pad
    weights = torch.exp(-(offsets / SIGMA).pow(2) / 2)
    weights /= weights.sum()
    at = torch.arange(n).unsqueeze(1) + torch.arange(WINDOW).unsqueeze(0) - pad  # (n, WINDOW) positions
    at = at.abs()  # reflect below 0 ...
    at = torch.where(at >= n, 2 * (n - 1) - at, at)  # ... and past n - 1
    blur = torch.zeros(n, n, dtype=torch.float64)
    blur.scatter_add_(1, at, weights.expand(n, WINDOW).clone())
    return blur


@torch.no_grad()
def ssim_per_image(preds: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """(B,) mean SSIM of each image pair, preds and target (B, C, H, W) in float32."""
    _, _, h, w = preds.shape
    if min(h, w) <= (WINDOW - 1) // 2:
        raise ValueError(f"SSIM needs images larger than {(WINDOW - 1) // 2} pixels a side, got {h}x{w}")
    bh = _blur(h).to(preds.device, preds.dtype)
    bw = _blur(w).to(preds.device, preds.dtype)
    maps = torch.stack([preds, target, preds * preds, target * target, preds * target])  # (5, B, C, H, W)
    mu_p, mu_t, pp, tt, pt = bh @ maps @ bw.T
    c1, c2 = (K1 * data_range) ** 2, (K2 * data_range) ** 2
    mu_pp, mu_tt, mu_pt = mu_p.pow(2), mu_t.pow(2), mu_p * mu_t
    var_p = (pp - mu_pp).clamp_min(0.0)
    var_t = (tt - mu_tt).clamp_min(0.0)
    cov = pt - mu_pt
    full = ((2 * mu_pt + c1) * (2 * cov + c2)) / ((mu_pp + mu_tt + c1) * (var_p + var_t + c2))
    return full.flatten(1).mean(1)
