"""The VampPrior against closed forms: its density against torch.distributions' mixture, its
KL estimate against the closed form where it has one (one pseudo-input), its draws against the
mixture's moments, and the model it is part of."""

import copy

import pytest
import torch
from torch import distributions as D

from aelab import registry
from aelab.data.splits import Batch
from aelab.evaluation.metrics import nll_importance_sampled
from aelab.parts.priors import GaussianMixture, GaussianPrior
from conftest import tiny


def _vamp(components: int, **model):
    cfg = tiny("vae", model={"latent_dim": 4, "prior": {"name": "vamp", "components": components}, **model})
    torch.manual_seed(0)
    return registry.build_model(cfg, (1, 28, 28), 10)


def _reference(mixture: GaussianMixture) -> D.MixtureSameFamily:
    k = len(mixture.mean)
    return D.MixtureSameFamily(D.Categorical(torch.ones(k)),
                               D.Independent(D.Normal(mixture.mean, (0.5 * mixture.logvar).exp()), 1))


def test_the_mixture_density_matches_torch_distributions_in_float32_even_under_bfloat16_autocast():
    torch.manual_seed(0)
    mixture = GaussianMixture(torch.randn(7, 5) * 2, torch.randn(7, 5) - 2)  # narrow components: s down to e^-2.5
    z = torch.randn(3, 11, 5) * 2  # (K draws, B, D)
    expected = _reference(mixture).log_prob(z)
    assert torch.allclose(mixture.log_prob(z), expected, atol=1e-3, rtol=1e-5)
    with torch.autocast("cpu", torch.bfloat16):
        got = mixture.log_prob(z)
    assert got.dtype == torch.float32 and torch.allclose(got, expected, atol=1e-3, rtol=1e-5)


def test_the_mixture_density_holds_for_narrow_components_far_from_the_origin():
    """What a collapsing encoder gives a VampPrior (means near 20, variances near e^-20, codes
    among them): the matrix-product form of the squared distances cancels there unless it is
    taken about the means' centre (it gave -130,803 nats for a log-density of 248)."""
    g = torch.Generator().manual_seed(0)
    mean = 20 + 1e-3 * torch.randn(50, 8, generator=g)
    logvar = -20 + torch.rand(50, 8, generator=g)
    mixture = GaussianMixture(mean, logvar)
    z = mean[torch.arange(12) % 50] + (0.5 * logvar[torch.arange(12) % 50]).exp() * torch.randn(12, 8, generator=g)
    expected = _reference(GaussianMixture(mean.double(), logvar.double())).log_prob(z.double())
    assert torch.allclose(mixture.log_prob(z).double(), expected, atol=1e-2, rtol=1e-5)

def test_with_one_pseudo_input_the_kl_estimate_averages_to_the_closed_form():
    """K = 1: p(z) = q(z | u_1), a Gaussian, so KL(q(z|x) || p) has a closed form; the VampPrior's
    density is that Gaussian's, and the estimate the ELBO uses averages to it."""
    model = _vamp(1).eval()
    x = torch.rand(6, 1, 28, 28)
    with torch.no_grad():
        q, p = model.encode(x), model.prior(None)
        gaussian = GaussianPrior(p.mean.expand(6, -1), p.logvar.expand(6, -1))
        z = q.rsample(20_000)  # (draws, B, D)
        assert torch.allclose(p.log_prob(z), gaussian.log_prob(z), atol=1e-3)
        closed = q.kl(gaussian)  # (B,)
        draws = q.log_prob(z) - p.log_prob(z)
        estimate, se = draws.mean(0), draws.std(0) / 20_000 ** 0.5
    assert (estimate - closed).abs().max() < 4 * se.max() + 1e-3
    assert closed.min() > 0.01  # not a trivial zero: x and the pseudo-input differ


def test_free_bits_under_the_vampprior_floor_the_whole_codes_kl():
    """The mixture has no KL per dimension, so free bits take the whole code as one group: the
    batch mean of the KL estimated at the codes drawn, counted at least lambda D; above that
    floor it is the plain estimate, below it the encoder feels no pull from the prior."""
    model = _vamp(3)
    x = torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    q, p = model.encode(x), model.prior(None)
    z = q.rsample()
    estimate = (q.log_prob(z) - p.log_prob(z)).mean()
    assert estimate > 0 and torch.equal(q.free_kl(p, z, 0.0), estimate)
    low = estimate.item() / 4 / 2  # half the estimate per number: the floor does not bind
    assert torch.equal(q.free_kl(p, z, low), estimate)
    high = estimate.item() / 4 * 2
    floored = q.free_kl(p, z, high)
    assert floored.item() == pytest.approx(high * 4)
    assert all(g is None or torch.count_nonzero(g) == 0 for g in torch.autograd.grad(
        floored, list(model.parameters()), allow_unused=True))


