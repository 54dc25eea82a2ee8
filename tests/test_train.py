"""The trainer: resume equivalence, divergence, checkpoints, metrics."""

import json
import os

import pytest
import torch

from aelab import config
from aelab.training import train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import tiny


def _weights(path):
    return checkpoint.load(path)["model"]


def _same(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("binarize", ["none", "dynamic"])
def test_resumed_run_ends_with_the_weights_of_an_uninterrupted_one(tmp_path, small_data, mnist, binarize):
    from aelab.data.splits import DynamicBinary, ImageData

    data = small_data if binarize == "none" else ImageData.from_arrays(mnist, DynamicBinary(), 256, 512)
    cfg = tiny("vae", train={"epochs": 3}, model={"objective": {"kl_warmup_epochs": 2.0}, "corruption": {"name": "gaussian", "sigma": 0.1}},
               data={"binarize": binarize})
    whole = RunDir.create(tmp_path / "whole", cfg)
    train.fit(cfg, whole, data)
    part = RunDir.create(tmp_path / "part", cfg)
    train.fit(cfg, part, data, until_epoch=1)
    assert not part.is_done() and checkpoint.load(part.last_path)["epoch"] == 1
    train.fit(cfg, part, data, resume=True)
    assert part.is_done()
    assert _same(_weights(whole.last_path), _weights(part.last_path))
    strip = lambda rs: [{k: v for k, v in r.items() if "seconds" not in k} for r in rs]  # noqa: E731
    assert strip(whole.metrics()) == strip(part.metrics())


def test_divergence_stops_naming_epoch_and_step_and_keeps_the_last_good_checkpoint(tmp_path, small_data, monkeypatch):
    cfg = tiny("ae", train={"epochs": 3, "log_every": 3})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data, until_epoch=1)
    good = _weights(run.last_path)
    from aelab.parts.autoencoder import Autoencoder

    real_loss, calls = Autoencoder.loss, {"n": 0}

    def poisoned(self, batch, progress=None):
        out = real_loss(self, batch, progress)
        if self.training:
            calls["n"] += 1
            if calls["n"] == 5:  # the 5th training step of epoch 2
                out["loss"] = out["loss"] * float("nan")
        return out

    monkeypatch.setattr(Autoencoder, "loss", poisoned)
    with pytest.raises(train.Diverged, match=r"loss became nan at epoch 2, step 5$"):
        train.fit(cfg, run, small_data, resume=True)
    assert _same(good, _weights(run.last_path)) and checkpoint.load(run.last_path)["epoch"] == 1
    assert not run.is_done()


def test_best_checkpoint_is_the_lowest_validation_loss(tmp_path, small_data):
    cfg = tiny("vae", train={"epochs": 4})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data)
    metrics = run.metrics()
    best = min(metrics, key=lambda r: r["val_loss"])
    assert checkpoint.load(run.best_path)["epoch"] == best["epoch"]
    assert {"train_loss", "train_recon", "train_kl", "val_neg_elbo", "val_mse", "kl_weight", "lr"} <= set(metrics[0])
    done = json.loads(run.done_path.read_text())
    assert done["epochs"] == 4 and done["best_val_loss"] == pytest.approx(best["val_loss"])


def test_run_directory_records_config_seed_versions_and_sha(tmp_path):
    cfg = tiny("cvae", train={"seed": 7})
    run = RunDir.create(tmp_path / "run", cfg)
    assert config.load(run.config_path) == cfg
    meta = json.loads(run.meta_path.read_text())
    assert meta["seed"] == 7 and meta["versions"]["torch"] == torch.__version__
    assert "git_sha" in meta and "nats per image" in meta["units"]
    assert oct(os.stat(run.config_path).st_mode & 0o777) != oct(0o600)


def test_resume_drops_metrics_of_epochs_without_a_checkpoint(tmp_path, small_data):
    cfg = tiny("ae", train={"epochs": 2})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data, until_epoch=1)
    run.append_metrics({"epoch": 2, "train_loss": 0.0})  # killed between metrics and checkpoint
    train.fit(cfg, run, small_data, resume=True)
    assert [r["epoch"] for r in run.metrics()] == [1, 2] and run.metrics()[1]["train_loss"] > 0


def test_bfloat16_training_runs_the_layers_in_bfloat16_and_keeps_float32_weights(tmp_path, small_data, monkeypatch):
    """train.precision = 'bfloat16' autocasts the training forward pass only: the layers
    compute in bfloat16, the weights, checkpoints and validation stay float32, and the
    model learns as the float32 one does."""
    final, setup = {}, train.setup
    for precision in ("float32", "bfloat16"):
        cfg = tiny("ae", model={"network": {"name": "cnn", "hidden": [8, 16]}}, train={"epochs": 2, "precision": precision})
        run = RunDir.create(tmp_path / precision, cfg)
        state, seen = setup(cfg, small_data), []
        first_conv = next(m for m in state.model.modules() if isinstance(m, torch.nn.Conv2d))
        first_conv.register_forward_hook(lambda module, inputs, output: seen.append((module.training, output.dtype)))
        monkeypatch.setattr(train, "setup", lambda c, d: state)  # observe the model that fit trains
        train.fit(cfg, run, small_data)
        assert {dtype for training, dtype in seen if training} == {
            torch.bfloat16 if precision == "bfloat16" else torch.float32}
        assert {dtype for training, dtype in seen if not training} == {torch.float32}  # validation
        assert all(v.dtype == torch.float32 for v in _weights(run.last_path).values() if v.is_floating_point())
        losses = [r["val_loss"] for r in run.metrics()]
        assert losses[1] < losses[0]
        final[precision] = losses[-1]
    assert abs(final["bfloat16"] - final["float32"]) < 0.05 * final["float32"]
