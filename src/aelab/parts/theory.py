"""What each model optimises, in a few lines, for the report (plain text with Unicode maths,
so that the same words serve the HTML and the Markdown report). Every heading and paragraph is
an N_ Text (aelab/language.py): the report translates it; a user's part may give plain str.

Each section is (heading, paragraphs). The parts name the sections they rest on (their
settings' `theory()`); `sections` gathers them from the runs' configs.
"""

from __future__ import annotations

from aelab.language import N_

AE = (N_("Autoencoder (AE)"), [
        N_("The encoder maps an image to one code, z = f(x); the decoder gives the parameters of p(x | z). "
        "Training minimises the reconstruction loss alone: L_AE(x) = −log p(x | f(x)). With the Bernoulli "
        "likelihood this is the binary cross-entropy summed over the pixels (784 for a digit)."),
        N_("Nothing asks the codes to follow any distribution, so decoding z ~ N(0, I) only shows what the "
        "decoder does where codes may never have landed; the AE has no ELBO and no NLL."),
])

VAE = (N_("Variational autoencoder (VAE)"), [
        N_("The encoder gives a distribution over codes, q(z | x) = N(μ(x), diag σ²(x)); the prior is "
        "p(z) = N(0, I). Training maximises the evidence lower bound "
        "ELBO(x) = E_q(z|x)[log p(x | z)] − KL(q(z | x) ‖ p(z)) ≤ log p(x)."),
        N_("The expectation uses one reparameterised draw z = μ + σ ⊙ ε, ε ~ N(0, I), so gradients reach the "
        "encoder; the KL is closed-form: ½ Σ_j (μ_j² + σ_j² − log σ_j² − 1). β weights the KL and a warm-up "
        "raises it from 0 to β over the first epochs (KL annealing)."),
        N_("neg_elbo is −ELBO on the test set. nll_is is the tighter importance-sampled estimate "
        "−log (1/K) Σ_k p(x | z_k) p(z_k) / q(z_k | x), z_k ~ q(z | x) (Burda et al. 2016), so nll_is ≤ neg_elbo."),
])

def condition(model) -> tuple[str, list[str]]:
    """The CVAE as `model` (a ModelConfig) builds it: its prior, its β, how loudly the label speaks."""
    learned = model.prior.name == "conditional"
    prior = N_("a prior learned per class, p(z | y) = N(m_y, diag s_y²)") if learned else N_("the prior p(z) = N(0, I)")
    p = "p(z | y)" if learned else "p(z)"
    beta = getattr(model.objective, "beta", 1.0)
    scaled = N_(" scaled by {scale:g}", scale=model.condition.scale) if model.condition.scale != 1 else ""
    text = [
        N_("The label y joins the inputs of both networks as a one-hot vector{scaled}: q(z | x, y) and "
           "p(x | z, y), with {prior} (Sohn et al. 2015). It maximises "
           "ELBO(x | y) = E_q(z|x,y)[log p(x | z, y)] − {weight}KL(q(z | x, y) ‖ {p}).",
           scaled=scaled, prior=prior, weight="" if beta == 1 else "β · ", p=p),
        N_("The class need not be stored in z, so the code can carry style (slant, thickness) and a chosen y "
           "with z ~ {p} draws that class. Its NLL is −log p(x | y), which knows the label, so it is lower than "
           "an unconditioned model's −log p(x) and not directly comparable.", p=p),
    ]
    if beta != 1:
        text.append(N_("Here β = {beta:g}: the KL term weighs {beta:g} times what the ELBO gives it. Above 1 it makes "
                       "every nat that z carries about the image cost more, and the label, which the decoder is "
                       "given for free, is the first thing z stops carrying; the price is a looser bound (a higher "
                       "neg_elbo at the same fit).", beta=beta) if beta > 1 else
                    N_("Here β = {beta:g}: the KL term weighs {beta:g} times what the ELBO gives it. Below 1 the "
                       "code may carry more about each image than the prior allows for, at the price of samples "
                       "from the prior that look less like the data.", beta=beta))
    if not learned and model.condition.scale == 1 and beta == 1:
        text.append(N_("This is the textbook CVAE. Nothing in its objective stops z from also storing the class: "
                       "where it does, z ~ N(0, I) can carry another class's identity and the decoder draws that "
                       "class whatever y says; the classifier-judged share of samples that are their label "
                       "(cond_acc) measures how often."))
    return (N_("Conditioning on the label (CVAE)"), text)


