"""Metrics of a trained model, each measured the way papers measure it.

All take a model and evaluation batches; none trains the model or touches its weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from aelab.evaluation.compiled import compiled
from aelab.evaluation.ssim import ssim_per_image
from aelab.parts.autoencoder import Autoencoder

ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. 2016, section 5.2
# Importance sampling compiles the decoder and likelihood (compiled.py) when it decodes at
# least this many image x sample rows: about where the fused passes repay the compile time.
COMPILE_ROWS = 4_000_000
_log_px_z = compiled(Autoencoder.log_px_z)


@torch.no_grad()
def image_quality(model: Autoencoder, batches) -> dict[str, float]:
    """Reconstructions at the posterior mean against the images, on the [0, 1] scale:
    mse (per pixel), psnr_db (mean over images of 10 log10(1 / mse_i)), ssim (mean;
    Wang et al. 2004, with the usual Gaussian window: ssim.py)."""
    return reconstruction_quality((model.reconstruct(b.x, b.y), b.x) for b in batches)


def reconstruction_quality(pairs) -> dict[str, float]:
    """mse, psnr_db and ssim (as image_quality) of (reconstructions, images) batches."""
    mse, psnr, ssim, n = 0.0, 0.0, 0.0, 0
    for rec, x in pairs:
        rec = rec.float()  # from a bfloat16 forward pass (evaluation/pace.py): the metrics in float32
        per_image = _mse_per_image(rec, x)
        mse += per_image.sum().item()
        psnr += _psnr(per_image).sum().item()
        with torch.autocast(rec.device.type, enabled=False):  # SSIM's window is two matrix products
            ssim += ssim_per_image(rec, x).double().sum().item()
        n += len(x)
    return {"mse": mse / n, "psnr_db": psnr / n, "ssim": ssim / n}


def _mse_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).flatten(1).mean(1).double()


def _psnr(mse: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of images on [0, 1] from their per-image MSE (capped at 100 dB)."""
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def psnr_per_image(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """(B,) PSNR in dB of images a against b, both (B, C, H, W) on [0, 1] (capped at 100 dB)."""
    return _psnr(_mse_per_image(a, b))


@torch.no_grad()
def denoising_quality(model: Autoencoder, batches) -> dict[str, float]:
    """For a model with input corruption: PSNR against the clean image of the corrupted input
    the encoder sees (psnr_noisy_db) and of its reconstruction from it (psnr_denoised_db),
    means over images in dB; the difference is what denoising gains."""
    noisy, denoised, n = 0.0, 0.0, 0
    for b in batches:
        corrupted = model.corruption(b.x)
        out = model.reconstruct(corrupted, b.y)
        noisy += psnr_per_image(corrupted, b.x).sum().item()
        denoised += psnr_per_image(out, b.x).sum().item()
        n += len(b.y)
    return {"psnr_noisy_db": noisy / n, "psnr_denoised_db": denoised / n}


@torch.no_grad()
def nll_importance_sampled(model: Autoencoder, batches, k: int, rows_per_chunk: int = 25_000) -> float:
    """-log p(x) ~= -log (1/K) sum_k p(x, z_k) / q(z_k|x), z_k ~ q(z|x) (Burda et al. 2016,
    eq. 8 read as an estimator), mean over images, nats/image. The K weights of an image are
    combined with log-sum-exp in float64, K in chunks so that memory stays bounded. For a
    conditioned model this estimates -log p(x | y)."""
    batches = list(batches)
    rows = k * sum(len(b.y) for b in batches)
    log_px_z = _log_px_z if rows >= COMPILE_ROWS else None
    total, n = 0.0, 0
    for b in batches:
        q = model.encode(b.x, b.y)
        chunk = max(1, rows_per_chunk // len(b.y))
        lse = torch.full((len(b.y),), -math.inf, dtype=torch.float64, device=b.x.device)
        for start in range(0, k, chunk):
            log_w, _, _ = model.log_weights(q, b.x, b.y, min(chunk, k - start), log_px_z)
            lse = torch.logaddexp(lse, torch.logsumexp(log_w.double(), 0))
        total += -(lse - math.log(k)).sum().item()
        n += len(b.y)
    return total / n


@torch.no_grad()
def posterior_means(model: Autoencoder, batches) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, D) codes E_q[z|x] and (N,) labels."""
    codes, labels = [], []
    for b in batches:
        codes.append(model.encode(b.x, b.y).mean.double().cpu())
        labels.append(b.y.cpu())
    return torch.cat(codes), torch.cat(labels)


def active_units(codes: torch.Tensor) -> int:
    """Dimensions whose posterior mean varies across the data: Var_x(E_q[z_j|x]) > 0.01."""
    return int((codes.var(0) > ACTIVE_UNIT_THRESHOLD).sum())


def probe_accuracy(train_codes, train_labels, test_codes, test_labels) -> float:
    """Test accuracy of a multinomial logistic regression on standardised codes (how much
    label information the code carries)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    probe.fit(train_codes.numpy(), train_labels.numpy())
    return float(probe.score(test_codes.numpy(), test_labels.numpy()))


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(s)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a S_b)^(1/2)) between Gaussians fitted to the
    rows of a and b (the FID formula, Heusel et al. 2017). Tr (S_a S_b)^(1/2) is computed as
    the sum of the square roots of the eigenvalues of the symmetric S_a^(1/2) S_b S_a^(1/2),
    which is exact and stays stable when a covariance is singular (dead ReLU features)."""
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root_a = _psd_sqrt(s_a)
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(root_a @ s_b @ root_a), 0, None)).sum()
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * cross)


@torch.no_grad()
def features(classifier, batches) -> torch.Tensor:
    """The classifier's features of every image of `batches`, (N, F) float64 on the CPU."""
    return torch.cat([classifier.features(b.x).double().cpu() for b in batches])


@torch.no_grad()
def sample_scores(model: Autoencoder, classifier, test_batches, n: int = 10_000, seed: int = 0,
                  batch: int = 1000, test_features: torch.Tensor | None = None) -> dict[str, float]:
    """Judge n prior samples with the reference classifier: `fd_classifier` against the test
    images (or `test_features`, their features computed once already); for a conditioned
    model `cond_acc` (samples of label c classified as c, n / C per label), else
    `sample_class_entropy` (entropy of the predicted-class histogram, nats; log C when every
    class is equally present)."""
    device = next(model.parameters()).device
    classifier = classifier.to(device).eval()
    g = torch.Generator(device=device).manual_seed(seed)
    classes = model.condition.dim
    labels = torch.arange(classes, device=device).repeat_interleave(n // classes) if classes else None
    feats, preds = [], []
    for start in range(0, n, batch):
        y = None if labels is None else labels[start:start + batch]
        f = classifier.features(model.sample(min(batch, n - start), y, generator=g))
        feats.append(f.double().cpu())
        preds.append(classifier.out(f).argmax(1).cpu())
    test_feats = features(classifier, test_batches) if test_features is None else test_features
    pred = torch.cat(preds)
    scores = {"fd_classifier": frechet_distance(torch.cat(feats).numpy(), test_feats.numpy())}
    if labels is not None:
        hits = pred == labels.cpu()
        scores["cond_acc"] = hits.double().mean().item()
        scores["cond_acc_per_label"] = [hits[labels.cpu() == c].double().mean().item() for c in range(classes)]
    else:
        p = torch.bincount(pred, minlength=classifier.out.out_features).double() / len(pred)
        scores["sample_class_entropy"] = -(p[p > 0] * p[p > 0].log()).sum().item()
    return scores
