import dataclasses
from pathlib import Path

import pytest

from aelab import config, registry
from aelab.config import CONFIG_DIR
from aelab.errors import AelabError

SHIPPED = sorted(CONFIG_DIR.glob("*.toml"))


def test_vae_mnist_is_the_pytorch_examples_setting():
    cfg = config.load(Path("configs/vae_mnist.toml"))
    m = cfg.model
    assert (m.latent.name, m.network.name, m.network.hidden, m.latent_dim) == ("gaussian", "mlp", (400,), 20)
    assert (m.network.activation, m.likelihood.name, m.objective.name, cfg.data.binarize) == ("relu", "bernoulli", "elbo", "none")
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.epochs, cfg.train.optimizer) == (128, 1e-3, 10, "adam")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load_check_and_round_trip(path):
    cfg = config.load(path)
    registry.check(cfg)
    assert config.loads(config.dumps(cfg), "round trip") == cfg


def test_a_stored_config_with_every_model_setting_moved_reads_back_as_it_was():
    """What a run directory stores is read as today's config, not mistaken for an earlier
    version's flat [model] table (whose part names were strings): a string setting of today's
    [model] (model.init) among them."""
    cfg = config.with_overrides(config.RunConfig(), ["model.init=glorot", "model.latent_dim=7"])
    assert config.loads(config.dumps(cfg), "stored", stored=True) == cfg


def test_repo_configs_dir_is_the_packaged_one():
    assert sorted(p.name for p in Path("configs").glob("*.toml")) == [p.name for p in SHIPPED]


def test_overrides_are_typed():
    cfg = config.with_overrides(config.RunConfig(), [
        "model.network.hidden=[512, 256]", "model.latent_dim=2", "train.lr=0.01", "model.condition.name=label",
        "data.root=/some/where", "model.likelihood.learn_scale=true", "model.likelihood.name=gaussian",
        "model.objective.beta=2",
    ])
    m = cfg.model
    assert m.network.hidden == (512, 256) and m.latent_dim == 2 and cfg.train.lr == 0.01
    assert m.short == "CVAE" and cfg.data.root == "/some/where" and m.likelihood.learn_scale is True
    assert m.objective.beta == 2.0 and isinstance(m.objective.beta, float)


def test_a_part_that_changes_name_starts_from_its_own_defaults():
    base = config.with_overrides(config.RunConfig(), ["model.objective.beta=2", "model.network.hidden=[64]"])
    iwae = config.with_overrides(base, ["model.objective.samples=50", "model.objective.name=iwae"])  # any order
    assert (iwae.model.objective.name, iwae.model.objective.samples) == ("iwae", 50)
    assert config.with_overrides(iwae, ["model.objective.name=elbo"]).model.objective.beta == 1.0  # not 2: reset
    same = config.with_overrides(base, ["model.network.name=mlp"])
    assert same.model.network.hidden == (64,)  # the same name keeps its settings
    cnn = config.with_overrides(base, ["model.network.name=cnn"])
    assert cnn.model.network.hidden == (32, 64) and config.diff(base, cnn) == ["model.network.name: 'mlp' vs 'cnn'"]


@pytest.mark.parametrize("override, words", [
    ("model.latnt_dim=2", ["unknown key 'model.latnt_dim'", "model.latent_dim", "model.objective"]),
    ("modl.kind=ae", ["unknown key 'modl.kind'"]),
    ("model.latent_dim=abc", ["model.latent_dim must be an integer", "'abc'"]),
    ("model.latent_dim=2.5", ["model.latent_dim must be an integer"]),
    ("model.network.hidden=[0]", ["model.network.hidden must be a list of positive integers"]),
    ("train.epochs=-1", ["train.epochs must be at least 0"]),
    ("train.time_budget_min=-5", ["train.time_budget_min must be at least 0"]),
    ("train.lr=0", ["train.lr must be greater than 0"]),
    ("model.objective.beta=-1", ["model.objective.beta must be at least 0.0"]),
    ("model.likelihood.learn_scale=true", ["unknown key 'model.likelihood.learn_scale'", "model.likelihood.name"]),
    ("model.objective.components=5", ["unknown key 'model.objective.components'", "model.objective.beta"]),
    ("model.network.latent_channels=4", ["unknown key 'model.network.latent_channels'", "model.network.hidden"]),
    ("model.latent=point", ["model.latent is a table", "model.latent.name = 'point'", "point, gaussian"]),
    ("model.objective.name=vi", ["model.objective.name: unknown 'vi'; choose from elbo, iwae"]),
    ("model.network.activation=relu6", ["model.network.activation: unknown 'relu6'; choose from relu, tanh"]),
    ("model.objective.recon_reduction=avg", ["model.objective.recon_reduction: unknown 'avg'; choose from sum, mean"]),
    ("latent_dim", ["expected KEY=VALUE"]),
])
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(AelabError) as e:
        config.with_overrides(config.RunConfig(), [override])
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("old, new", [
    ("model.kind=ae", "model.latent.name ('point' for an AE"), ("model.hidden=[64]", "model.network.hidden"),
    ("model.input_noise=0.4", "model.corruption.name = 'gaussian' with model.corruption.sigma"),
    ("model.iw_samples=50", "model.objective.name = 'iwae' with model.objective.samples"),
    ("model.channel_sigma=0.1", "model.channel.sigma"), ("model.obs_scale=0.5", "model.likelihood.scale"),
    ("model.latent_channels=4", "model.network.latent_channels"), ("model.beta=2", "model.objective.beta"),
])
def test_an_old_key_names_its_new_home(old, new):
    with pytest.raises(AelabError) as e:
        config.with_overrides(config.RunConfig(), [old])
    assert str(e.value).startswith(f"--set: {old.split('=')[0]} has moved; use ") and new in str(e.value), str(e.value)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nlatentdim = 3\n")
    with pytest.raises(AelabError, match=r"bad.toml: unknown key 'model.latentdim'; valid keys: model.latent_dim"):
        config.load(bad)
    bad.write_text("[model.objective]\nname = 'iwae'\nbeta = 2\n")
    with pytest.raises(AelabError, match=r"bad.toml: unknown key 'model.objective.beta'; valid keys: "
                                         r"model.objective.name, model.objective.samples$"):
        config.load(bad)
    bad.write_text("[model\n")
    with pytest.raises(AelabError, match="bad.toml: not valid TOML"):
        config.load(bad)
    with pytest.raises(AelabError, match="nope.toml: no such config file"):
        config.load(tmp_path / "nope.toml")


