"""`model.init`: how the fully connected layers start, drawn from the run's seed."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from aelab import config, registry
from aelab.errors import AelabError

TWO_LAYERS = ["model.latent.name=two_layer", "model.latent_dim=150", "model.latent.top_dim=50",
              "model.network.hidden=[100, 100]", "model.network.activation=tanh"]


def linears(sets: list[str], seed: int = 0) -> list[nn.Linear]:
    cfg = config.with_overrides(config.RunConfig(), sets)
    torch.manual_seed(seed)
    return [m for m in registry.build_model(cfg, (1, 28, 28), 10).modules() if isinstance(m, nn.Linear)]


def test_glorot_draws_every_fully_connected_layer_from_its_uniform_and_zeroes_the_biases():
    layers = linears(TWO_LAYERS + ["model.init=glorot"])
    assert len(layers) == 12  # x-100-100-z1 and back, z1-50-50-z2 and back
    for layer in layers:
        fan_out, fan_in = layer.weight.shape
        bound = math.sqrt(6 / (fan_in + fan_out))
        w = layer.weight.detach()
        assert w.abs().max() <= bound and torch.count_nonzero(layer.bias) == 0
        if w.numel() >= 5000:  # the variance of U(-b, b) is b²/3 = 2 / (fan_in + fan_out)
            assert w.var().item() == pytest.approx(2 / (fan_in + fan_out), rel=0.1)


def test_the_default_start_is_torchs_own():
    for layer in linears(TWO_LAYERS):
        fan_in = layer.weight.shape[1]
        w = layer.weight.detach()
        assert w.abs().max() <= 1 / math.sqrt(fan_in) and torch.count_nonzero(layer.bias) > 0
        if w.numel() >= 5000:
            assert w.var().item() == pytest.approx(1 / (3 * fan_in), rel=0.1)


def test_the_start_is_drawn_from_the_seed():
    a, b, c = (linears(["model.init=glorot"], seed) for seed in (0, 0, 1))
    assert all(torch.equal(x.weight, y.weight) for x, y in zip(a, b))
    assert not torch.equal(a[0].weight, c[0].weight)


def test_a_start_of_its_own_is_named_in_the_description_and_unknown_ones_are_refused():
    assert "Glorot initialisation" in config.with_overrides(config.RunConfig(), ["model.init=glorot"]).model.describe()
    assert "Glorot" not in config.RunConfig().model.describe()
    with pytest.raises(AelabError, match="model.init"):
        registry.check(config.with_overrides(config.RunConfig(), ["model.init=he"]))
