"""Every model the registry can build: shapes, gradients, learning, save/load."""

import dataclasses
from pathlib import Path

import pytest
import torch

from aelab import registry
from aelab.config import RunConfig
from aelab.data.splits import Batch
from aelab.errors import AelabError
from aelab.parts.catalog import PARTS
from aelab.training import checkpoint
from conftest import moved, part_table, tiny

# The tiny models of the loop have 49-number codes: a cnn code map of one channel on the 7x7
# map of a 28x28 digit, so that moving latent_channels from 0 to 1 builds.
LATENT_DIM = 49


def _moved_settings(cls):
    """`cls` with every setting moved off its default."""
    default = cls()
    return cls(**{f.name: moved(getattr(default, f.name), f) for f in dataclasses.fields(cls)})


def _variant_config(slot: str, settings) -> RunConfig | None:
    """The tiny model with `settings` as its `slot` part, in the first kind of model the
    parts' own checks accept (VAE, AE, CVAE)."""
    for kind in ("vae", "ae", "cvae"):
        cfg = tiny(kind, model={"latent_dim": LATENT_DIM, slot: part_table(settings)})
        try:
            registry.check(cfg)
            return cfg
        except AelabError:
            continue
    return None


# Every name of every part (aelab.parts.catalog.PARTS), at its defaults and with every setting moved:
# registering a part puts it through every test below.
VARIANTS = {
    f"{slot}={name}{'-moved' if moved_all else ''}": (slot, settings)
    for slot, table in PARTS.items() for name, cls in table.items()
    for moved_all, settings in ((False, cls()), (True, _moved_settings(cls)))
    if not moved_all or dataclasses.fields(cls)
}

# A choice that builds other layers is a variant of its own: GDN (with IGDN in the decoder)
VARIANTS["network=cnn-gdn"] = ("network", PARTS["network"]["cnn"](activation="gdn"))


def test_every_variant_builds_in_some_kind_of_model():
    for key, (slot, settings) in VARIANTS.items():
        assert _variant_config(slot, settings) is not None, key


def _build(key, small_data, seed=0):
    cfg = _variant_config(*VARIANTS[key]) if isinstance(key, str) else key
    torch.manual_seed(seed)
    return registry.build_model(cfg, small_data.image_shape, small_data.num_classes), cfg


@pytest.fixture(scope="module")
def batch(small_data):
    return next(small_data.eval_batches(small_data.train, 64))


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shapes_and_finite_loss(variant, small_data, batch):
    model, cfg = _build(variant, small_data)
    d = cfg.model.latent_dim
    q = model.encode(batch.x, batch.y)
    assert q.mean.shape == (64, d)
    assert model.decode(q.mean, batch.y).shape == (64, 1, 28, 28)
    rec = model.reconstruct(batch.x, batch.y)
    assert rec.shape == batch.x.shape and 0 <= rec.min() and rec.max() <= 1
    s = model.sample(10)
    assert s.shape == (10, 1, 28, 28) and 0 <= s.min() and s.max() <= 1
    out = model.loss(batch)
    assert out["loss"].shape == () and all(torch.isfinite(v) for v in out.values())
    assert ("kl" in out) == q.stochastic == ("neg_elbo" in out)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradient_reaches_every_parameter(variant, small_data, batch):
    """Every parameter is in the graph and, at the latest after one step, gets a gradient: a
    residual branch whose last layer starts at zero (networks.Bottleneck) passes none to its
    inner layers until that layer has moved; a parameter stuck at a zero gradient would not move."""
    model, _ = _build(variant, small_data)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(2):
        opt.zero_grad()
        model.loss(batch, progress=1.0)["loss"].backward()
        assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        opt.step()
    for name, p in model.named_parameters():
        assert p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_loss_decreases_on_a_fixed_batch(variant, small_data, batch):
    """40 Adam steps on one batch: the objective falls, and the reconstruction term by a tenth
    (an objective may have a floor it cannot pass, such as free bits' lambda per dimension)."""
    model, _ = _build(variant, small_data)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    torch.manual_seed(1)

    def measured():  # the same noise each time, so only the weights differ
        with torch.random.fork_rng():
            torch.manual_seed(7)
            out = model.loss(batch, progress=5.0)
            return out["loss"].item(), out["recon"].item()

    loss, recon = measured()
    for _ in range(40):
        opt.zero_grad()
        model.loss(batch, progress=5.0)["loss"].backward()
        opt.step()
    loss_after, recon_after = measured()
    assert loss_after < loss and recon_after < 0.9 * recon


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_save_load_round_trip_gives_identical_outputs(variant, small_data, batch, tmp_path):
    model, cfg = _build(variant, small_data, seed=3)
    checkpoint.save(tmp_path / "m.pt", {"model": model.state_dict(), "config": "x", "data": {}})
    fresh, _ = _build(variant, small_data, seed=4)
    fresh.load_state_dict(checkpoint.load(tmp_path / "m.pt")["model"])
    model.eval(), fresh.eval()  # no channel noise: outputs are deterministic
    z = torch.randn(5, cfg.model.latent_dim)
    y = batch.y[:5]
    assert torch.equal(model.decode(z, y), fresh.decode(z, y))
    assert torch.equal(model.encode(batch.x, batch.y).mean, fresh.encode(batch.x, batch.y).mean)


