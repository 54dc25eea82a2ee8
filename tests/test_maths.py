"""Losses against closed forms and torch.distributions."""

import math

import pytest
import torch
from torch import distributions as D
from torch import nn

from aelab import registry
from aelab.data.splits import Batch
from aelab.parts.latents import DiagonalGaussian, standard_normal_log_prob
from aelab.parts.likelihoods import Bernoulli, Gaussian, Laplace
from aelab.parts.objectives import KLWeight
from aelab.parts.priors import ClassPrior
from conftest import KINDS, tiny


def test_kl_of_known_gaussians():
    # KL(N(mu, s^2) || N(0, 1)) = (mu^2 + s^2 - 1 - log s^2) / 2 per dimension.
    mu, s = torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 2.0]])
    q = DiagonalGaussian(mu, (s**2).log())
    expected = 0.5 * (1 + 1 - 1 - 0) + 0.5 * (0 + 4 - 1 - math.log(4))
    assert q.kl().item() == pytest.approx(expected, abs=1e-6)
    mu, logvar = torch.randn(6, 5), torch.randn(6, 5)
    ref = D.kl_divergence(D.Normal(mu, (0.5 * logvar).exp()), D.Normal(0.0, 1.0)).sum(-1)
    assert torch.allclose(DiagonalGaussian(mu, logvar).kl(), ref, atol=1e-5)


def test_kl_to_a_learned_class_prior_matches_torch_and_its_monte_carlo_estimate():
    # KL(N(mu, sigma^2) || N(m, s^2)) per dimension against torch.distributions, for the prior of each label
    torch.manual_seed(0)
    prior = ClassPrior(3, 4)
    with torch.no_grad():
        prior.mean.normal_(), prior.logvar.normal_()
    y = torch.tensor([2, 0, 2, 1, 1])
    q = DiagonalGaussian(torch.randn(5, 4), torch.randn(5, 4))
    p = prior(y)
    ref = D.kl_divergence(D.Normal(q.mean, q.std), D.Normal(prior.mean[y], (0.5 * prior.logvar[y]).exp())).sum(-1)
    assert torch.allclose(q.kl(p), ref, atol=1e-5)
    z = q.rsample(100_000)
    assert torch.allclose((q.log_prob(z) - p.log_prob(z)).mean(0), ref, rtol=0.02, atol=0.02)
    # from N(0, I) at the start: then it is the standard KL
    assert torch.allclose(ClassPrior(3, 4)(y).kl_from(q), q.kl_per_dim(), atol=1e-6)


def test_a_class_prior_draws_and_weighs_its_own_class():
    """Samples of label y decode z = m_y + s_y eps; nll_is weighs each z_k by p(z_k | y)."""
    torch.manual_seed(0)
    model = registry.build_model(tiny("cvae", model={"prior": {"name": "conditional"}}), (1, 28, 28), 10)
    with torch.no_grad():
        model.prior.mean[3] = 5.0
        model.prior.logvar[3] = math.log(0.25)
    eps = torch.randn(4000, 4)
    z = model.prior_draw(eps, torch.full((4000,), 3))
    assert torch.allclose(z, 5 + 0.5 * eps) and torch.equal(model.prior_draw(eps, torch.zeros(4000, dtype=torch.long)), eps)
    x, y = torch.rand(2, 1, 28, 28), torch.tensor([3, 7])
    q = model.encode(x, y)
    torch.manual_seed(1)
    log_w, log_px_z, _ = model.log_weights(q, x, y, 6)
    torch.manual_seed(1)
    zk = q.rsample(6)
    log_pz = D.Normal(model.prior.mean[y], (0.5 * model.prior.logvar[y]).exp()).log_prob(zk).sum(-1)
    assert torch.allclose(log_w, log_px_z + log_pz - q.log_prob(zk), atol=1e-4)


def test_kl_matches_its_monte_carlo_estimate():
    torch.manual_seed(0)
    q = DiagonalGaussian(torch.tensor([[0.5, -1.0, 2.0]]), torch.tensor([[0.3, -0.7, 0.0]]))
    z = q.rsample(200_000)
    mc = (q.log_prob(z) - standard_normal_log_prob(z)).mean(0)
    assert mc.item() == pytest.approx(q.kl().item(), rel=0.01)


