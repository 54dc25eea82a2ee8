"""Every model the registry can build: shapes, gradients, learning, save/load."""

import dataclasses
from pathlib import Path

import pytest
import torch

from aelab import registry
from aelab.checking import maths
from aelab.checking import model as checks
from aelab.checking import run as check_run
from aelab.config import RunConfig
from aelab.data.splits import Batch
from aelab.errors import AelabError
from aelab.parts.catalog import PARTS
from aelab.runs import checkpoint
from conftest import moved, tiny

ROOT = Path(__file__).resolve().parents[1]

# The tiny models of the loop have 49-number codes: a cnn code map of one channel on the 7x7
# map of a 28x28 digit, so that moving latent_channels from 0 to 1 builds.
LATENT_DIM = 49


def _variant_config(slot: str, settings) -> RunConfig | None:
    """The tiny model with `settings` as its `slot` part, in the first kind of model the
    parts' own checks accept (VAE, AE, CVAE)."""
    found = checks.kinds(tiny("vae", model={"latent_dim": LATENT_DIM}), slot, settings)
    return found[0] if found else None


# Every name of every part (aelab.parts.catalog.PARTS), at its defaults and with every setting moved,
# and the two examples: registering a part puts it through every check below.
EXAMPLES = {"network": check_run.find(str(ROOT / "examples/adapter/adapter.py:CourseNetworks")),
            "latent": check_run.find(str(ROOT / "examples/adapter/adapter.py:CourseLatent")),
            "objective": check_run.find(str(ROOT / "examples/adapter/adapter.py:CourseObjective")),
            "prior": check_run.find(str(ROOT / "examples/mixture_prior.py:MixturePrior"))}
ALL_PARTS = [(slot, cls) for slot, table in PARTS.items() for cls in table.values()] + list(EXAMPLES.items())
VARIANTS = {
    f"{slot}={cls().title}{'-moved' if moved_all else ''}": (slot, settings)
    for slot, cls in ALL_PARTS
    for moved_all, settings in ((False, cls()), (True, checks.moved_settings(cls())))
    if not moved_all or dataclasses.fields(cls)
}

# A choice that builds other layers is a variant of its own: GDN (with IGDN in the decoder)
VARIANTS["network=cnn-gdn"] = ("network", PARTS["network"]["cnn"](activation="gdn"))


def test_every_variant_builds_in_some_kind_of_model():
    for key, (slot, settings) in VARIANTS.items():
        assert _variant_config(slot, settings) is not None, key


def _build(key, small_data, seed=0):
    cfg = _variant_config(*VARIANTS[key]) if isinstance(key, str) else key
    return checks.build(cfg, small_data.image_shape, small_data.num_classes, seed), cfg


@pytest.fixture(scope="module")
def batch(small_data):
    return check_run.fixed_batch(small_data)


# The registry loop: aelab.checking's checks, the ones `aelab check` runs on a user's part.
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_builds_on_the_meta_device(variant, small_data):
    cfg = _variant_config(*VARIANTS[variant])
    checks.builds_on_meta(cfg, small_data.image_shape, small_data.num_classes)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_shapes_and_finite_loss(variant, small_data, batch):
    checks.shapes(_build(variant, small_data)[0], batch)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_gradient_reaches_every_parameter(variant, small_data, batch):
    checks.gradients(_build(variant, small_data)[0], batch)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_loss_decreases_on_a_fixed_batch(variant, small_data, batch):
    checks.loss_falls(_build(variant, small_data)[0], batch)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_save_load_round_trip_gives_identical_outputs(variant, small_data, batch):
    checks.round_trip(_variant_config(*VARIANTS[variant]), batch, small_data.image_shape, small_data.num_classes)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_maths_of_every_part(variant, small_data, batch):
    """Draws with the posterior's moments, a closed-form KL equal to its Monte-Carlo estimate,
    logits from the decoder; after a few steps, -ELBO above the importance-sampled NLL and the
    objective's terms equal to their estimates (checking/maths.py)."""
    model, _ = _build(variant, small_data)
    maths.draws_match_posterior(model)
    maths.kl_matches_monte_carlo(model, batch.y)
    maths.decoder_gives_logits(model, batch.y)
    if VARIANTS[variant][1].name == "cnn":  # 40 times the MLP's cost here; the bound and the terms are
        return                              # the latent's and objective's, checked with every other part
    checks.warmed(model, batch, steps=10)  # `aelab check`: 20 steps, then K = 500 (200) and 8 repeats
    maths.elbo_below_likelihood(model, batch, k=50, repeats=2)
    maths.terms_match_estimates(model, batch, k=50, repeats=2)


def test_the_checkpoint_file_round_trip(small_data, batch, tmp_path):
    model, cfg = _build("latent=gaussian", small_data, seed=3)
    checkpoint.save(tmp_path / "m.pt", {"model": model.state_dict(), "config": "x", "data": {}})
    fresh, _ = _build("latent=gaussian", small_data, seed=4)
    fresh.load_state_dict(checkpoint.load(tmp_path / "m.pt")["model"])
    z = torch.randn(5, cfg.model.latent_dim)
    assert torch.equal(model.eval().decode(z), fresh.eval().decode(z))


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