def test_cvae_needs_labels_and_samples_every_class(small_data, batch):
    model, _ = _build(tiny("cvae"), small_data)
    with pytest.raises(ValueError, match="conditioned on labels"):
        model.encode(batch.x)
    assert model.condition.default_labels(12, torch.device("cpu")).tolist() == [*range(10), 0, 1]


def test_denoising_corrupts_the_input_not_the_target(small_data, batch):
    model, _ = _build(tiny("ae", model={"corruption": {"name": "gaussian", "sigma": 0.4}}), small_data)
    seen = []
    model.encoder.register_forward_hook(lambda m, inp, out: seen.append(inp[0]))
    model.loss(batch)
    noisy = seen[0]
    assert 0 <= noisy.min() and noisy.max() <= 1
    # Clipped N(0, 0.4^2) noise on mostly-black pixels: a mean absolute change near 0.16.
    assert 0.1 < (noisy - batch.x).abs().mean() < 0.25


def test_checkpoint_loader_refuses_pickled_code(tmp_path):
    import pickle

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.pt"
    torch.save({"model": Evil(), "config": "", "data": {}}, path, pickle_module=pickle)
    with pytest.raises(Exception, match="not a readable checkpoint"):
        checkpoint.load(path)


def test_batch_is_the_only_input_of_loss(small_data):
    model, _ = _build(tiny("vae"), small_data)
    b = Batch(torch.rand(3, 1, 28, 28), torch.tensor([1, 2, 3]))
    assert set(model.loss(b)) == {"loss", "recon", "kl", "neg_elbo", "mse"}


@pytest.mark.parametrize("shape", [(1, 28, 28), (3, 64, 64), (3, 33, 50), (2, 7, 9)])
def test_convolutions_give_back_any_image_size(shape):
    from aelab.parts.networks import ConvDecoder, ConvEncoder

    hidden = (4, 8, 8) if min(shape[1:]) >= 8 else (4, 8)
    enc, dec = ConvEncoder(shape, hidden, 6, 3, torch.nn.ReLU), ConvDecoder(shape, hidden, 5, 3, torch.nn.ReLU)
    x, c = torch.rand(2, *shape), torch.zeros(2, 3)
    assert enc(x, c).shape == (2, 6)
    assert dec(torch.randn(2, 5), c).shape == (2, *shape)
    assert dec(torch.randn(4, 2, 5), torch.zeros(4, 2, 3)).shape == (4, 2, *shape)  # leading dims kept


def test_a_spatial_code_is_a_map_of_latent_channels():
    cfg = tiny("vae", model={"network": {"name": "cnn", "hidden": [8, 16, 16], "latent_channels": 16}, "latent_dim": 1024})
    model = registry.build_model(cfg, (3, 64, 64), 1)
    q = model.encode(torch.rand(2, 3, 64, 64))
    assert q.mean.shape == (2, 1024) and model.decode(q.mean).shape == (2, 3, 64, 64)
    assert model.encoder.head.out_channels == 32  # mean and log-variance maps, 16 channels each
    # a code position only sees its neighbourhood: changing one corner of the code map leaves
    # the far corner of the image untouched
    z = torch.zeros(1, 16, 8, 8)
    a = model.decode(z.flatten(1))
    z[0, :, 0, 0] = 5.0
    b = model.decode(z.flatten(1))
    assert not torch.allclose(a[..., :8, :8], b[..., :8, :8]) and torch.equal(a[..., -8:, -8:], b[..., -8:, -8:])
    with pytest.raises(AelabError, match="set model.latent_dim = 1024"):
        registry.build_model(dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, latent_dim=20)), (3, 64, 64), 1)


def test_too_many_convolutions_for_the_image_is_a_config_error():
    from aelab.errors import AelabError
    from aelab.parts.networks import ConvEncoder

    with pytest.raises(AelabError, match="model.network.hidden: 5 stride-2 convolutions shrink a 28x28 image"):
        ConvEncoder((1, 28, 28), (4,) * 5, 4, 0, torch.nn.ReLU)