def test_gaussian_posterior_log_prob_matches_torch():
    mu, logvar, z = torch.randn(4, 3), torch.randn(4, 3), torch.randn(2, 4, 3)
    ref = D.Normal(mu, (0.5 * logvar).exp()).log_prob(z).sum(-1)
    assert torch.allclose(DiagonalGaussian(mu, logvar).log_prob(z), ref, atol=1e-5)


def test_bce_of_a_known_batch():
    # Two 1x1x2 images; p = sigmoid(logits) = (0.8, 0.25).
    x = torch.tensor([[[[1.0, 0.0]]], [[[0.0, 1.0]]]])
    logits = torch.log(torch.tensor([[[[0.8 / 0.2, 0.25 / 0.75]]]])).expand(2, 1, 1, 2)
    nll = -Bernoulli().log_prob(logits, x)
    assert nll.tolist() == pytest.approx([-math.log(0.8) - math.log(0.75), -math.log(0.2) - math.log(0.25)], abs=1e-6)


@pytest.mark.parametrize("likelihood", [Bernoulli(), Gaussian(), Laplace(0.5)])
def test_one_image_broadcast_over_k_decodings_equals_its_copies(likelihood):
    # log_weights passes x as (B, C, H, W) against K decodings (K, B, C, H, W), with no copy.
    x, out = torch.rand(3, 1, 28, 28), 4 * torch.randn(5, 3, 1, 28, 28)
    broadcast = likelihood.log_prob(out, x)
    copied = likelihood.log_prob(out, x.expand_as(out).contiguous())
    assert broadcast.shape == (5, 3) and torch.allclose(broadcast, copied, rtol=1e-5, atol=1e-3)


def test_gaussian_default_is_summed_squared_error_plus_constant():
    x, out = torch.rand(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    m = torch.sigmoid(out)
    nll = -Gaussian().log_prob(out, x)
    assert torch.allclose(nll, (x - m).pow(2).flatten(1).sum(1) + 16 / 2 * math.log(math.pi), atol=1e-5)
    ref = D.Normal(m, 0.3).log_prob(x).flatten(1).sum(1)
    assert torch.allclose(Gaussian(0.3).log_prob(out, x), ref, atol=1e-4)


def test_laplace_default_is_summed_absolute_error_plus_constant():
    x, out = torch.rand(3, 1, 4, 4), torch.randn(3, 1, 4, 4)
    m = torch.sigmoid(out)
    nll = -Laplace().log_prob(out, x)
    assert torch.allclose(nll, (x - m).abs().flatten(1).sum(1) + 16 * math.log(2), atol=1e-5)
    assert torch.allclose(Laplace(0.2).log_prob(out, x), D.Laplace(m, 0.2).log_prob(x).flatten(1).sum(1), atol=1e-4)


@pytest.mark.parametrize("kind", list(KINDS))
def test_loss_is_per_image_not_per_batch(kind, small_data):
    """A batch of 2 identical images gives the same nats/image as one of them."""
    model = registry.build_model(tiny(kind), small_data.image_shape, 10)
    model.latent.posterior = lambda h, post=model.latent.posterior: _noiseless(post(h))
    one = Batch(small_data.train.images[:1].float() / 255, small_data.train.labels[:1])
    two = Batch(one.x.repeat(2, 1, 1, 1), one.y.repeat(2))
    a, b = model.loss(one), model.loss(two)
    for k in a:
        # float32 sums in another order (threads, batch shapes): a few ulp, not a factor of 2
        assert a[k].item() == pytest.approx(b[k].item(), rel=1e-5), k
    assert a["recon"].item() > 50  # a sum over 784 pixels, not a mean


def _noiseless(q):
    q.rsample = lambda k=None: q.mean
    return q


def test_mean_reduction_divides_only_the_reconstruction(small_data):
    model = registry.build_model(tiny("vae", model={"objective": {"recon_reduction": "mean"}}), small_data.image_shape, 10)
    batch = Batch(small_data.train.images[:8].float() / 255, small_data.train.labels[:8])
    torch.manual_seed(0)
    out = model.loss(batch)
    assert out["loss"].item() == pytest.approx(out["recon"].item() / 784 + out["kl"].item(), rel=1e-5)


def test_kl_warmup_is_linear_then_flat():
    w = KLWeight(beta=2.0, warmup_epochs=4)
    assert [w(p) for p in (0, 1, 2, 4, 9)] == [0.0, 0.5, 1.0, 2.0, 2.0]
    assert w(None) == 2.0 and KLWeight(1.0, 0)(0.0) == 1.0


def test_gdn_and_its_inverse_against_their_formula():
    """y_i = x_i / sqrt(beta_i + sum_j gamma_ij x_j^2) at every pixel (Balle et al. 2016);
    the inverse multiplies by the same root."""
    from aelab.parts.networks import GDN

    torch.manual_seed(0)
    gdn, igdn = GDN(3), GDN(3, inverse=True)
    g = torch.rand(3, 3)
    with torch.no_grad():
        for m in (gdn, igdn):
            m.beta.copy_(torch.tensor([1.0, 0.5, 2.0]))
            m.gamma.copy_(g)
    x = torch.randn(2, 3, 4, 5)
    beta, gamma = gdn.beta ** 2, gdn.gamma ** 2
    root = (beta[None, :, None, None] + torch.einsum("ij,bjhw->bihw", gamma, x ** 2)).sqrt()
    assert torch.allclose(gdn(x), x / root, atol=1e-6)
    assert torch.allclose(igdn(x), x * root, atol=1e-6)
    fresh = GDN(4)
    x2 = torch.randn(1, 4, 2, 2)  # starts near x / sqrt(1 + 0.1 x^2), every gamma_ij able to learn
    assert torch.allclose(fresh(x2), x2 / (1 + 0.1 * x2 ** 2).sqrt(), atol=1e-4)
    fresh(x2).sum().backward()
    assert (fresh.gamma.grad != 0).all()


def test_a_residual_bottleneck_starts_as_the_identity_and_learns():
    """x + W3 a(W2 a(W1 x)) with W3 = 0 at the start: the identity, and only W3 has a gradient
    until it moves (then every layer does)."""
    from aelab.parts.networks import Bottleneck

    torch.manual_seed(0)
    block = Bottleneck(8, nn.ReLU)
    x = torch.randn(2, 8, 4, 4)
    assert torch.equal(block(x), x)
    assert [m.out_channels for m in block.body if isinstance(m, nn.Conv2d)] == [2, 2, 8]
    block(x).pow(2).sum().backward()
    assert block.body[-1].weight.grad.abs().sum() > 0
    with torch.no_grad():
        block.body[-1].weight.normal_()
    block.zero_grad()
    block(x).pow(2).sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in block.parameters())
    w1, w2, w3 = (m for m in block.body if isinstance(m, nn.Conv2d))
    expected = x + w3(torch.relu(w2(torch.relu(w1(x)))))
    assert torch.allclose(block(x), expected)


