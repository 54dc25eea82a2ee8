import dataclasses
from pathlib import Path

import pytest

from aelab import config, registry
from aelab.errors import AelabError
from aelab.study import CONFIG_DIR

SHIPPED = sorted(CONFIG_DIR.glob("*.toml"))


def test_vae_mnist_is_the_pytorch_examples_setting():
    cfg = config.load(Path("configs/vae_mnist.toml"))
    assert (cfg.model.kind, cfg.model.hidden, cfg.model.latent_dim) == ("vae", (400,), 20)
    assert (cfg.model.activation, cfg.model.likelihood, cfg.data.binarize) == ("relu", "bernoulli", "none")
    assert (cfg.train.batch_size, cfg.train.lr, cfg.train.epochs, cfg.train.optimizer) == (128, 1e-3, 10, "adam")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_configs_load_check_and_round_trip(path):
    cfg = config.load(path)
    registry.check(cfg)
    assert config.loads(config.dumps(cfg), "round trip") == cfg


def test_repo_configs_dir_is_the_packaged_one():
    assert sorted(p.name for p in Path("configs").glob("*.toml")) == [p.name for p in SHIPPED]


def test_overrides_are_typed():
    cfg = config.with_overrides(config.RunConfig(), [
        "model.hidden=[512, 256]", "model.latent_dim=2", "train.lr=0.01", "model.kind=cvae",
        "data.root=/some/where", "model.learn_scale=true", "model.beta=2",
    ])
    assert cfg.model.hidden == (512, 256) and cfg.model.latent_dim == 2 and cfg.train.lr == 0.01
    assert cfg.model.kind == "cvae" and cfg.data.root == "/some/where" and cfg.model.learn_scale is True
    assert cfg.model.beta == 2.0 and isinstance(cfg.model.beta, float)


@pytest.mark.parametrize("override, words", [
    ("model.latnt_dim=2", ["unknown key 'model.latnt_dim'", "model.latent_dim", "train.lr"]),
    ("modl.kind=ae", ["unknown key 'modl.kind'"]),
    ("model.latent_dim=abc", ["model.latent_dim must be an integer", "'abc'"]),
    ("model.latent_dim=2.5", ["model.latent_dim must be an integer"]),
    ("model.hidden=[0]", ["model.hidden must be a list of positive integers"]),
    ("train.epochs=-1", ["train.epochs must be at least 0"]),
    ("train.time_budget_min=-5", ["train.time_budget_min must be at least 0"]),
    ("train.lr=0", ["train.lr must be greater than 0"]),
    ("model.learn_scale=1", ["model.learn_scale must be true or false"]),
    ("latent_dim", ["expected KEY=VALUE"]),
])
def test_bad_overrides_name_the_key(override, words):
    with pytest.raises(AelabError) as e:
        config.with_overrides(config.RunConfig(), [override])
    assert all(w in str(e.value) for w in words), str(e.value)
    assert "\n" not in str(e.value)


def test_unknown_key_in_file_names_file_and_key(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nkind = 'vae'\nlatentdim = 3\n")
    with pytest.raises(AelabError, match=r"bad.toml: unknown key 'model.latentdim'; valid keys: data.name"):
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


@pytest.mark.parametrize("override, key", [
    ("model.kind=vea", "model.kind"), ("model.likelihood=mse", "model.likelihood"),
    ("model.activation=relu6", "model.activation"), ("data.binarize=yes", "data.binarize"),
    ("data.name=cifar", "data.name"), ("model.recon_reduction=avg", "model.recon_reduction"),
    ("train.precision=half", "train.precision"),
])
def test_registry_rejects_unknown_names_listing_choices(override, key):
    cfg = config.with_overrides(config.RunConfig(), [override])
    with pytest.raises(AelabError, match=rf"^{key}: unknown .*; choose from "):
        registry.check(cfg)


def test_registry_rejects_a_scale_on_bernoulli():
    cfg = config.with_overrides(config.RunConfig(), ["model.learn_scale=true"])
    with pytest.raises(AelabError, match="bernoulli' has no scale"):
        registry.check(cfg)


def test_the_dogs_config_has_an_8x8x16_code():
    import torch

    cfg = config.load(CONFIG_DIR / "dogs_ae.toml")
    model = registry.build_model(cfg, (3, 64, 64), 1).eval()
    assert model.decoder.code_shape == (16, 8, 8) and model.channel.active
    code = model.encode(torch.rand(2, 3, 64, 64)).mean
    assert code.shape == (2, 1024) and torch.allclose(code.pow(2).mean(1), torch.ones(2), atol=1e-5)