def test_configs_are_frozen():
    cfg = config.RunConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.latent_dim = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.objective.beta = 3  # type: ignore[misc]


@pytest.mark.parametrize("override, key", [
    ("data.binarize=yes", "data.binarize"), ("data.name=cifar", "data.name"), ("train.precision=half", "train.precision"),
])
def test_registry_rejects_unknown_names_listing_choices(override, key):
    cfg = config.with_overrides(config.RunConfig(), [override])
    with pytest.raises(AelabError, match=rf"^{key}: unknown .*; choose from "):
        registry.check(cfg)


@pytest.mark.parametrize("sets, words", [
    (["model.objective.name=iwae", "model.latent.name=point"], "importance-weighted bound needs a stochastic latent"),
    (["model.channel.name=awgn"], "'awgn' sends a deterministic code; use model.latent.name = 'point'"),
    (["model.prior.name=conditional"], r"conditional prior p\(z \| y\) needs .* not 'gaussian' and 'none'"),
    (["model.prior.name=conditional", "model.condition.name=label", "model.latent.name=point"], "not 'point' and 'label'"),
])
def test_parts_check_themselves_against_the_model(sets, words):
    cfg = config.with_overrides(config.RunConfig(), sets)
    with pytest.raises(AelabError, match=words):
        registry.check(cfg)


def test_the_dogs_config_has_an_8x8x16_code():
    import torch

    cfg = config.load(CONFIG_DIR / "dogs_ae.toml")
    model = registry.build_model(cfg, (3, 64, 64), 1).eval()
    assert model.decoder.code_shape == (16, 8, 8) and model.channel.active
    code = model.encode(torch.rand(2, 3, 64, 64)).mean
    assert code.shape == (2, 1024) and torch.allclose(code.pow(2).mean(1), torch.ones(2), atol=1e-5)


def _old_model(**changes) -> str:
    """A [model] table as run directories of earlier versions stored it (every key written)."""
    keys = {"kind": "vae", "network": "mlp", "latent_dim": 20, "latent_channels": 0, "hidden": [400], "activation": "relu",
            "likelihood": "bernoulli", "obs_scale": 0.0, "learn_scale": False, "recon_reduction": "sum", "beta": 1.0,
            "kl_warmup_epochs": 0.0, "input_noise": 0.0, "channel": "none", "channel_sigma": 0.0, "iw_samples": 1}
    keys.update(changes)
    return "[model]\n" + "".join(f"{k} = {config.toml_value(v)}\n" for k, v in keys.items())


@pytest.mark.parametrize("name, old, sets", [
    ("dae_mnist", dict(kind="ae", latent_dim=2, hidden=[512, 256], input_noise=0.4), []),
    ("iwae_table1_iwae", dict(latent_dim=50, hidden=[200, 200], activation="tanh", iw_samples=50), []),
    # the prior and the label's scale came later: an old CVAE is today's with their defaults
    ("cvae_mnist", dict(kind="cvae", beta=2.25, hidden=[2048]), ["model.prior.name=standard", "model.condition.scale=1"]),
    ("dogs_ae", dict(kind="ae", network="cnn", latent_dim=1024, latent_channels=16, hidden=[64, 128, 256],
                     activation="gdn", likelihood="gaussian", channel="awgn"), []),
])
def test_a_stored_config_of_an_earlier_version_is_read_as_today(name, old, sets):
    today = config.load(CONFIG_DIR / f"{name}.toml", sets)
    stored = config.dumps(today).replace(config.dumps(today).split("[model]")[1].split("[train]")[0], "")
    stored = stored.replace("[model][train]", _old_model(**old) + "\n[train]")
    assert config.loads(stored, "run/config.toml", stored=True) == today
    with pytest.raises(AelabError, match="model.kind has moved"):  # a config a user writes: today's form only
        config.loads(stored, "mine.toml")