def test_the_channel_sends_codes_of_mean_square_one_and_adds_noise_only_while_training(small_data, batch):
    model, _ = _build(tiny("ae", model={"latent_dim": 64, "channel": {"name": "awgn", "sigma": 0.1}}), small_data)
    with torch.no_grad():
        model.encoder.net[-1].weight.mul_(7)  # codes far from unit power before normalising
        code = model.encode(batch.x).mean
        assert torch.allclose(code.pow(2).mean(1), torch.ones(64), atol=1e-5)
        received = []
        model.decoder.register_forward_pre_hook(lambda m, args: received.append(args[0]))
        model.train()
        model.decode(code)
        noise = received[-1] - code
        assert 0.09 < noise.std().item() < 0.11 and abs(noise.mean().item()) < 0.01
        model.eval()
        model.decode(code)
        assert torch.equal(received[-1], code)  # clean at evaluation unless asked
        with model.channel.noise_at(0.5):
            model.decode(code)
        assert 0.45 < (received[-1] - code).std().item() < 0.55
        model.decode(code)
        assert torch.equal(received[-1], code)  # put back after the block
    with pytest.raises(AelabError, match="sends a deterministic code"):
        registry.check(tiny("vae", model={"channel": {"name": "awgn"}}))


def _fingerprint(cfg: RunConfig, batch):
    """What a model setting can change: the parameters (names, shapes, trainable), the weights
    built from one seed, the training loss and its parts on a fixed batch with fixed noise early
    in training (KL warm-up under way), and prior samples."""
    torch.manual_seed(0)
    model = registry.build_model(cfg, (1, 28, 28), 10)
    params = [(n, tuple(p.shape), p.requires_grad) for n, p in model.named_parameters()]
    weights = [t.double().sum().item() for t in model.state_dict().values()]
    with torch.random.fork_rng():
        torch.manual_seed(1)
        losses = {k: v.item() for k, v in model.loss(batch, progress=0.1).items()}
    with torch.random.fork_rng():
        torch.manual_seed(2)
        samples = model.eval().sample(4).double().sum().item()
    return params, weights, losses, samples


# Every setting of every part, and every scalar of the model section.
WIRES = [(slot, name, f.name) for slot, table in PARTS.items() for name, cls in table.items()
         for f in dataclasses.fields(cls)]
WIRES += [("model", None, f.name) for f in dataclasses.fields(RunConfig().model) if f.name not in PARTS]


@pytest.mark.parametrize("slot, name, key", WIRES, ids=lambda v: str(v))
def test_every_model_setting_reaches_the_model_or_its_loss(slot, name, key, batch):
    """Moved off its default alone, every setting changes the built model, its loss or its
    samples: a setting that the builder never passes on fails here."""
    if name is None:  # a scalar of [model]
        base = tiny("vae", model={"latent_dim": LATENT_DIM})
        owner, f = base.model, {x.name: x for x in dataclasses.fields(base.model)}[key]
        changed = dataclasses.replace(base, model=dataclasses.replace(owner, **{key: moved(getattr(owner, key), f)}))
    else:
        cls = PARTS[slot][name]
        f = {x.name: x for x in dataclasses.fields(cls)}[key]
        changed = _variant_config(slot, dataclasses.replace(cls(), **{key: moved(getattr(cls(), key), f)}))
        base = dataclasses.replace(changed, model=dataclasses.replace(changed.model, **{slot: cls()}))
    registry.check(changed)
    assert _fingerprint(base, batch) != _fingerprint(changed, batch), f"{slot}.{key} changes nothing"


@pytest.mark.parametrize("slot, name, key", [w for w in WIRES if w[1] is not None], ids=lambda v: str(v))
def test_every_part_setting_shows_in_the_report_settings_line(slot, name, key):
    """A setting off its default is said: the report's settings line (ModelConfig.describe)
    comes from the parts' own descriptions, so none may leave one out."""
    from aelab.reporting import report

    cls = PARTS[slot][name]
    f = {x.name: x for x in dataclasses.fields(cls)}[key]
    changed = _variant_config(slot, dataclasses.replace(cls(), **{key: moved(getattr(cls(), key), f)}))
    base = dataclasses.replace(changed, model=dataclasses.replace(changed.model, **{slot: cls()}))
    assert changed.model.describe() != base.model.describe()
    line = report.settings_line(report.Entry("r", changed, {}, Path("m"), {}))
    assert line.startswith(changed.model.describe() + ";"), line
