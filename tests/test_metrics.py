"""The evaluation's estimators against known answers, and its scores on small real inputs."""


import numpy as np
import pytest
import torch
from torch import nn

from aelab import registry
from aelab.data.splits import Batch
from aelab.errors import AelabError
from aelab.evaluation import classifier, metrics
from aelab.parts.autoencoder import Autoencoder, Parts
from aelab.parts.conditions import Unconditional
from aelab.parts.latents import GaussianLatent
from aelab.parts.objectives import ELBO, IWAE
from conftest import tiny


class LinearGaussian(nn.Module):
    """p(x|z) = N(x; out, s^2 I) with the decoder's output as the mean (no squashing)."""

    def __init__(self, s):
        super().__init__()
        self.s = s

    def log_prob(self, out, x):
        return torch.distributions.Normal(out, self.s).log_prob(x).flatten(-3).sum(-1)

    def mean(self, out):
        return out


class Lin(nn.Module):
    def __init__(self, a, b, shape):
        super().__init__()
        self.lin, self.shape = nn.Linear(a, b), shape

    def forward(self, v, c=None):
        return self.lin(v.flatten(1)).unflatten(-1, self.shape)


@pytest.fixture(scope="module")
def linear_model():
    """z ~ N(0, I_2), x = W z + b + N(0, s^2 I_4): log p(x) = log N(x; b, W W^T + s^2 I)."""
    torch.manual_seed(0)
    model = Autoencoder(Parts(encoder=Lin(4, 4, (4,)), decoder=Lin(2, 4, (1, 2, 2)), latent=GaussianLatent(),
                              likelihood=LinearGaussian(0.5)), latent_dim=2, image_shape=(1, 2, 2))
    W, b = model.decoder.lin.weight.detach(), model.decoder.lin.bias.detach()
    # The true posterior is N(S W^T (x - b) / s^2, S), S = (I + W^T W / s^2)^-1. The encoder
    # is an imperfect proposal: its means shrunk by 0.8, its variances doubled.
    S = torch.linalg.inv(torch.eye(2) + W.T @ W / 0.25)
    A = 0.8 * S @ W.T / 0.25
    with torch.no_grad():
        model.encoder.lin.weight.copy_(torch.cat([A, torch.zeros(2, 4)]))
        model.encoder.lin.bias.copy_(torch.cat([-A @ b, torch.log(2 * S.diagonal())]))
    px = torch.distributions.MultivariateNormal(b, W @ W.T + 0.25 * torch.eye(4))
    x = px.sample((200,)).detach()
    return model, Batch(x.view(200, 1, 2, 2), torch.zeros(200, dtype=torch.long)), -px.log_prob(x).mean().item()


def test_importance_sampled_nll_converges_to_the_closed_form(linear_model):
    model, batch, exact = linear_model
    torch.manual_seed(1)
    estimates = {k: metrics.nll_importance_sampled(model, [batch], k, rows_per_chunk=3000) for k in (1, 10, 5000)}
    elbo = model.loss(batch)["neg_elbo"].item()
    assert estimates[5000] == pytest.approx(exact, abs=0.02)
    assert estimates[1] > estimates[10] > estimates[5000] - 0.02  # the bound tightens with K
    assert elbo > exact


def test_k1_estimate_is_the_elbo(linear_model):
    model, batch, _ = linear_model
    q = model.encode(batch.x)
    torch.manual_seed(2)
    k1 = metrics.nll_importance_sampled(model, [batch], 1)
    torch.manual_seed(2)
    log_w, log_px_z, _ = model.log_weights(q, batch.x, None, 1)
    assert k1 == pytest.approx(-log_w.mean().item(), rel=1e-6)  # the same draw: -log w = -ELBO sample
    torch.manual_seed(3)
    mc = torch.stack([-model.log_weights(q, batch.x, None, 1)[0].mean() for _ in range(400)]).mean().item()
    analytic_kl = torch.stack([model.loss(batch)["neg_elbo"] for _ in range(400)]).mean().item()
    assert mc == pytest.approx(analytic_kl, abs=0.03)  # ... and in expectation