def label_scale(scale: float) -> tuple[str, list[str]]:
    return (N_("How loudly the label speaks"), [
        N_("The label enters each network's first layer as a one-hot vector beside the image (encoder) or the "
           "code (decoder). The layer's weights start at one scale, so a code of D numbers, each about N(0, 1), "
           "moves the decoder's first layer about √D times as much as a one-hot of 1 does: early in training the "
           "decoder can learn the digit from z, and z goes on storing it."),
        N_("Here the one-hot is multiplied by s = {scale:g}, so that the label speaks as loudly from the first "
           "step. It is still the one-hot label into both networks; for a linear layer it is the same as starting "
           "the label's weights s times larger and, under Adam, moving them s times faster.", scale=scale),
    ])


CONDITIONAL_PRIOR = (N_("A learned prior per label, p(z | y)"), [
    N_("The prior is a Gaussian per class, p(z | y) = N(m_y, diag s_y²), learned with the rest of the model "
    "(the prior network of Sohn et al. 2015, sec. 4.2, which for a one-hot label is a table). It starts as "
    "N(0, I). The KL term is KL(q(z | x, y) ‖ p(z | y)) = ½ Σ_j (log s_yj² − log σ_j² + (σ_j² + (μ_j − m_yj)²) / s_yj² − 1), "
    "samples of class y decode z = m_y + s_y ⊙ ε, ε ~ N(0, I), and nll_is weighs each z_k by p(z_k | y)."),
    N_("Why: with one N(0, I) for every class, a CVAE trained for a few epochs still stores much of the digit's "
    "identity in z (a linear probe reads the class from the codes), so z ~ N(0, I) often lands where another "
    "class's codes live and the decoder draws that class whatever y says. A prior per class gives each class "
    "its own region, and sampling from p(z | y) stays in it."),
])

def vamp_prior(k: int) -> tuple[str, list[str]]:
    return (N_("The VampPrior"), [
        N_("The prior is a mixture of the encoder's own posteriors: p(z) = (1/K) Σ_k q(z | u_k), with K = {k} "
           "pseudo-inputs u_k, images learned with the rest of the model (Tomczak & Welling 2018, eq. 9). The prior "
           "that maximises the ELBO is the aggregate posterior (1/N) Σ_n q(z | x_n); the VampPrior approximates it "
           "with K learned images instead of the N training images, so the KL term no longer pulls every code "
           "towards one N(0, I).", k=k),
        N_("KL(q(z | x) ‖ p(z)) has no closed form: the ELBO uses log q(z | x) − log p(z) at the code drawn, and "
           "nll_is weighs each z_k by the mixture's density. Sampling picks one pseudo-input's posterior at random "
           "and draws from it. Each step also encodes the K pseudo-inputs: training costs about as much as encoding "
           "K more images a step."),
    ])


IWAE = (N_("Importance-weighted bound (IWAE)"), [
    N_("Training maximises the K-sample bound of Burda et al. (2016, eq. 8), "
    "L_K(x) = E[log (1/K) Σ_k p(x, z_k) / q(z_k | x)], z_1 … z_K ~ q(z | x) drawn independently. "
    "L_1 is the ELBO, and L_K rises towards log p(x) as K grows, so the encoder is no longer pushed to "
    "cover only where the ELBO is tight: IWAE models reach lower NLL and use more active units."),
    N_("Each step decodes K codes per image, about K times the VAE's cost. The model is the VAE's; only the "
    "objective differs, so its neg_elbo is still reported (and is higher than a VAE's)."),
])

DENOISING = (N_("Denoising"), [
    N_("The encoder sees a corrupted image x̃ = clip(x + σ ε, 0, 1), ε ~ N(0, I), while the loss still "
    "reconstructs the clean x: −log p(x | f(x̃)) (Vincent et al. 2008). The model must learn what digits look "
    "like, not copy pixels."),
])

LOSSES = (N_("Reconstruction losses are likelihoods"), [
    N_("Each reconstruction loss is −log p(x | z) for some p, up to a constant: binary cross-entropy is the "
    "Bernoulli likelihood; the squared error summed over pixels is a Gaussian with σ² = ½ "
    "(−log p = Σ (x − m)² + ½ D log π); the absolute error summed over pixels is a Laplace with scale 1. "
    "Their values differ by those constants and by how sharply they punish an error, so compare the "
    "runs' samples and the classifier scores, not their reconstruction nats."),
])

MEAN_REDUCTION = (N_("Mean or sum over pixels"), [
    N_("Averaging the reconstruction term over the D pixels (784 for a digit) instead of summing it "
    "divides it by D while the KL stays as it is, which is the ELBO with β = D. The KL then wins: "
    "codes carry less about each image (lower KL, fewer active units) and samples and reconstructions "
    "blur towards the average digit."),
])

