"""Slow checks against published numbers: `pytest -m slow` (minutes)."""

import json

import pytest

from aelab.cli import main


@pytest.mark.slow
def test_vae_mnist_reaches_the_pytorch_examples_test_loss(tmp_path, capsys):
    assert main(["train", "configs/vae_mnist.toml", "--out", str(tmp_path / "vae"), "--quiet"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["epoch"] == 10 and record["loss"] <= 105.8, record
