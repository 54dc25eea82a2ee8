"""What each model optimises, in a few lines, for the report (plain text with Unicode maths,
so that the same words serve the HTML and the Markdown report)."""

from __future__ import annotations

# model.kind -> (heading, paragraphs)
THEORY = {
    "ae": ("Autoencoder (AE)", [
        "The encoder maps an image to one code, z = f(x); the decoder gives the parameters of p(x | z). "
        "Training minimises the reconstruction loss alone: L_AE(x) = −log p(x | f(x)). With the Bernoulli "
        "likelihood this is the binary cross-entropy summed over the 784 pixels.",
        "Nothing asks the codes to follow any distribution, so decoding z ~ N(0, I) only shows what the "
        "decoder does where codes may never have landed; the AE has no ELBO and no NLL.",
    ]),
    "vae": ("Variational autoencoder (VAE)", [
        "The encoder gives a distribution over codes, q(z | x) = N(μ(x), diag σ²(x)); the prior is "
        "p(z) = N(0, I). Training maximises the evidence lower bound "
        "ELBO(x) = E_q(z|x)[log p(x | z)] − KL(q(z | x) ‖ p(z)) ≤ log p(x).",
        "The expectation uses one reparameterised draw z = μ + σ ⊙ ε, ε ~ N(0, I), so gradients reach the "
        "encoder; the KL is closed-form: ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1). β weights the KL and a warm-up "
        "raises it from 0 to β over the first epochs (KL annealing).",
        "neg_elbo is −ELBO on the test set. nll_is is the tighter importance-sampled estimate "
        "−log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x) (Burda et al. 2016), so nll_is ≤ neg_elbo.",
    ]),
    "cvae": ("Conditional VAE (CVAE)", [
        "The label y joins the inputs of both networks (one-hot): q(z | x, y) and p(x | z, y), with the "
        "prior p(z) = N(0, I) (Sohn et al. 2015). Training maximises "
        "ELBO(x | y) = E_q(z|x,y)[log p(x | z, y)] − KL(q(z | x, y) ‖ p(z)).",
        "The class need not be stored in z, so the code carries style (slant, thickness); a chosen y with "
        "z ~ N(0, I) draws that class. Its NLL is −log p(x | y), which knows the label, so it is lower "
        "than an unconditioned model's −log p(x) and not directly comparable.",
    ]),
}

DENOISING = ("Denoising", [
    "The encoder sees a corrupted image x̃ = clip(x + σ ε, 0, 1), ε ~ N(0, I), while the loss still "
    "reconstructs the clean x: −log p(x | f(x̃)) (Vincent et al. 2008). The model must learn what digits look "
    "like, not copy pixels.",
])

CONVENTION = ("Units", [
    "Every loss is summed over the pixels of an image and averaged over images: nats per image. "
    "mse is per pixel on [0, 1] images; PSNR = 10 log10(1 / mse) in dB; SSIM on the same reconstructions.",
])


def sections(kinds: list[str], denoising: bool) -> list[tuple[str, list[str]]]:
    """The theory sections for the model kinds present, in the order given, then the units."""
    out = [THEORY[k] for k in dict.fromkeys(kinds) if k in THEORY]
    if denoising:
        out.append(DENOISING)
    return out + [CONVENTION]
