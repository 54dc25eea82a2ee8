"""Metrics for people: names, values and units, one per line."""

from __future__ import annotations

# key -> (label, unit, format)
METRICS = {
    "loss": ("training objective", "nats/image", ".2f"),
    "neg_elbo": ("negative ELBO", "nats/image", ".2f"),
    "nll_is": ("NLL, importance sampled", "nats/image", ".2f"),
    "recon_nats": ("reconstruction term -log p(x|z)", "nats/image", ".2f"),
    "kl": ("KL(q(z|x) || p(z))", "nats/image", ".2f"),
    "mse": ("reconstruction MSE", "per pixel", ".5f"),
    "psnr_db": ("reconstruction PSNR", "dB", ".2f"),
    "ssim": ("reconstruction SSIM", "", ".4f"),
    "active_units": ("active units (Var E[z|x] > 0.01)", "dims", "d"),
    "probe_acc": ("linear probe accuracy on codes", "", ".4f"),
    "cond_acc": ("samples classified as their label", "", ".4f"),
    "sample_class_entropy": ("class entropy of prior samples", "nats (max 2.303)", ".3f"),
    "fd_classifier": ("Frechet distance, classifier features", "not Inception FID", ".2f"),
    "classifier_test_acc": ("reference classifier test accuracy", "", ".4f"),
}


def metrics_text(record: dict) -> str:
    head = (f"{record['run']}: {record['kind']} on {record['dataset']} (binarize={record['binarize']}), "
            f"{record['split']} set of {record['n_images']} images, {record['checkpoint']} of epoch {record['epoch']}")
    lines = [head]
    for key, (label, unit, fmt) in METRICS.items():
        if key in record:
            extra = f" (K={record['nll_k']})" if key == "nll_is" else ""
            lines.append(f"  {label + extra:<42} {format(record[key], fmt):>10}  {unit}")
    lines.append("  (losses: sum over pixels, mean over images)")
    return "\n".join(lines)