def test_draws_have_the_mixtures_mean_and_variance_and_every_component():
    torch.manual_seed(1)
    k, d, n = 5, 3, 200_000
    mixture = GaussianMixture(torch.arange(k, dtype=torch.float32)[:, None].repeat(1, d) * 10, torch.full((k, d), -1.0))
    z = mixture.draw(torch.randn(n, d, generator=torch.Generator().manual_seed(0)))
    mean = mixture.mean.mean(0)
    variance = mixture.logvar.exp().mean(0) + mixture.mean.var(0, unbiased=False)  # within + between components
    assert torch.allclose(z.mean(0), mean, atol=0.05) and torch.allclose(z.var(0), variance, rtol=0.01)
    component = (z[:, 1] / 10).round().long()  # the means are 10 apart, the components' s = e^-0.5
    assert torch.allclose(torch.bincount(component, minlength=k) / n, torch.full((k,), 1 / k), atol=0.005)
    # the first coordinate, made from what picking the component left of eps_1, is N(m_k, s_k²) within each
    residual = (z[:, 0] - mixture.mean[component, 0]) / (0.5 * mixture.logvar[component, 0]).exp()
    assert abs(residual.mean()) < 0.01 and abs(residual.std() - 1) < 0.01
    assert abs(torch.corrcoef(torch.stack([residual, component.float()]))[0, 1]) < 0.01


def test_the_model_trains_its_pseudo_inputs_samples_reproducibly_and_copies_with_its_own_encoder():
    model = _vamp(10)
    x = torch.rand(8, 1, 28, 28)
    out = model.loss(Batch(x, torch.zeros(8, dtype=torch.long)))
    out["loss"].backward()
    assert model.prior.pseudo_inputs.grad.abs().sum() > 0  # the prior learns through the encoder
    assert "prior.pseudo_inputs" in model.state_dict()
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    assert torch.equal(model.sample(6, generator=g()), model.sample(6, generator=g()))
    twin = copy.deepcopy(model)
    assert twin.prior._model is twin  # a copy's prior encodes with the copy's encoder
    with torch.no_grad():
        twin.encoder.net[0].weight.zero_()
    assert not torch.equal(twin.prior(None).mean, model.prior(None).mean)


def test_nll_is_weighs_codes_by_the_mixture():
    """The importance-sampled NLL of a VampPrior model is a bound the ELBO cannot beat: with
    K = 1 it is the negative ELBO's estimate, and it falls as K grows."""
    model = _vamp(10).eval()
    batch = [Batch((torch.rand(16, 1, 28, 28) > 0.5).float(), torch.zeros(16, dtype=torch.long))]
    torch.manual_seed(0)
    with torch.no_grad():
        one = nll_importance_sampled(model, batch, 1)
        many = nll_importance_sampled(model, batch, 200)
        neg_elbo = torch.stack([model.loss(batch[0])["neg_elbo"] for _ in range(200)]).mean().item()
    assert one == pytest.approx(neg_elbo, rel=0.01)
    assert many < one


def test_pseudo_inputs_start_as_training_images_chosen_by_the_runs_seed(small_data):
    """`model.prior.start = "data"`: a new run's pseudo-inputs are K of its training images (grey
    levels in [0, 1]), the same K for the same seed and other K for another; the other draws of
    the run (its weights) do not move; the default start keeps the noise."""
    from aelab.training import state

    def pseudo(seed: int, start: str):
        cfg = tiny("vae", model={"latent_dim": 4, "prior": {"name": "vamp", "components": 6, "start": start}},
                   train={"seed": seed})
        s = state.setup(cfg, small_data)
        return s.model.prior.pseudo_inputs.detach(), s.model.encoder.net[0].weight.detach()

    images = small_data.train.images.float().flatten(1) / 255
    first, weights = pseudo(0, "data")
    rows = [int(torch.nonzero((images == p.flatten()).all(1))[0]) for p in first]  # each is a training image
    assert len(set(rows)) == 6
    assert torch.equal(pseudo(0, "data")[0], first) and not torch.equal(pseudo(1, "data")[0], first)
    noise, noise_weights = pseudo(0, "noise")
    assert torch.equal(noise_weights, weights)  # the start draws from a generator of its own
    assert abs(noise.mean().item() - 0.05) < 0.01 and noise.std().item() < 0.02