def test_iwae_objective_with_one_sample_is_the_elbo(small_data):
    cfg = tiny("vae")
    model = registry.build_model(cfg, small_data.image_shape, 10)
    batch = next(small_data.eval_batches(small_data.train, 16))
    torch.manual_seed(5)
    draws = lambda objective, n=100: torch.stack([objective(model, batch, None)["loss"] for _ in range(n)]).mean().item()  # noqa: E731
    elbo = draws(ELBO())
    # K = 1: the ELBO with a Monte Carlo KL in place of the closed form; equal in expectation.
    assert draws(IWAE(1)) == pytest.approx(elbo, rel=2e-3)
    assert draws(IWAE(50), 10) < elbo - 1  # a tighter bound
    iw = registry.build_model(tiny("vae", model={"objective": {"name": "iwae", "samples": 5}}), small_data.image_shape, 10)
    assert isinstance(iw.objective, IWAE) and iw.objective.samples == 5


def test_active_units_count_varying_means():
    codes = torch.cat([torch.randn(1000, 3), 0.05 * torch.randn(1000, 2)], 1).double()
    assert metrics.active_units(codes) == 3


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(20000, 3))
    b = rng.normal(size=(20000, 3)) * 2 + 1
    # mu: 3 * 1^2; covariances I and 4I: tr(I + 4I - 2 * 2I) = 3
    assert metrics.frechet_distance(a, b) == pytest.approx(6.0, abs=0.15)
    assert abs(metrics.frechet_distance(a, a)) < 1e-9
    dead = np.c_[a, np.zeros(len(a))]  # a feature that never fires: singular covariance
    assert np.isfinite(metrics.frechet_distance(dead, dead + 0.1))


def test_probe_reads_labels_from_codes(mnist):
    x = torch.from_numpy(mnist.train_images[:3000].reshape(3000, -1).astype(np.float64) / 255)
    y = torch.from_numpy(mnist.train_labels[:3000].astype(np.int64))
    raw = metrics.probe_accuracy(x[:2000], y[:2000], x[2000:], y[2000:])
    noise = metrics.probe_accuracy(torch.randn(2000, 5), y[:2000], torch.randn(1000, 5), y[2000:])
    assert raw > 0.8 and noise < 0.2


def test_classifier_is_cached_and_reused(tmp_path, monkeypatch, mnist):
    monkeypatch.setenv("AELAB_CACHE", str(tmp_path))
    model, acc = classifier.reference_classifier(mnist, "mnist", classifier.Judging.from_env().classifier)
    assert acc > 0.75  # 3,000 images, one epoch (the real one: a slow test)
    files = list((tmp_path / "classifiers").glob("mnist-*.pt"))
    assert len(files) == 1
    monkeypatch.setattr(classifier, "train_classifier", lambda *a: pytest.fail("retrained"))
    again, acc2 = classifier.reference_classifier(mnist, "mnist", classifier.Judging.from_env().classifier)
    assert acc2 == acc and all(torch.equal(p, q) for p, q in zip(model.state_dict().values(), again.state_dict().values()))


def test_test_features_are_computed_once_per_classifier_and_test_set(monkeypatch, mnist, tmp_path):
    from aelab.data.sources import Arrays

    monkeypatch.setenv("AELAB_CACHE", str(tmp_path))
    quick = classifier.Judging.from_env().classifier
    calls = []
    compute = lambda: calls.append(1) or torch.randn(3, 2, dtype=torch.float64)  # noqa: E731
    classifier.test_features(mnist, "mnist", compute, quick)
    classifier.test_features(mnist, "mnist", compute, quick)
    assert len(calls) == 2 and not any(tmp_path.rglob("*.pt"))  # no classifier file to name them by: not stored

    weights = classifier._path(mnist, "mnist", quick)
    weights.parent.mkdir(parents=True)
    weights.write_bytes(b"a classifier")
    first = classifier.test_features(mnist, "mnist", compute, quick)
    assert torch.equal(classifier.test_features(mnist, "mnist", compute, quick), first) and len(calls) == 3
    classifier.test_features(mnist, "mnist", compute, classifier.ClassifierConfig(epochs=2, train_size=3000))
    assert len(calls) == 4  # another classifier
    fewer = Arrays(mnist.train_images, mnist.train_labels, mnist.test_images[:100], mnist.test_labels[:100],
                   mnist.class_names)
    classifier.test_features(fewer, "mnist", compute, quick)
    assert len(calls) == 5  # other test images
    weights.write_bytes(b"retrained")  # the same name, other weights: not the stored features
    assert not torch.equal(classifier.test_features(mnist, "mnist", compute, quick), first) and len(calls) == 6
    for store in tmp_path.rglob("*-test-*.pt"):
        store.write_bytes(b"torn")  # unreadable: computed again
    classifier.test_features(mnist, "mnist", compute, quick)
    assert len(calls) == 7