def test_the_k_sample_elbo_is_the_same_bound_with_less_noise():
    """ELBO with samples = K: the mean of K one-sample ELBOs, so its mean over many steps is
    the one-sample ELBO's and its variance about 1/K of it."""
    x = (torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    batch = Batch(x, torch.zeros(16, dtype=torch.long))
    stats = {}
    for k in (1, 8):
        torch.manual_seed(0)
        model = registry.build_model(tiny("vae", model={"objective": {"name": "elbo", "samples": k}}), (1, 28, 28), 10)
        torch.manual_seed(1)
        with torch.no_grad():
            draws = torch.stack([model.loss(batch)["neg_elbo"] for _ in range(400)])
        stats[k] = draws.mean().item(), draws.var().item()
    (m1, v1), (m8, v8) = stats[1], stats[8]
    assert abs(m1 - m8) < 4 * (v1 / 400) ** 0.5
    assert 1 / 16 < v8 / v1 < 1 / 4


def test_burdas_schedule_gives_stage_i_three_to_the_i_of_its_3280_epochs():
    lr_at = registry.LR_SCHEDULES["burda"]
    per_epoch = [lr_at(1e-3, 0.0, e / 3280) for e in range(3280)]
    stages = sorted(set(per_epoch), reverse=True)
    assert [per_epoch.count(lr) for lr in stages] == [3 ** i for i in range(8)]
    assert stages == pytest.approx([1e-3 * 10 ** (-i / 7) for i in range(8)])
    assert lr_at(1e-3, 0.0, 1.0) == pytest.approx(1e-4) and lr_at(1e-3, 0.0, 2.0) == pytest.approx(1e-4)
