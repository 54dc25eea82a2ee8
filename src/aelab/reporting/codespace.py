"""Figures of what a deterministic code space can and cannot generate: a Gaussian fitted to
real codes and sampled, samples pulled toward real codes, noise added to codes, the channels
of a spatial code, and reconstruction quality against channel noise.
"""

from __future__ import annotations

from pathlib import Path

import torch

from aelab.language import N_, Language
from aelab.reporting import fonts, plots
from aelab.reporting.figure_data import FIGURE_SEED, SHOWN, Subject, cond, shown_images


def _decode(s: Subject, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
    return s.model.decode_mean(z, cond(s.model, y))


def fitted_gaussian(codes: torch.Tensor) -> torch.distributions.MultivariateNormal:
    """N(mean, covariance) of the rows of `codes`, in float64; a jitter of 1e-6 of the mean
    variance on the diagonal keeps it positive definite when codes are fewer than dimensions."""
    codes = codes.double()
    mean = codes.mean(0)
    cov = torch.cov(codes.T).reshape(len(mean), len(mean))
    jitter = 1e-6 * cov.diagonal().mean().clamp_min(1e-12)
    return torch.distributions.MultivariateNormal(mean, cov + jitter * torch.eye(len(mean), dtype=cov.dtype))


def gaussian_samples(s: Subject):
    """Codes of the first `fit_codes` training images; SHOWN samples of the Gaussian fitted to
    them, and the same samples pulled toward real codes (delta * sample + (1 - delta) * code)."""
    data, pull = s.data, s.options.pull
    codes = s.train_codes(s.options.fit_codes)
    g = torch.Generator().manual_seed(FIGURE_SEED)
    dist = fitted_gaussian(codes)
    eps = torch.randn(SHOWN, len(dist.mean), generator=g, dtype=torch.float64)
    samples = dist.mean + eps @ dist.scale_tril.T
    real = codes[:SHOWN].double()
    pulled = pull * samples + (1 - pull) * real
    y = data.train.labels[:SHOWN]
    x = data.train.images[:SHOWN].float().div(255)
    rows = [_decode(s, z.float().to(data.device), y) for z in (samples, pulled, real)] + [x]
    tr = s.tr
    return plots.image_rows(rows, [tr(N_("sampled")), tr(N_("pulled ({pull:g})", pull=pull)), tr(N_("real code")),
                                   tr(N_("image"))],
                            tr(N_("Decoded from a Gaussian fitted to {n} training codes, and pulled toward real codes",
                                  n=len(codes))))


def code_noise(s: Subject):
    """SHOWN test images' codes with Gaussian noise of sd = level x the code's root mean square."""
    data, model = s.data, s.model
    x, y = shown_images(data)
    code = model.encode(x, cond(model, y)).mean
    rms = code.pow(2).mean(-1, keepdim=True).sqrt()
    eps = torch.randn(code.shape, generator=torch.Generator().manual_seed(FIGURE_SEED)).to(code.device)
    levels = s.options.noise_levels
    rows = [x] + [_decode(s, code + level * rms * eps, y) for level in levels]
    tr = s.tr
    return plots.image_rows(rows, [tr(N_("test"))] + [tr(N_("noise {level:g}", level=level)) for level in levels],
                            tr(N_("Noise added to the codes (sd relative to each code's RMS), then decoded")))


def code_maps(s: Subject):
    """SHOWN test images, each beside the channels of its code map (each channel scaled to
    its own range over the images shown), upsampled to the image's size."""
    data, model = s.data, s.model
    x, y = shown_images(data)
    channels, h, w = model.decoder.code_shape
    maps = model.encode(x, cond(model, y)).mean.view(-1, channels, h, w)
    lo = maps.amin((0, 2, 3), keepdim=True)
    hi = maps.amax((0, 2, 3), keepdim=True)
    scaled = ((maps - lo) / (hi - lo).clamp_min(1e-8)).cpu()
    size = x.shape[-2:]
    coloured = plots.colormap(torch.nn.functional.interpolate(scaled, size=size, mode="nearest"))  # (N, C, 3, H, W)
    rgb = x.cpu().expand(-1, 3, -1, -1)
    cells = torch.cat([rgb.unsqueeze(1), coloured], 1).flatten(0, 1)  # per image: the image, then its channels
    tr = s.tr
    return plots.image_grid(cells, channels + 1,
                            tr(N_("Test images and the {channels} channels of their {h}x{w} codes", channels=channels,
                                  h=h, w=w)),
                            col_labels=[tr(N_("image"))] + [str(c) for c in range(channels)], cell=0.45)


def channel_curve(records: dict[str, dict], path: Path, lang: Language | None = None) -> Path:
    """PSNR against the evaluation channel noise, one line per run (from eval.json)."""
    lines = {name: (r["channel_sigmas"], r["channel_psnr_db"]) for name, r in records.items() if "channel_psnr_db" in r}
    with fonts.lettered(lang) as tr:
        return plots.save(plots.xy(lines, tr(N_("PSNR against channel noise at evaluation")),
                                   tr(N_("evaluation sigma (code of mean square 1)")), tr(N_("mean test PSNR (dB)"))),
                          path)