def test_judging_comes_from_the_environment_checked():
    assert classifier.Judging.from_env({}) == classifier.Judging()
    assert classifier.Judging.from_env({"AELAB_JUDGING": "samples = 20, epochs = 2"}) == \
        classifier.Judging(classifier.ClassifierConfig(epochs=2), 20)
    for bad, says in [("samples = 0", "samples must be"), ("sample = 3", "unknown key 'sample'"),
                      ("samples = [1]", "samples must be"), ("samples 3", "not a TOML")]:
        with pytest.raises(AelabError, match=says):
            classifier.Judging.from_env({"AELAB_JUDGING": bad})


def test_sample_scores_on_real_digits(small_data, mnist):
    judge, _ = classifier.reference_classifier(mnist, "mnist", classifier.Judging.from_env().classifier)

    class Replay(nn.Module):
        """A 'model' whose samples are real test digits: scores of a perfect generator."""

        condition = Unconditional()

        def __init__(self):
            super().__init__()
            self.p = nn.Parameter(torch.zeros(1))
            self.i = 0

        def sample(self, n, y=None, generator=None):
            x = small_data.test.images[self.i:self.i + n].float() / 255
            self.i += n
            return x

    test = list(small_data.eval_batches(small_data.test, 1000))
    scores = metrics.sample_scores(Replay(), judge, test, n=10_000)
    assert scores["sample_class_entropy"] > 2.25 and scores["fd_classifier"] < 1e-6
    cvae = registry.build_model(tiny("cvae"), (1, 28, 28), 10)
    untrained = metrics.sample_scores(cvae, judge, test[:1], n=1000)  # against 1,000 test digits
    assert 0 <= untrained["cond_acc"] <= 0.5 and len(untrained["cond_acc_per_label"]) == 10
    assert untrained["fd_classifier"] > 10


def test_measure_on_a_dynamically_binarised_model(mnist):
    """Dynamic binarisation: the test set is binary, the probe's training codes come from one
    seeded draw, and samples are judged against the grey test images."""
    from aelab.data.splits import DynamicBinary, ImageData
    from aelab.evaluation import evaluate

    cfg = tiny("vae", data={"binarize": "dynamic"})
    data = ImageData.from_arrays(mnist, DynamicBinary(), 256, 512)
    model = registry.build_model(cfg, data.image_shape, 10)
    first = evaluate.measure(model, data, cfg, k=5)
    assert {"nll_is", "active_units", "probe_acc", "fd_classifier", "sample_class_entropy"} <= set(first)
    assert first["nll_is"] < first["neg_elbo"]
    draw = lambda: data.binarizer.once(data.train.images, evaluate.PROBE_SEED)  # noqa: E731
    assert torch.equal(draw(), draw()) and set(draw().unique().tolist()) == {0, 255}


def test_denoising_psnr_against_an_independent_computation(small_data):
    """The noisy input's PSNR matches numpy's own noise on the same digits; with zero noise the
    denoised output's PSNR is the reconstruction PSNR."""
    from aelab.parts.noise import GaussianNoise

    model = registry.build_model(tiny("ae", model={"corruption": {"name": "gaussian", "sigma": 0.4}}), small_data.image_shape, 10).eval()
    batches = list(small_data.eval_batches(small_data.test, 1000))[:2]
    torch.manual_seed(0)
    got = metrics.denoising_quality(model, batches)
    x = torch.cat([b.x for b in batches]).numpy().reshape(2000, -1).astype(np.float64)
    noisy = np.clip(x + 0.4 * np.random.default_rng(0).standard_normal(x.shape), 0, 1)
    expected = np.mean(10 * np.log10(1 / ((noisy - x) ** 2).mean(1)))
    assert got["psnr_noisy_db"] == pytest.approx(expected, abs=0.05)
    assert 9 < got["psnr_noisy_db"] < 13  # about 11 dB for factor 0.4 on MNIST

    model.corruption = GaussianNoise(0.0)
    clean = metrics.denoising_quality(model, batches)
    assert clean["psnr_noisy_db"] == pytest.approx(100.0)  # x against itself: the cap
    assert clean["psnr_denoised_db"] == pytest.approx(metrics.image_quality(model, batches)["psnr_db"], rel=1e-9)