ANNEALING = (N_("KL annealing"), [
    N_("The KL weight rises linearly from 0 to β over the first epochs (Bowman et al. 2016), so the "
    "decoder learns to use the code before the KL pulls q(z | x) towards the prior. It is a way of "
    "training, not a different model: every number in the table is measured with the KL at full weight."),
])

WEIGHT_DECAY = (N_("L2 regularisation"), [
    N_("Weight decay λ adds λ/2 ‖θ‖² to the loss (with Adam, λθ to every gradient), keeping weights small. "
    "The loss here is summed over pixels, so λ is set against a loss of about a hundred nats per image."),
])

CHANNEL = (N_("Noise on the code (a channel)"), [
    N_("The code is scaled to mean square 1, z = √D · c / ‖c‖ for a code c of D numbers, so that its average "
    "power is fixed; while training, Gaussian noise of standard deviation σ is added before the decoder, "
    "ẑ = z + σ ε, ε ~ N(0, I), so the noise-to-signal power ratio is σ² (an SNR of −20 log10 σ dB). The "
    "decoder learns to reconstruct from a code it receives through a noisy channel, as in deep joint "
    "source-channel coding (Bourtsoulatze et al. 2019). PSNR is measured with clean codes, at the training "
    "σ, and against σ at evaluation."),
])

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

GDN = (N_("Generalized divisive normalisation"), [
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

TIME_BUDGET = (N_("Training for minutes, not epochs"), [
    N_("A run with train.time_budget_min stops after that many minutes of training steps, and its cosine "
    "schedule follows the share of the minutes spent, so it ends at lr_min on a slow laptop and on a GPU "
    "alike. Within fixed minutes the question is what buys the most learning per second. On a CPU a "
    "convolution costs about as much per image at batch 16 as at batch 64, so the smaller batch makes four "
    "times the updates in the same time (docs/experiments/dogs.md measures it for the dogs model). A GPU "
    "runs a small batch far below its capacity; there a larger batch may buy more."),
])

SAMPLING_CODES = (N_("Sampling an autoencoder's code space"), [
    N_("An AE is trained only to decode the codes of real images. To sample it anyway, fit a Gaussian "
    "N(m, S) to the codes of n training images and decode draws from it. With fewer codes than "
    "dimensions (256 codes of 1,024 numbers for an 8x8x16 code), S has rank at most n − 1: every draw is "
    "the mean code plus a random mix of the centred training codes, a blend of many images at once that "
    "the decoder never saw. The reconstruction loss puts no demand on what such codes decode to."),
    N_("Pulled codes, δ·sample + (1 − δ)·code, stay near one real code and show how far from it the decoder "
    "still gives that image. Noise on the code in training (the channel) teaches the decoder codes within "
    "about σ√D of real ones, σ times a code's own length; it asks nothing about the space between codes. "
    "A VAE's KL term, which draws the codes towards N(0, I), is what makes a code space one to sample from."),
])

CONVENTION = (N_("Units"), [
    N_("Every loss is summed over the pixels of an image and averaged over images: nats per image. "
    "mse is per pixel on [0, 1] images; PSNR = 10 log10(1 / mse) in dB; SSIM on the same reconstructions."),
])


FIRST = ("latent", "condition")  # the model's kind leads: AE, VAE, conditioning


def own_part(part) -> list[tuple[str, list[str]]]:
    """The line a report gives a user's part (parts/user.py) that gives no theory of its own."""
    if ":" not in part.name:
        return []
    return [(N_("{title}, a {slot} of your own", title=part.title, slot=part.slot), [
        N_("{title} ({file}) is a {slot} part written outside aelab. Its settings class gives no theory: a "
           "theory(model) method returning (heading, paragraphs) puts its maths and citation here.",
           title=part.title, file=part.name.rpartition(":")[0], slot=part.slot)])]


def sections(cfgs) -> list[tuple[str, list[str]]]:
    """The theory sections of every part the runs use (the model kinds first, in the runs'
    order), weight decay and time budgets where a run has them, then the units."""
    found: dict[str, tuple[str, list[str]]] = {}
    for first in (True, False):
        for cfg in cfgs:
            for part in cfg.model.parts():
                if (part.slot in FIRST) == first:
                    said = part.theory(cfg.model) or own_part(part)
                    found.update({heading: (heading, text) for heading, text in said if heading not in found})
    if any(c.train.weight_decay > 0 for c in cfgs):
        found[WEIGHT_DECAY[0]] = WEIGHT_DECAY
    if any(c.train.time_budget_min > 0 for c in cfgs):
        found[TIME_BUDGET[0]] = TIME_BUDGET
    return [*found.values(), CONVENTION]
