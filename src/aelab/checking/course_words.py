"""What `aelab check model.py` says of each mistake: one plain sentence, translatable
(`--lang zh`: locale/zh). The codes are stable; the sentences say what to change."""

from __future__ import annotations

from aelab.language import N_, Text

# convention -> what the encoder's second output is taken to be
MEANINGS = {"logvar": N_("a log-variance"), "std": N_("a standard deviation"), "var": N_("a variance"),
            "logstd": N_("a log standard deviation"), "softplus": N_("a spread made positive by softplus")}
RECON = N_("reconstruction term")
KL = N_("KL term")

# every code aelab check can name, and what it means (the docs' table is made from this)
CODES = {
    "uniform-noise": N_("codes drawn with uniform noise instead of Gaussian"),
    "<kl>-as-<sampling>": N_("the encoder's second output read one way in the KL and another in the sampling "
                             "(logvar-as-std, var-as-std, std-as-logvar, ...)"),
    "logvar-as-std": N_("a second output that goes negative used as a standard deviation"),
    "mean-is-logvar": N_("the mean and the variance computed by the same layer"),
    "no-sampling": N_("a VAE whose forward decodes the mean without drawing z"),
    "kl-sign": N_("the KL with the wrong sign"),
    "kl-half": N_("the KL without its 1/2, or with it twice"),
    "kl-formula": N_("a KL that matches no closed form up to a constant"),
    "kl-missing": N_("a VAE loss without a KL term"),
    "kl-weight": N_("a KL weight or annealing set on purpose (a warning)"),
    "recon-mean-over-pixels": N_("the reconstruction averaged over pixels instead of summed"),
    "kl-mean-over-dims": N_("the KL averaged over the code's dimensions instead of summed"),
    "batch-sum": N_("a loss summed over the batch instead of averaged (a warning)"),
    "double-sigmoid": N_("probabilities fed to a loss that applies a sigmoid, or logits to one that does not"),
    "label-ignored": N_("a CVAE decoder whose output does not change with the label"),
    "unused-parameter": N_("a layer built but never used by the loss"),
}


def uniform_noise() -> Text:
    return N_("z is drawn with uniform noise (torch.rand_like: U(0, 1), mean 0.5), but the reparameterisation "
              "needs Gaussian noise: use torch.randn_like")


def mixed_conventions(kl: str, sampling: str) -> Text:
    return N_("the encoder's second output is used as {sampling} when z is drawn but as {kl} in the KL: give it "
              "one meaning and use that in both places", sampling=MEANINGS[sampling], kl=MEANINGS[kl])


def negative_spread(used: str, lowest: float) -> Text:
    return N_("the encoder's second output is used as {what} when z is drawn, but it comes from a linear layer and "
              "goes negative (as low as {lowest:.2f}); take it as a log-variance: std = torch.exp(0.5 * log_var)",
              what=MEANINGS[used], lowest=lowest)


def mean_is_logvar() -> Text:
    return N_("the mean and the variance come out of the same layer (the encoder's two outputs are equal): "
              "compute mu with its own layer")


def no_sampling() -> Text:
    return N_("forward gives the decoder the mean without drawing z: while training, a VAE draws "
              "z = mu + sigma * eps with eps = torch.randn_like(sigma)")


def kl_sign() -> Text:
    return N_("the KL has the wrong sign: KL = -0.5 * sum(1 + log_var - mu^2 - exp(log_var)) is never negative")


def kl_half(half: float) -> Text:
    return N_("the KL is {half:g} times its closed form: KL = -0.5 * sum(1 + log_var - mu^2 - exp(log_var)), "
              "with the 1/2 once", half=half)


def kl_formula() -> Text:
    return N_("the KL matches no closed form (for a log-variance, a standard deviation or a variance), even up to a "
              "constant factor: KL = 0.5 * sum(sigma^2 + mu^2 - 1 - log sigma^2)")


def kl_missing() -> Text:
    return N_("the Loss does not change when mu or sigma do: there is no KL term, so this trains an autoencoder, "
              "not a VAE")


def kl_weight(factor: float) -> Text:
    return N_("the KL is weighted by {factor:.4g}: if you chose this weight (a beta), the loss is not the ELBO; "
              "aelab reports its own -ELBO beside it", factor=factor)


def kl_annealing(first: float, last: float, epochs: int) -> Text:
    return N_("the KL's weight changes with the epoch ({first:.4g} at epoch 1, {last:.4g} at epoch {last_epoch} of "
              "{epochs}): annealing, a choice of yours; the loss is the ELBO only where the weight is 1",
              first=first, last=last, last_epoch=epochs - 1, epochs=epochs)


def recon_mean(pixels: int) -> Text:
    return N_("the reconstruction term is averaged over the {pixels} pixels instead of summed, so the KL weighs "
              "{pixels} times too much against it (blurry digits, all alike): use reduction='sum', then divide by "
              "the batch size", pixels=pixels)


def recon_mean_ae(pixels: int) -> Text:
    return N_("the reconstruction term is averaged over the {pixels} pixels instead of summed: an AE trains the "
              "same, but its loss is not in nats per image and cannot be set beside a VAE's; use reduction='sum', "
              "then divide by the batch size", pixels=pixels)


def kl_mean(dims: int) -> Text:
    return N_("the KL is averaged over the {dims} dimensions of z instead of summed: sum over the dimensions, "
              "then divide by the batch size", dims=dims)


def batch_sum(term: Text) -> Text:
    return N_("the {term} is summed over the batch instead of averaged, so the loss grows with the batch size: "
              "divide by the batch size (x.shape[0])", term=term)


def probabilities_to_logits() -> Text:
    return N_("x_ is already a probability (in [0, 1]: the decoder ends in a sigmoid) but the loss applies a "
              "sigmoid again (BCE with logits): drop one of the two")


def logits_to_probabilities() -> Text:
    return N_("x_ is logits (not in [0, 1]) but the loss wants probabilities and raises: apply torch.sigmoid "
              "first, or use F.binary_cross_entropy_with_logits")


def label_ignored() -> Text:
    return N_("the decoder's output does not change with the label (z held fixed): a CVAE's decoder must be given "
              "the label, e.g. torch.cat([z, one_hot(y)], dim=1)")


def unused(module: str) -> Text:
    return N_("{module} gets no gradient: a layer built and never used by the loss", module=module)


def no_classes() -> Text:
    return N_("no AutoEncoder, VariationalAutoEncoder nor ConditionalVariationalAutoEncoder class in the file")


MISTAKE = N_("mistake")
WARNING = N_("warning")
CHECKS = {"forward runs on real digits": N_("forward runs on real digits"),
          "a gradient on every parameter": N_("a gradient on every parameter"),
          "the loss falls on a fixed batch": N_("the loss falls on a fixed batch"),
          "a finite loss on real digits": N_("a finite loss on real digits"),
          "the Loss runs on x_": N_("the Loss runs on x_"),
          "the assignment's classes": N_("the assignment's classes")}


def trained_with(loss: str) -> Text:
    return N_("the loss: {loss}", loss=loss)


def summary(errors: int, warnings: int) -> Text:
    return N_("{errors} mistake(s), {warnings} warning(s)", errors=errors, warnings=warnings)


ISOLATION = N_("Each submission ran in its own process with a time limit and a memory cap. That isolates "
               "submissions from each other; it is no sandbox: their code ran with your rights.")
