"""Steps replayed as CUDA graphs (training/graphed.py), on a CPU: everything but the capture.
The stand-in capture records nothing and replays the step's body on the graph's own input
tensors, so a batch that did not reach those tensors, a replay where the schedule moved, or an
optimizer left in the wrong form after a checkpoint shows here. test_gpu.py captures for real."""

import pytest
import torch

from aelab.training import graphed, train
from aelab.runs import checkpoint
from aelab.runs.rundir import RunDir
from conftest import tiny

# 512 digits in batches of 60: 8 full batches and one of 32 an epoch
BATCHES = {"batch_size": 60}


@pytest.fixture
def graphs(monkeypatch):
    """Graph mode on this CPU with the stand-in capture; yields the Steps of each fit."""
    made = []

    class Recorded(graphed.Steps):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(graphed, "capturer",
                        lambda enabled, device, processes: (graphed.STAND_IN if enabled else None, ""))
    monkeypatch.setattr(graphed, "Steps", Recorded)
    return made


def _weights(run):
    return checkpoint.load(run.last_path)["model"]


def _close(a, b):
    return all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)


def test_full_batches_are_replays_and_train_the_model_eager_steps_train(tmp_path, small_data, graphs):
    cfg = tiny("vae", train={"epochs": 2, **BATCHES}, model={"corruption": {"name": "gaussian", "sigma": 0.2}})
    run = RunDir.create(tmp_path / "graphs", cfg)
    train.fit(cfg, run, small_data, train.Options(progress=False))
    (steps,) = graphs
    # epoch 1: 3 warm-up steps, the capture (and its first replay), 4 replays, the small batch;
    # epoch 2: 8 replays and the small batch
    assert steps.counts == {"eager": 5, "captured": 1, "replayed": 13}
    assert run.training()[0]["cuda_graphs"] is True
    assert all(isinstance(r["lr"], float) for r in run.metrics())
    off = tiny("vae", train={"epochs": 2, "cuda_graphs": False, **BATCHES},
               model={"corruption": {"name": "gaussian", "sigma": 0.2}})
    eager = RunDir.create(tmp_path / "eager", off)
    train.fit(off, eager, small_data, train.Options(progress=False))
    assert graphs[-1].counts == {"eager": 18, "captured": 0, "replayed": 0}
    a, b = _weights(run), _weights(eager)
    assert _close(a, b)


def test_the_warmup_goes_on_past_an_epochs_small_batch(tmp_path, small_data, graphs):
    cfg = tiny("vae", train={"epochs": 2, "batch_size": 150})  # 3 full batches and one of 62 an epoch
    train.fit(cfg, RunDir.create(tmp_path / "run", cfg), small_data, train.Options(progress=False))
    # epoch 1: 3 warm-up steps and the small batch; epoch 2: the capture, 2 replays, the small batch
    assert graphs[0].counts == {"eager": 5, "captured": 1, "replayed": 3}


def test_a_stale_batch_would_show(tmp_path, small_data, graphs, monkeypatch):
    """The test above would fail if replays trained on the capture's batch: so they do not."""
    cfg = tiny("vae", train={"epochs": 2, **BATCHES})
    stale = graphed.Steps.__call__

    def without_copy(self, x, y, *args, **kwargs):
        if self.replay is not None and self.inputs is not None and x.shape == self.inputs[0].shape:
            x, y = self.inputs  # what a replay without the copy into its inputs would train on
        return stale(self, x, y, *args, **kwargs)

    base = RunDir.create(tmp_path / "base", cfg)
    train.fit(cfg, base, small_data, train.Options(progress=False))
    monkeypatch.setattr(graphed.Steps, "__call__", without_copy)
    broken = RunDir.create(tmp_path / "broken", cfg)
    train.fit(cfg, broken, small_data, train.Options(progress=False))
    assert not _close(_weights(base), _weights(broken))


def test_a_kl_warmup_runs_eagerly_until_its_weight_stands_still(tmp_path, small_data, graphs):
    cfg = tiny("vae", train={"epochs": 2, **BATCHES}, model={"objective": {"kl_warmup_epochs": 1.0}})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data, train.Options(progress=False))
    (steps,) = graphs
    # epoch 1: the weight moves every step (9 eager); epoch 2 at full weight: 3 warm-up steps,
    # the capture, 4 more replays, the small batch
    assert steps.counts == {"eager": 13, "captured": 1, "replayed": 5}


def test_graph_mode_resumes_to_the_bit_and_either_mode_resumes_the_other(tmp_path, small_data, graphs, monkeypatch):
    cfg = tiny("vae", train={"epochs": 3, **BATCHES})
    whole, part = RunDir.create(tmp_path / "whole", cfg), RunDir.create(tmp_path / "part", cfg)
    train.fit(cfg, whole, small_data, train.Options(progress=False))
    train.fit(cfg, part, small_data, train.Options(progress=False), until_epoch=1)
    saved = checkpoint.load(part.last_path)["optimizer"]["param_groups"][0]["lr"]
    assert isinstance(saved, torch.Tensor) and saved.dtype == torch.float32
    train.fit(cfg, part, small_data, train.Options(progress=False))
    a, b = _weights(whole), _weights(part)
    assert all(torch.equal(a[k], b[k]) for k in a)
    # a graphed run's checkpoint resumed eagerly (a CPU, say): a float learning rate again
    mixed = RunDir.create(tmp_path / "mixed", cfg)
    train.fit(cfg, mixed, small_data, train.Options(progress=False), until_epoch=1)
    monkeypatch.undo()
    state = train.fit(cfg, mixed, small_data, train.Options(progress=False), resume=True)
    group = state.optimizer.param_groups[0]
    assert isinstance(group["lr"], float) and group["capturable"] is False
    assert _close(_weights(mixed), a)


def test_a_capture_that_fails_leaves_eager_steps_with_one_warning(tmp_path, small_data, monkeypatch, capsys):
    def refuse(body):
        raise RuntimeError("operation not permitted when stream is capturing\nmore lines")

    failing = graphed.Capturer(graphed.STAND_IN.warmup, refuse)
    monkeypatch.setattr(graphed, "capturer", lambda enabled, device, processes: (failing, ""))
    cfg = tiny("vae", train={"epochs": 2, **BATCHES})
    run = RunDir.create(tmp_path / "run", cfg)
    train.fit(cfg, run, small_data, train.Options(progress=False))
    err = capsys.readouterr().err
    assert err.count("aelab: warning: CUDA graphs: the step could not be captured "
                     "(operation not permitted when stream is capturing); training goes on with eager steps") == 1
    assert [r["epoch"] for r in run.metrics()] == [1, 2]


def test_which_steps_may_be_graphs():
    assert graphed.capturer(True, torch.device("cpu"), 1) == (None, "")
    assert graphed.capturer(True, torch.device("cuda"), 1) == (graphed.CUDA, "")
    assert graphed.capturer(False, torch.device("cuda"), 1) == (None, "train.cuda_graphs = false")
    assert graphed.capturer(True, torch.device("cuda"), 2) == (None, "several processes")
    plan = train.Plan(torch.device("cuda"), "bfloat16", train.distributed.Group(0, 2, 0, "nccl"), None, "several processes")
    assert plan.describe().endswith("2 processes (nccl), eager steps (several processes)")
    assert not plan.record()["cuda_graphs"]