# Every setting of every part, and every scalar of the model section.
WIRES = [(slot, cls, f.name) for slot, cls in ALL_PARTS for f in dataclasses.fields(cls)]
# (the [model.skeleton] table's own settings are held in tests/test_course.py)
WIRES += [("model", None, f.name) for f in dataclasses.fields(RunConfig().model)
          if f.name not in PARTS and not dataclasses.is_dataclass(getattr(RunConfig().model, f.name))]
WIRE_IDS = [f"{slot}.{cls().title if cls else ''}.{key}" for slot, cls, key in WIRES]


@pytest.mark.parametrize("slot, cls, key", WIRES, ids=WIRE_IDS)
def test_every_model_setting_reaches_the_model_or_its_loss(slot, cls, key, batch):
    """Moved off its default alone, every setting changes the built model, its loss or its
    samples: a setting that the builder never passes on fails here."""
    base = tiny("vae", model={"latent_dim": LATENT_DIM})
    if cls is None:  # a scalar of [model]
        owner, f = base.model, {x.name: x for x in dataclasses.fields(base.model)}[key]
        changed = dataclasses.replace(base, model=dataclasses.replace(owner, **{key: moved(getattr(owner, key), f)}))
        registry.check(changed)
        assert checks.fingerprint(base, batch, (1, 28, 28), 10) != checks.fingerprint(changed, batch, (1, 28, 28), 10)
    else:
        said = checks.setting_matters(base, slot, cls, key, batch, (1, 28, 28), 10)
        assert "changes the model" in said, said


@pytest.mark.parametrize("slot, cls, key", [w for w in WIRES if w[1] is not None],
                         ids=[i for w, i in zip(WIRES, WIRE_IDS) if w[1] is not None])
def test_every_part_setting_shows_in_the_report_settings_line(slot, cls, key):
    """A setting off its default is said: the report's settings line (ModelConfig.describe)
    comes from the parts' own descriptions, so none may leave one out (a setting that acts only
    beside another, its field's `needs`, beside that one moved)."""
    from aelab.reporting import report

    f, start = {x.name: x for x in dataclasses.fields(cls)}[key], checks.beside_its_needs(cls, key)
    changed = _variant_config(slot, dataclasses.replace(start, **{key: moved(getattr(start, key), f)}))
    base = dataclasses.replace(changed, model=dataclasses.replace(changed.model, **{slot: start}))
    assert changed.model.describe() != base.model.describe()
    line = report.settings_line(report.Entry("r", changed, {}, Path("m"), {}))
    assert line.startswith(changed.model.describe() + ";"), line


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_evaluation_takes_the_test_codes_from_the_loss_pass_only_where_they_are_the_same(variant, small_data):
    """`aelab eval` keeps the codes E[z|x] that the loss's pass encoded (evaluate.loss_parts_and_codes)
    instead of encoding the test images twice: for every part, those codes are the bits a
    separate encoding gives, the loss parts are the ones without the watching, and a model
    that does not encode its test images as they are (a denoising model) gets none."""
    from aelab.data.splits import Split
    from aelab.evaluation import evaluate

    model, _ = _build(variant, small_data)
    model.eval()
    data = dataclasses.replace(small_data, test=Split(small_data.test.images[:150], small_data.test.labels[:150]))
    with torch.no_grad():
        torch.manual_seed(5)
        parts, codes = evaluate.loss_parts_and_codes(model, data, 64)
        torch.manual_seed(5)
        assert parts == evaluate.loss_parts(model, data, 64)
        separate = [model.encode(b.x, b.y).mean for b in data.eval_batches(data.test, 64)]
    assert "encode" not in vars(model)  # the watch is gone
    if model.corruption.active:
        assert codes is None
    else:
        assert codes is not None and len(codes) == 3
        assert all(torch.equal(a, b) for a, b in zip(codes, separate))


def test_an_objective_that_encodes_otherwise_leaves_the_codes_to_a_separate_pass(small_data):
    from aelab.data.splits import Split
    from aelab.evaluation import evaluate

    model, _ = _build(tiny("vae"), small_data)
    data = dataclasses.replace(small_data, test=Split(small_data.test.images[:100], small_data.test.labels[:100]))
    plain = model.objective

    def twice(m, batch, progress):  # encodes each batch twice: the codes it saw are not kept
        m.encode(batch.x, batch.y)
        return plain(m, batch, progress)

    model.objective = twice
    with torch.no_grad():
        parts, codes = evaluate.loss_parts_and_codes(model, data, 64)
    assert codes is None and parts["loss"] > 0
    model.objective = lambda m, batch, progress: plain(m, Batch(batch.x.clone(), batch.y), progress)  # other images
    with torch.no_grad():
        assert evaluate.loss_parts_and_codes(model, data, 64)[1] is None
    model.objective = plain
    with torch.no_grad():
        assert evaluate.loss_parts_and_codes(model, data, 64)[1] is not None
